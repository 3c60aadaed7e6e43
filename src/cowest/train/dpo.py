"""Stage 3: preference alignment of the SFT model with a fresh LoRA (TRL DPO, or KTO on unpaired drafts)."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset, load_dataset
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer
from trl.data_utils import unpair_preference_dataset

from cowest.console import quiet_trainer
from cowest.train.common import JsonlLogCallback, derive_batch, disable_telemetry, lora_config, merge_args
from cowest.train.common import save_adapter, trainer_defaults

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
KTO_LOSSES = ("kto", "apo_zero_unpaired")
MARGIN_EPS = 1e-3

_SHARED_DEFAULTS: dict[str, Any] = {
    "beta": 0.1,
    # TRL's 1e-6 is tuned for full fine-tuning; a LoRA delta starts at zero and needs ~10x more, while staying well
    # below the SFT rate so a few hundred noisy pairs cannot drag the policy far from the reference
    "learning_rate": 2e-5,
    "num_train_epochs": 2,
    "per_device_train_batch_size": 4,  # > 1 is also what KTO's KL estimate needs
    "gradient_accumulation_steps": 1,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,
    "max_length": 512,  # prompt + one draft; over-long prompts are dropped by TRL
}
DPO_DEFAULTS: dict[str, Any] = _SHARED_DEFAULTS | {
    "loss_type": ["sigmoid"],
    # the reference (the SFT model) never changes: one forward pass per pair up front, not one per pair and epoch
    "precompute_ref_log_probs": True,
}
KTO_DEFAULTS: dict[str, Any] = _SHARED_DEFAULTS | {"loss_type": "kto"}


def load_pairs(pairs: list[dict] | str | Path) -> Dataset:
    """Preference pairs (rows or a JSONL path) as a Dataset holding only prompt/chosen/rejected."""
    if isinstance(pairs, (str, Path)):
        path = Path(pairs)
        with path.open() as f:
            if not any(line.strip() for line in f):
                return Dataset.from_dict({c: [] for c in PAIR_COLUMNS})
        disable_telemetry()
        ds = load_dataset("json", data_files=str(path), split="train")
    else:
        # pick the columns first: metadata of mixed types would break Dataset.from_list
        ds = Dataset.from_list([{c: p[c] for c in PAIR_COLUMNS} for p in pairs])
        if len(ds) == 0:
            return Dataset.from_dict({c: [] for c in PAIR_COLUMNS})
    missing = [c for c in PAIR_COLUMNS if c not in ds.column_names]
    if missing:
        raise ValueError(f"preference pairs lack column(s) {missing}; got {ds.column_names}")
    return ds.select_columns(list(PAIR_COLUMNS))


def to_unpaired(pairs: Dataset, seed: int = 0) -> Dataset:
    """KTO rows: chosen drafts labelled True, rejected False, each (prompt, completion, label) once, shuffled."""
    rows = unpair_preference_dataset(pairs)
    triples = zip(rows["prompt"], rows["completion"], rows["label"])
    keys = [json.dumps(t, sort_keys=True) for t in triples]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    # TRL unpairs into all-chosen then all-rejected and KTO samples sequentially: mix labels within batches
    return rows.select(sorted(first.values())).shuffle(seed=seed).flatten_indices()


def _kto_args(dpo_args: dict[str, Any], unpaired: Dataset) -> dict[str, Any]:
    """Map the recipe's `dpo:` block onto KTOConfig, dropping DPO-only settings and balancing the two labels."""
    fields = {f.name for f in dataclasses.fields(KTOConfig)}
    kept, dropped = {}, []
    for key, value in dpo_args.items():
        if key not in fields or (key == "loss_type" and value not in KTO_LOSSES):
            dropped.append(key)
        else:
            kept[key] = value
    if dropped:
        warnings.warn(f"KTO ignores these dpo settings: {sorted(dropped)}", stacklevel=3)
    n_good = sum(unpaired["label"])
    n_bad = len(unpaired) - n_good
    if n_good and n_bad and "desirable_weight" not in kept and "undesirable_weight" not in kept:
        # KTO paper: keep desirable_weight * n_good / (undesirable_weight * n_bad) in [1, 4/3]
        if n_bad >= n_good:
            kept["desirable_weight"] = round(n_bad / n_good, 2)
        else:
            kept["undesirable_weight"] = round(n_good / n_bad, 2)
    return kept


