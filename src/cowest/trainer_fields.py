"""The recipe's pass-through blocks (`sft:`, `dpo:`, `grpo:`, `lora:`) checked before any stage: every key a field
of TRL's or PEFT's config, every value one that config and a run can take."""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

if TYPE_CHECKING:
    from .recipe_lines import Locator

GLOBAL_BATCH = "global_batch_size"  # cowest's own key in the trainer blocks (train/common.py: derive_batch)
TRAINER_BLOCKS = ("sft", "dpo", "grpo")
# Set for the check only: what the hardware allows is decided where the stage runs (train/common.py)
_HARDWARE = {"output_dir": "check", "use_cpu": True, "bf16": False, "fp16": False, "report_to": "none"}


class _Obvious(BaseModel):
    """Values TRL and PEFT accept without a word though no run can use them."""

    model_config = ConfigDict(extra="ignore")

    learning_rate: Optional[PositiveFloat] = None
    beta: Optional[PositiveFloat] = None
    num_train_epochs: Optional[PositiveFloat] = None
    per_device_train_batch_size: Optional[PositiveInt] = None
    gradient_accumulation_steps: Optional[PositiveInt] = None
    global_batch_size: Optional[PositiveInt] = None
    r: Optional[PositiveInt] = None
    lora_alpha: Optional[PositiveFloat] = None
    lora_dropout: Optional[float] = Field(None, ge=0.0, lt=1.0)


def _classes(alignment: object) -> dict[str, tuple[type, dict[str, Any]]]:
    """Each block's config class and the defaults cowest trains with under it."""
    from peft import LoraConfig
    from trl import DPOConfig, GRPOConfig, KTOConfig, SFTConfig

    from .train.common import LORA_DEFAULTS
    from .train.dpo import DPO_DEFAULTS, KTO_DEFAULTS
    from .train.grpo import GRPO_DEFAULTS
    from .train.sft import SFT_DEFAULTS

    kto = alignment == "kto"
    return {"sft": (SFTConfig, SFT_DEFAULTS), "dpo": (KTOConfig, KTO_DEFAULTS) if kto else (DPOConfig, DPO_DEFAULTS),
            "grpo": (GRPOConfig, GRPO_DEFAULTS), "lora": (LoraConfig, LORA_DEFAULTS)}


def _block_problems(block: str, args: dict[str, Any], cls: type, defaults: dict[str, Any],
                    locate: Locator) -> list[str]:
    """Unknown keys, out-of-range values, and what the config class itself refuses, for one block."""
    known = {f.name for f in dataclasses.fields(cls)} | ({GLOBAL_BATCH} if block in TRAINER_BLOCKS else set())
    problems = [locate.problem((block, k), f"not a field of {cls.__name__}") for k in args if k not in known]
    try:
        _Obvious.model_validate(args)
    except ValidationError as e:
        problems += [locate.problem((block, *err["loc"]), err["msg"]) for err in e.errors()]
    if problems:
        return problems
    from .train.common import derive_batch

    hardware = _HARDWARE if block in TRAINER_BLOCKS else {}
    try:
        _build(cls, defaults | derive_batch(args, block, world=1) | hardware)
    except (ValueError, TypeError) as e:  # TRL's and PEFT's own checks: name the key that alone makes them refuse
        culprit = next((k for k in args if k != GLOBAL_BATCH and _refuses(cls, defaults | {k: args[k]} | hardware)),
                       None)
        problems.append(locate.problem((block, *([culprit] if culprit else [])), f"{cls.__name__} refuses it: {e}"))
    return problems


def _build(cls: type, kwargs: dict[str, Any]) -> None:
    with warnings.catch_warnings():  # deprecations of TRL's own defaults: the stage's log has them
        warnings.simplefilter("ignore")
        cls(**kwargs)


def _refuses(cls: type, kwargs: dict[str, Any]) -> bool:
    try:
        _build(cls, kwargs)
    except (ValueError, TypeError):
        return True
    return False


def check_passthrough(data: dict[str, Any], locate: Locator) -> list[str]:
    """Every problem of the recipe's trainer and LoRA blocks, each naming its field (they are read as TRL's, PEFT's
    own config objects will read them)."""
    problems: list[str] = []
    for block, (cls, defaults) in _classes(data.get("alignment")).items():
        args = data.get(block) or {}
        if isinstance(args, dict):  # anything else is the recipe schema's error
            problems += _block_problems(block, args, cls, defaults, locate)
    return problems
