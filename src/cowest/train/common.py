"""Pieces shared by the SFT and preference stages: trainer defaults, JSONL step logs, atomic saves."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from cowest import dist
from cowest.errors import RecipeError
from cowest.io import atomic_dir, write_json
from cowest.layout import TrainDir

# Small Llama-like models: adapt every linear layer (PEFT's "all-linear" leaves the LM head out).
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
    "bias": "none",
    "task_type": "CAUSAL_LM",
}

log = logging.getLogger(__name__)


def lora_config(lora_args: dict[str, Any] | None) -> LoraConfig:
    """PEFT LoraConfig from our defaults overridden by the recipe's `lora:` block."""
    return LoraConfig(**LORA_DEFAULTS | dict(lora_args or {}))


def cpu_bf16_native() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def trainer_defaults(out_dir: Path, seed: int) -> dict[str, Any]:
    """TrainingArguments fields every stage shares: right on a CPU-only box, still right on one GPU."""
    cuda = torch.cuda.is_available()
    return {
        "output_dir": str(out_dir),  # only used if a recipe turns checkpoints on: out_dir/checkpoint-N
        "seed": seed,
        "use_cpu": not cuda,
        # bf16 autocast where the hardware runs it natively (1.5-1.9x faster on an AVX512-BF16 CPU), fp32 elsewhere
        "bf16": torch.cuda.is_bf16_supported() if cuda else cpu_bf16_native(),
        "fp16": False,
        # TRL turns checkpointing on; sub-1B models fit easily and recomputation costs ~20% of the step time
        # (transformers 5.24 renamed gradient_checkpointing to activation_checkpointing)
        "activation_checkpointing": False,
        "save_strategy": "no",  # a stage is resumed by the run manifest, not by Trainer checkpoints
        "report_to": "none",
        "logging_steps": 1,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": cuda,
        # several processes: LoRA uses every adapter weight, so DDP need not search each step for unused ones
        "ddp_find_unused_parameters": False,
    }


def merge_args(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers win; a later `gradient_checkpointing*` (old name) also overrides an earlier `activation_*`."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key.startswith("gradient_checkpointing"):
                # the new name wins inside TrainingArguments, so drop it for the old one to take effect
                merged.pop(key.replace("gradient", "activation", 1), None)
            merged[key] = value
    return merged


# cowest's own key in the sft/dpo/grpo blocks (TRL has none): rows per optimizer step over all processes
GLOBAL_BATCH = "global_batch_size"


def derive_batch(args: dict[str, Any], block: str, world: int | None = None) -> dict[str, Any]:
    """A stage block with `global_batch_size` replaced by TRL's per-device batch and gradient accumulation.

    TRL's own `per_device_train_batch_size` is per process, as in TRL; `global_batch_size` is one optimizer step's
    rows whatever the number of processes: per device `global / world` rows (or the block's own per-device batch, the
    rest made up by accumulation), so the same recipe takes the same steps on the same rows under any launcher.
    """
    if GLOBAL_BATCH not in args:
        return dict(args)
    args, world = dict(args), world or dist.world_size()
    total = args.pop(GLOBAL_BATCH)
    field = f"{block}.{GLOBAL_BATCH}"
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise RecipeError(f"{field}: {total!r} is not a whole number of rows >= 1")
    if "gradient_accumulation_steps" in args:
        raise RecipeError(f"{field}: set it or {block}.gradient_accumulation_steps, not both (it is derived)")
    own = args.get("per_device_train_batch_size")
    per_device = own or max(total // world, 1)
    if total % (per_device * world):
        unit = per_device * world if own else world
        raise RecipeError(f"{field}: {total} rows a step do not split into {world} process(es) x {per_device} rows "
                          f"x whole accumulation steps; use a multiple of {unit}")
    accumulation = total // (per_device * world)
    log.info("%s: global batch %d = %d process(es) x %d row(s) x %d accumulation step(s)",
             block, total, world, per_device, accumulation)
    return args | {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation}


def disable_telemetry() -> None:
    """Stop the usage pings TRL trainers and `datasets.load_dataset` send: our training is local, never online."""
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
    import datasets.config
    import huggingface_hub.constants

    # both libraries read the env vars once at import; these attributes are what they check at call time
    huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False


class JsonlLogCallback(TrainerCallback):
    """Writes each Trainer log (loss, learning_rate, rewards/..., step) as a JSON line and keeps it in memory.

    The file starts empty: a re-run or a run resumed after a kill logs only its own steps.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None and dist.is_main():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
        record |= {k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool))}
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def load_log(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL training log written by a stage."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def save_adapter(trainer: Any, out_dir: Path) -> Path:
    """Write the trained adapter atomically, and beside it the effective trainer and PEFT configs it trained with."""
    out = TrainDir(out_dir)
    target = out.adapter
    with atomic_dir(target) as tmp:
        trainer.save_model(str(tmp))  # adapter weights + config + tokenizer
    peft = trainer.model.peft_config["default"].to_dict() if hasattr(trainer.model, "peft_config") else {}
    peft = {k: sorted(v) if isinstance(v, set) else v for k, v in peft.items()}  # target_modules is a set
    # Defaults included and readable without torch (the Trainer's training_args.bin is a pickle).
    write_json(out.trainer_config, {"trainer": json.loads(trainer.args.to_json_string()), "peft": peft})
    dist.barrier()  # every process goes on to read the adapter the main one wrote
    return target
