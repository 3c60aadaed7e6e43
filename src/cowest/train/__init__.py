"""Training stages on TRL + PEFT: LoRA SFT, adapter merging, and DPO / KTO preference alignment."""

from cowest.train.common import LORA_DEFAULTS, JsonlLogCallback, load_log
from cowest.train.dpo import DPO_DEFAULTS, KTO_DEFAULTS, load_pairs, to_unpaired, train_dpo
from cowest.train.sft import SFT_DEFAULTS, merge_adapter, train_sft

__all__ = [
    "DPO_DEFAULTS",
    "KTO_DEFAULTS",
    "LORA_DEFAULTS",
    "SFT_DEFAULTS",
    "JsonlLogCallback",
    "load_log",
    "load_pairs",
    "merge_adapter",
    "to_unpaired",
    "train_dpo",
    "train_sft",
]
