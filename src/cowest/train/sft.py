"""Stage 1: LoRA SFT of the weak model on the draft format, and merging the adapter into a plain checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from cowest import dist
from cowest.io import atomic_dir
from cowest.layout import TrainDir
from cowest.console import quiet_trainer
from cowest.train.common import JsonlLogCallback, derive_batch, disable_telemetry, lora_config, merge_args
from cowest.train.common import save_adapter, trainer_defaults

SFT_DEFAULTS: dict[str, Any] = {
    "completion_only_loss": True,  # learn the draft, not the question
    "learning_rate": 2e-4,  # usual LoRA rate; TRL's 2e-5 default is meant for full fine-tuning
    "num_train_epochs": 3,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.03,  # a float < 1 is a fraction of the total steps
    "max_length": 384,  # question + options + a cot draft fit; longer only costs CPU time
    "train_sampling_strategy": "group_by_length",  # batches of similar length waste little compute on padding
}

# With a validation slice: measure it every epoch and keep the epoch with the lowest validation loss.
VALIDATION_DEFAULTS: dict[str, Any] = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "save_total_limit": 2,
    "per_device_eval_batch_size": 16,
}


def train_sft(
    model_path: str,
    train_rows: list[dict],
    out_dir: Path,
    sft_args: dict,
    lora_args: dict,
    seed: int = 0,
    log_path: Path | None = None,
    eval_rows: list[dict] | None = None,
    init_adapter: Path | None = None,
) -> Path:
    """Train a LoRA adapter with TRL's SFTTrainer on prompt-completion chat rows; return `out_dir/adapter`.

    With `eval_rows` (a validation slice of the training data) the loss on them is measured after every epoch and
    the adapter of the epoch with the lowest one is kept, unless the recipe sets its own `eval_strategy`.
    With `init_adapter` training continues from that adapter (a fresh schedule of `num_train_epochs`).
    """
    if not train_rows:
        raise ValueError("train_sft: no training rows (the task's training split is empty)")
    disable_telemetry()
    out_dir = Path(out_dir)
    dataset = _dataset(train_rows)
    eval_set = _dataset(eval_rows) if eval_rows else None
    select = VALIDATION_DEFAULTS if eval_set is not None else {}
    args = SFTConfig(**merge_args(trainer_defaults(out_dir, seed), SFT_DEFAULTS, select, derive_batch(sft_args, "sft")))
    log = JsonlLogCallback(log_path)
    model: Any = model_path  # a local path: TRL loads it in fp32 and the model keeps a real name (no Hub look-ups)
    peft_config = lora_config(lora_args)
    if init_adapter is not None:
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model, peft_config = PeftModel.from_pretrained(base, str(init_adapter), is_trainable=True), None
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_set,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        peft_config=peft_config,
        callbacks=[log],
    )
    quiet_trainer(trainer)
    trainer.train()
    TrainDir(out_dir).drop_checkpoints()  # the best epoch is loaded; its checkpoints are not needed again
    return save_adapter(trainer, out_dir)


def _dataset(rows: list[dict]) -> Dataset:
    """Prompt-completion rows as a Dataset; only the columns TRL reads (mixed-type metadata would break from_list)."""
    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


def merge_adapter(base_path: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA adapter into its base and save a plain checkpoint + tokenizer at `out_dir` (main process)."""
    return dist.share(lambda: _merge(base_path, Path(adapter_dir), Path(out_dir)))


def _merge(base_path: str, adapter_dir: Path, out_dir: Path) -> Path:
    # merge in fp32: small LoRA deltas can round away when added to bf16 weights
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_path
    tokenizer = AutoTokenizer.from_pretrained(str(tok_src))
    with atomic_dir(Path(out_dir)) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
