"""Train/test splits: deterministic given `TaskConfig.seed`, never one question on both sides."""

from __future__ import annotations

import random
from typing import Iterable

from ..config import TaskConfig
from .base import Example
from .fields import norm, question_key
from .readers import TaskDataError


def dedupe(examples: Iterable[Example]) -> list[Example]:
    """Drop exact repeats (same normalised question, options and gold), keeping the first."""
    seen: set[tuple] = set()
    out = []
    for e in examples:
        key = (question_key(e.question), tuple(norm(o) for o in e.options or ()), norm(e.gold))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def split_examples(examples: list[Example], cfg: TaskConfig) -> tuple[list[Example], list[Example]]:
    """Seeded train/test split that never puts one question in both, then the n_train / n_test caps.

    Exact repeats are dropped first; rows sharing a question text but not their options (MMLU has many
    "Which of the following is true?") are kept and always land in the same split.
    """
    if not 0.0 <= cfg.test_fraction <= 1.0:
        raise TaskDataError(f"task.test_fraction must be in [0, 1], got {cfg.test_fraction}")
    examples = dedupe(examples)
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(question_key(e.question), []).append(e)
    order = list(groups.values())
    random.Random(cfg.seed).shuffle(order)
    target = round(cfg.test_fraction * len(examples))
    train: list[Example] = []
    test: list[Example] = []
    for group in order:
        (test if len(test) < target else train).extend(group)
    return _cap(train, cfg.n_train), _cap(test, cfg.n_test)


def _cap(examples: list[Example], n: int | None) -> list[Example]:
    return examples if n is None else examples[: max(n, 0)]


def given_splits(
    train: list[Example], test: list[Example], cfg: TaskConfig
) -> tuple[list[Example], list[Example]]:
    """Source-provided splits: dedupe, drop train questions that are in test, seeded samples for the caps."""
    test = dedupe(test)
    test_q = {question_key(e.question) for e in test}
    train = [e for e in dedupe(train) if question_key(e.question) not in test_q]
    return _sample(train, cfg.n_train, cfg.seed), _sample(test, cfg.n_test, cfg.seed)


def _sample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """The first n of a seeded shuffle (each split its own generator, so one cap never moves the other)."""
    if n is None:
        return examples
    order = list(examples)
    random.Random(seed).shuffle(order)
    return order[: max(n, 0)]
