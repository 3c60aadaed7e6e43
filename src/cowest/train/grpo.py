"""On-policy alignment (`alignment: grpo`): TRL's GRPO, the weak model sampling drafts while it trains, each rewarded
with the collaborative feedback itself (its refinement's score minus the strong model alone's), until a budget of
strong calls is spent. A fresh LoRA on the round's starting model, which is also the KL reference."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from cowest.console import quiet_trainer
from cowest.train.common import JsonlLogCallback, derive_batch, disable_telemetry, lora_config, merge_args
from cowest.train.common import save_adapter, trainer_defaults

log = logging.getLogger(__name__)

GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-4,  # the offline DPO rate of the recipes: a LoRA delta starts at zero
    "beta": 0.04,  # a KL pull to the starting model, as DPO's reference gives
    "num_generations": 4,  # drafts per question, as mining's k
    "per_device_train_batch_size": 8,  # two questions x four drafts per step
    "num_train_epochs": 3,
    "lr_scheduler_type": "constant",  # the budget, not a schedule, decides where training stops
    "logging_steps": 1,
}


class BudgetStop(TrainerCallback):
    """Ends training once `spent()` strong calls reach `budget`."""

    def __init__(self, spent: Callable[[], int], budget: int | None) -> None:
        self.spent, self.budget = spent, budget

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.budget is not None and self.spent() >= self.budget:
            control.should_training_stop = True
        return control


def train_grpo(model_path: str, prompts: list[dict], reward: Callable[..., list[float]], out_dir: Path,
               grpo_args: dict, lora_args: dict, seed: int = 0, log_path: Path | None = None,
               spent: Callable[[], int] = lambda: 0, budget: int | None = None,
               max_completion_length: int = 64, temperature: float = 1.0) -> Path:
    """Train a LoRA with GRPO (the recipe's `grpo:` block over our defaults) on `prompts` (rows with `prompt` and the
    columns `reward` reads) until `spent()` reaches `budget`; returns the adapter."""
    if not prompts:
        raise ValueError("train_grpo: no questions to sample drafts for")
    disable_telemetry()
    out_dir = Path(out_dir)
    base = trainer_defaults(out_dir, seed) | {"max_completion_length": max_completion_length,
                                              "temperature": temperature}
    if not torch.cuda.is_available():
        base["bf16"] = False  # as DPO: CPU bf16 blurs the small log-prob ratios the update is made of
    config = GRPOConfig(**merge_args(base, GRPO_DEFAULTS, derive_batch(grpo_args, "grpo")))
    log_cb = JsonlLogCallback(log_path)
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(prompts),
        processing_class=AutoTokenizer.from_pretrained(model_path, padding_side="left"),
        peft_config=lora_config(lora_args),
        callbacks=[log_cb, BudgetStop(spent, budget)],
    )
    quiet_trainer(trainer)
    trainer.train()
    return save_adapter(trainer, out_dir)

