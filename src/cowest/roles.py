"""Which training questions each stage uses: SFT trains on some, holds others out as its validation slice, and
mining drafts for questions SFT never saw, so that drafts are written as they will be at test time.

- mining: the questions matching `mining.where`; a task that marks its own mining questions (metadata `sft: false`,
  the formulary's `n_sft_reasoning`) keeps them, otherwise a seeded share `mining.share` of them;
- SFT validation: the task's own slice (the formulary's validation wordings), otherwise a seeded share
  `sft_recall.valid_fraction` of the remaining questions;
- SFT: every other training question.
No question is in two roles. The split depends on the recipe's seed, the task and these fields only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .config import Recipe
from .tasks.base import Example, TaskData, select_where


@dataclass(frozen=True)
class Questions:
    """The training questions of each role, and how the roles were chosen."""

    sft: list[Example]
    sft_valid: list[Example]
    mining: list[Example]
    how: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Questions per role, for manifests."""
        return {"sft": len(self.sft), "sft_valid": len(self.sft_valid), "mining": len(self.mining)}


def assign(task: TaskData, recipe: Recipe) -> Questions:
    """Split the task's training questions into SFT, SFT validation and mining (see the module docstring)."""
    train = task.train
    pool = select_where(train, recipe.mining.where)
    how: dict[str, str] = {}
    marked = [e for e in pool if e.metadata.get("sft") is False]
    if marked:
        mining = marked
        how["mining"] = "the task's own mining questions (sft: false)"
    else:
        n = min(max(1, round(recipe.mining.share * len(pool))), len(pool))
        if n == len(train) and n > 1:
            n -= 1  # SFT needs at least one question
        mining = _sample(pool, n, f"mining:{recipe.seed}")
        how["mining"] = f"a seeded {recipe.mining.share:g} share of the {len(pool)} questions matching mining.where"
    taken = {e.id for e in mining}
    rest = [e for e in train if e.id not in taken and e.metadata.get("sft", True)]
    own = task.extra.get("sft_valid")
    if own:
        valid = list(own)
        how["sft_valid"] = "the task's own validation slice"
    else:
        cfg = recipe.sft_recall
        n = min(max(cfg.min_valid, round(cfg.valid_fraction * len(rest))), cfg.max_valid, len(rest) - 1)
        valid = _sample(rest, n, f"sft-valid:{recipe.seed}") if n > 0 else []
        how["sft_valid"] = f"a seeded {cfg.valid_fraction:g} share of the {len(rest)} training questions not mined"
    held = {e.id for e in valid}
    sft = [e for e in rest if e.id not in held]
    if recipe.mining.n_questions is not None:
        mining = mining[: recipe.mining.n_questions]
    return Questions(sft=sft, sft_valid=valid, mining=mining, how=how)


def _sample(examples: list[Example], n: int, key: str) -> list[Example]:
    """`n` of `examples`, drawn with a seeded generator, in their original order."""
    picked = set(random.Random(key).sample(range(len(examples)), n))
    return [e for i, e in enumerate(examples) if i in picked]
