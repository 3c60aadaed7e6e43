"""Which evaluations a whole run makes and with which systems: one decision that the stage plan (`cowest check`,
`[stage k/N]`, the time left) and the evaluation stages both read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .systems import get_systems

if TYPE_CHECKING:
    from .config import Recipe
    from .tasks.base import TaskData


def default_systems(recipe: Recipe) -> list[str]:
    """The recipe's eval systems, plus CoWest after each earlier round when there are several."""
    names = list(recipe.eval.systems)
    if recipe.rounds > 1 and "cowest" in names:
        names += [f"cowest_round_{k}" for k in range(1, recipe.rounds) if f"cowest_round_{k}" not in names]
    return names


def evaluations(recipe: Recipe, task: TaskData, sft_valid: bool) -> dict[str, tuple[str, list[str]]]:
    """Each evaluation of a run, in run order, as (split, systems): the SFT model on its validation slice (when SFT
    has one), the single models and collaborations on the held-out mined questions (when mining holds some out), the
    test, and the weak models on the task's fact-recall probe (when it has one and the recipe asks)."""
    out: dict[str, tuple[str, list[str]]] = {}
    if sft_valid:
        out["eval_sft_valid"] = ("sft_valid", ["weak_sft"])
    if recipe.mining.heldout_fraction > 0:
        kinds = ("weak", "strong", "collab")
        out["eval_valid"] = ("valid", [s.name for s in get_systems(default_systems(recipe)) if s.kind in kinds])
    out["eval"] = (recipe.eval.split, default_systems(recipe))
    if "recall" in task.extra and recipe.eval.recall_probe:
        weak = [s for s in ("weak_base", "weak_sft", "weak_aligned") if s in recipe.eval.systems]
        out["eval_recall"] = ("recall", weak or ["weak_sft", "weak_aligned"])
    return out
