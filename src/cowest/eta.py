"""A whole run's time left, for the console's stage lines.

Each stage's work is counted from the recipe and the questions (SFT rows and epochs, drafts, strong calls, DPO steps)
and priced at the rates `cowest init` budgets with, measured with the offline default models on 2 CPU cores. Once a
stage has run, the estimates of the stages left of its group (training; drafting and strong calls) are scaled by how
long the finished ones took against theirs, so another machine, a remote strong model or cache hits correct it as the
run goes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .evaluations import evaluations
from .recipes import EVAL_CALL_S, MINE_CALL_S, SFT_STEP_S
from .systems import get_systems

if TYPE_CHECKING:
    from .config import Recipe
    from .ledger import StageDecl
    from .roles import Questions
    from .tasks.base import TaskData

DRAFT_S = 1.0  # one weak draft (the formulary's recall probe: 64 drafts in 66 s)
DPO_STEP_S = 2.5  # per pair in a DPO step (33 steps of 4 pairs in 338 s)
FACTS_PER_ROW = 3  # fact lines packed into one SFT row, about (collab.targets)


def _eval_s(systems: list[str], n: int) -> float:
    """An evaluation of `systems` on n questions: one draft per weak variant, one strong call per other system."""
    found = get_systems(systems)
    weak = {s.variant for s in found if s.variant}
    return n * (len(weak) * DRAFT_S + sum(s.kind != "weak" for s in found) * EVAL_CALL_S)


def estimate(recipe: Recipe, task: TaskData, q: Questions, stages: Mapping[str, StageDecl]) -> dict[str, float]:
    """Estimated seconds of each planned stage on the offline default models, 2 CPU cores."""
    m, n_mined = recipe.mining, len(q.mining)
    repeats = 1 if recipe.task.sft_corpus is True else int(recipe.task.sft_corpus or 0)
    rows = len(q.sft) + math.ceil(len(task.corpus) * repeats / FACTS_PER_ROW)
    calls = min(m.strong_call_budget or n_mined * (m.k + 1), n_mined * (m.k + 1))
    pairs = min(m.pair_target or n_mined, n_mined)  # about one a mined question (formulary 0.8, rail fares 1.3)
    sizes = {"sft_valid": len(q.sft_valid), "valid": round(m.heldout_fraction * n_mined),
             "recall": len(task.extra.get("recall", [])), recipe.eval.split: len(task.test)}
    evals = evaluations(recipe, task, bool(q.sft_valid))  # each evaluation's split and systems, as the run makes it
    out: dict[str, float] = {}
    for name, s in stages.items():
        if s.kind == "sft":
            out[name] = rows * recipe.sft.get("num_train_epochs", 3) / 8 * SFT_STEP_S
        elif s.kind == "mine":
            out[name] = n_mined * m.k * DRAFT_S + calls * MINE_CALL_S
        elif s.kind in ("dpo", "grpo"):
            train = pairs * (1 - m.heldout_fraction) * recipe.dpo.get("num_train_epochs", 1) * DPO_STEP_S
            out[name] = train + (n_mined * m.k * DRAFT_S + calls * MINE_CALL_S if s.kind == "grpo" else 0.0)
        else:
            split, systems = evals[name]
            out[name] = _eval_s(systems, sizes.get(split, 0))
    return out


def _group(name: str) -> str:
    """Training stages (the weak model's compute) and the rest (drafting and strong calls) run at their own paces."""
    return "train" if name == "sft" or name.endswith("/dpo") else "calls"


def time_left(estimates: Mapping[str, float], order: list[str], timings: Mapping[str, float], current: str) -> float:
    """Seconds left in the run from the start of `current`: the estimates of it and the stages after it, each scaled
    by this run's pace on the stages of its group that it ran (timings of 0 are stages found up to date); a group not
    seen yet keeps the estimate (one slow SFT says little about a remote strong model's calls)."""
    pace = {}
    for g in ("train", "calls"):
        ran = [n for n, t in timings.items() if t > 0 and estimates.get(n) and _group(n) == g]
        pace[g] = sum(timings[n] for n in ran) / sum(estimates[n] for n in ran) if ran else 1.0
    return sum(pace[_group(n)] * estimates.get(n, 0.0) for n in order[order.index(current):])


def say(seconds: float) -> str:
    """'about 34 min' / 'about 1 h 05 min' / 'under a minute'."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    return f"about {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"about {minutes} min"