def _warn_if_flat(records: list[dict[str, Any]], method: str) -> None:
    """Warn when the mean reward margin over the last half of the logged steps is ~0 (the policy did not move)."""
    margins = [r["rewards/margins"] for r in records if "rewards/margins" in r]
    tail = margins[len(margins) // 2 :]
    if not tail:
        return
    mean = sum(tail) / len(tail)
    if abs(mean) < MARGIN_EPS:
        msg = (
            f"{method.upper()} reward margin stayed near zero (mean {mean:.2e} over the last {len(tail)} logged steps): "
            "the policy barely moved from the SFT reference; raise learning_rate or epochs, or check that chosen "
            "and rejected drafts differ"
        )
        logger.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _base_args(out_dir: Path, seed: int, evaluate: bool, every_epoch: bool) -> dict[str, Any]:
    """Trainer fields under the recipe's: shared defaults, fp32 on CPU, per-epoch evaluation and adapters if asked."""
    base = trainer_defaults(out_dir, seed)
    if not torch.cuda.is_available():
        # CPU bf16 autocast blurs the small policy-reference log-prob gaps DPO learns from: on the demo's data two
        # epochs reached margin 0.34 in bf16 against 0.73 in fp32, same steps (bench/bench_training.py)
        base["bf16"] = False
    if evaluate:
        base |= {"eval_strategy": "epoch", "per_device_eval_batch_size": 8}
    if every_epoch:
        base |= {"save_strategy": "epoch", "save_only_model": True}
    return base


def train_dpo(
    model_path: str,
    pairs: list[dict] | Path,
    out_dir: Path,
    dpo_args: dict,
    lora_args: dict,
    seed: int = 0,
    log_path: Path | None = None,
    method: Literal["dpo", "kto"] = "dpo",
    eval_pairs: list[dict] | Path | None = None,
    every_epoch: bool = False,
) -> Path:
    """Train a fresh LoRA on the merged SFT model with DPO (or KTO); the reference is the base with adapters off.

    With `eval_pairs` (pairs of held-out questions) the trainer also logs held-out loss, reward accuracy and margin
    after every epoch, unless the recipe sets its own `eval_strategy`. With `every_epoch` each epoch's adapter is
    also kept, in out_dir/checkpoint-N (the trainer's own checkpoints, without optimizer state).
    """
    if method not in ("dpo", "kto"):
        raise ValueError(f"train_dpo: method must be 'dpo' or 'kto', got {method!r}")
    dataset = load_pairs(pairs)
    if len(dataset) == 0:
        src = f" in {pairs}" if isinstance(pairs, (str, Path)) else ""
        raise ValueError(
            f"train_dpo: zero preference pairs{src}: mining found no question with both a chosen and a rejected "
            "draft; mine more questions or drafts (mining.k), or use mining.mode=rank"
        )
    disable_telemetry()
    out_dir = Path(out_dir)
    dpo_args = derive_batch(dpo_args or {}, "dpo")
    eval_set = load_pairs(eval_pairs) if eval_pairs is not None else None
    eval_set = eval_set if eval_set is not None and len(eval_set) else None
    base = _base_args(out_dir, seed, eval_set is not None, every_epoch)
    if method == "kto":
        dataset = to_unpaired(dataset, seed)
        eval_set = to_unpaired(eval_set, seed) if eval_set is not None else None
        kto_args = merge_args(base, KTO_DEFAULTS, _kto_args(dpo_args, dataset))
        config, trainer_cls = KTOConfig(**kto_args), KTOTrainer
    else:
        config, trainer_cls = DPOConfig(**merge_args(base, DPO_DEFAULTS, dpo_args)), DPOTrainer
    log = JsonlLogCallback(log_path)
    trainer = trainer_cls(
        model=model_path,  # a local path keeps a real model name, so TRL never looks for a reference on the Hub
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_set,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        peft_config=lora_config(lora_args),  # with no ref_model, TRL disables this adapter to get the reference
        callbacks=[log],
    )
    quiet_trainer(trainer)
    trainer.train()
    _warn_if_flat(log.records, method)
    return save_adapter(trainer, out_dir)
