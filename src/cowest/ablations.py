"""The paper's ablations as sub-runs of a finished run: draft formats, pair subsets, a second strong model, and the
alignment settings searched on held-out mined questions. Each sub-run lives in ablations/<tag>/ and shares the
parent's call cache (and, where the setting allows, its SFT stage)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Protocol, Sequence

from .config import AblationConfig, EvalConfig, ModelConfig, Recipe, dump_recipe
from .io import read_json, read_jsonl, write_json, write_jsonl, write_text
from .layout import RunLayout
from .results import EvalResults, load_results


class Run(Protocol):
    """What an ablation needs of a run (`cowest.run.Run`): its recipe and folder, and its stages; a sub-run is
    `type(run)(recipe)`."""

    recipe: Recipe
    layout: RunLayout

    def __init__(self, recipe: Recipe, cache_path: Path | None = None) -> None: ...
    @property
    def cache_path(self) -> Path: ...
    def mine(self, round_: int) -> dict: ...
    def dpo(self, round_: int) -> dict: ...
    def evaluate(self) -> dict: ...
    def evaluate_valid(self) -> dict | None: ...
    def train_and_evaluate(self) -> None: ...
    def release(self) -> None: ...


def ablate(run: Run) -> dict:
    """The recipe's ablations (formats, pair subsets, strong swap, alignment settings) -> ablations/results.json."""
    a = run.recipe.ablations
    run.release()
    out: dict = {}
    if a.formats:
        out["formats"] = [_ablate_format(run, f) for f in a.formats]
    if a.pair_fractions:
        out["pairs"] = _ablate_pairs(run, a.pair_fractions)
    if a.strong is not None:
        out["strong_swap"] = _ablate_strong(run, a.strong)
    if a.dpo_settings:
        out["dpo_search"] = _search_dpo(run, a.dpo_settings)
    if a.at_budget:
        out["at_budget"] = _at_budget(run, a.at_budget)
    write_json(run.layout.ablation_results, out)
    return out


def _child(run: Run, tag: str, share: Sequence[str] = (), **update: object) -> Run:
    """A sub-run in ablations/<tag> with recipe fields replaced; `share` links this run's stage directories."""
    update = dict(name=f"{run.recipe.name}/ablations/{tag}", ablations=AblationConfig(), **update)
    child = type(run)(run.recipe.model_copy(update=update), cache_path=run.cache_path)
    write_text(child.layout.config, dump_recipe(child.recipe))
    for d in share:
        link = child.layout.stage_dir(d)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(run.layout.stage_dir(d), child.layout.root), target_is_directory=True)
    return child


def _eval_systems(run: Run, systems: list[str]) -> EvalConfig:
    return run.recipe.eval.model_copy(update={"systems": systems})


def _valid_eval(run: Run) -> EvalConfig:
    """An alignment variant's evaluation on the held-out mined questions: what its CoWest row is judged against."""
    return _eval_systems(run, ["weak_sft", "strong", "refine", "cowest"])


def _ablate_format(run: Run, fmt: str) -> dict:
    """SFT, mining, DPO and evaluation with another draft format: refinement (unaligned) vs CoWest (aligned)."""
    res = _read_results(run.layout)
    if not (fmt == run.recipe.collab.draft_format and res and {"refine", "cowest"} <= res.systems.keys()):
        child = _child(run, f"format-{fmt}", collab=run.recipe.collab.model_copy(update={"draft_format": fmt}),
                       eval=_eval_systems(run, ["refine", "cowest"]))
        try:
            child.train_and_evaluate()
        finally:
            child.release()
        res = _read_results(child.layout)
    return {"format": fmt, "unaligned": _primary_score(res, "refine"), "aligned": _primary_score(res, "cowest")}


def _ablate_pairs(run: Run, fractions: list[float]) -> list[dict]:
    """A learning curve: DPO from the SFT model on nested seeded subsets of round 1's pairs, then CoWest."""
    pairs = read_jsonl(run.layout.round(1).pairs)
    order = list(range(len(pairs)))
    random.Random(run.recipe.seed).shuffle(order)
    base = _read_results(run.layout)
    out = []
    if base and "refine" in base.systems:
        out.append({"fraction": 0.0, "n_pairs": 0, **_primary_score(base, "refine")})
    for f in sorted(fractions):
        n = max(1, round(f * len(pairs)))
        if n == len(pairs) and run.recipe.rounds == 1 and base and "cowest" in base.systems:
            out.append({"fraction": f, "n_pairs": n, **_primary_score(base, "cowest")})
            continue
        child = _child(run, f"pairs-{f:g}", share=["sft"], rounds=1, eval=_eval_systems(run, ["cowest"]))
        write_jsonl(child.layout.round(1).pairs, [pairs[i] for i in sorted(order[:n])])
        try:
            child.dpo(1)
            child.evaluate()
        finally:
            child.release()
        out.append({"fraction": f, "n_pairs": n, **_primary_score(_read_results(child.layout), "cowest")})
    return out


def _search_dpo(run: Run, settings: list[dict]) -> list[dict]:
    """Each alignment setting trained on round 1's training pairs and judged on the held-out mined questions
    only: held-out reward accuracy / margin per epoch, and SFT vs aligned drafts refined by the strong model."""
    src = run.layout.round(1)
    if not src.heldout.exists() or not read_json(src.heldout):
        raise RuntimeError("dpo_settings needs held-out mined questions: set mining.heldout_fraction > 0 and run")
    out = []
    for i, setting in enumerate(settings):
        setting = dict(setting)
        alignment = setting.pop("alignment", run.recipe.alignment)
        if not setting and alignment == run.recipe.alignment and run.recipe.rounds == 1:
            child = run  # the recipe's own setting is the run itself: its stages are reused when up to date
        else:
            child = _child(run, f"dpo-{i}", share=["sft"], rounds=1, alignment=alignment,
                           dpo={**run.recipe.dpo, **setting},
                           eval=_valid_eval(run))
            dest = child.layout.round(1)
            for mined, copy in ((src.pairs, dest.pairs), (src.pairs_heldout, dest.pairs_heldout),
                                (src.heldout, dest.heldout)):
                write_text(copy, mined.read_text())
        try:
            counts = child.dpo(1)["counts"]
            valid = child.evaluate_valid()
        finally:
            child.release()
        res = _read_results(child.layout, "eval_valid")
        out.append({"setting": {"alignment": alignment, **setting}, "heldout": counts.get("heldout", []),
                    "valid_n": res.n if res else 0, "cowest": _primary_score(res, "cowest"),
                    "refine": _primary_score(res, "refine"), **_aligned_drafts(res),
                    "valid_stage": valid["key"] if valid else None})
    return out


def _at_budget(run: Run, variants: list[str]) -> list[dict]:
    """The run's alignment (one offline round) beside each variant at the same strong-call budget, on the held-out
    mined questions only: offline DPO over N rounds (budget and pair target split between them), on-policy GRPO,
    one round with `mining.drop_against_fact` switched."""
    m = run.recipe.mining
    if m.strong_call_budget is None or not m.heldout_fraction:
        raise RuntimeError("at_budget needs mining.strong_call_budget and mining.heldout_fraction > 0")
    out = [_budget_row(run, "dpo, 1 round")]
    for variant in variants:
        if variant == "grpo":
            child = _child(run, "at-budget-grpo", share=["sft"], rounds=1, alignment="grpo",
                           eval=_valid_eval(run))
            rounds, label = 1, "grpo (on-policy)"
        elif variant == "drop_against_fact":
            child = _child(run, "at-budget-drop-against-fact", share=["sft"], rounds=1,
                           mining=m.model_copy(update={"drop_against_fact": not m.drop_against_fact}),
                           eval=_valid_eval(run))
            rounds, label = 1, f"dpo, 1 round, drop_against_fact: {str(not m.drop_against_fact).lower()}"
        else:
            rounds = int(variant.removeprefix("rounds_"))
            label = f"dpo, {rounds} rounds"
            split = {"strong_call_budget": m.strong_call_budget // rounds,
                     "pair_target": m.pair_target // rounds if m.pair_target else None}
            child = _child(run, f"at-budget-{variant}", share=["sft"], rounds=rounds,
                           mining=m.model_copy(update=split),
                           eval=_valid_eval(run))
        try:
            for k in range(1, rounds + 1):
                if child.recipe.alignment != "grpo":
                    child.mine(k)
                child.dpo(k)
            child.evaluate_valid()
        finally:
            child.release()
        out.append(_budget_row(child, label))
    return out


def _budget_row(run: Run, label: str) -> dict:
    """What one alignment variant spent (strong calls over its rounds) and what it gave on the held-out questions."""
    spent, trained = 0, []
    for k in range(1, run.recipe.rounds + 1):
        mined = run.layout.manifest(f"round_{k}/mine")
        if mined.exists():
            spent += read_json(mined)["counts"].get("strong_requests", 0)
        counts = read_json(run.layout.manifest(f"round_{k}/dpo"))["counts"]
        spent += counts.get("strong_calls", 0)
        trained.append("skipped" if counts.get("skipped") else f"{counts.get('pairs', counts.get('drafts_scored'))}")
    res = _read_results(run.layout, "eval_valid")
    diff = res.comparisons.get("cowest - refine") if res else None
    return {"variant": label, "strong_calls": spent, "trained_on": ", ".join(trained), "valid_n": res.n if res else 0,
            "refine": _primary_score(res, "refine"), "cowest": _primary_score(res, "cowest"),
            "cowest_minus_refine": {"diff": diff.diff, "lo": diff.lo, "hi": diff.hi} if diff else {},
            **_aligned_drafts(res)}


def _ablate_strong(run: Run, strong: ModelConfig) -> dict:
    """Strong alone, refinement and CoWest with a second strong model and the same weak models."""
    rounds = [f"round_{k}" for k in range(1, run.recipe.rounds + 1)]
    child = _child(run, "strong-swap", share=["sft", *rounds], strong=strong,
                        eval=_eval_systems(run, ["strong", "refine", "cowest"]))
    try:
        child.evaluate()
    finally:
        child.release()
    res = _read_results(child.layout)
    return {"strong_model": strong.model,
            "systems": {n: {"label": v.label, **_primary_score(res, n)} for n, v in res.systems.items()}}


def _read_results(layout: RunLayout, name: str = "eval") -> EvalResults | None:
    """A run's evaluation results, None when it has not run."""
    return load_results(layout.eval(name).results)


def _primary_score(results: EvalResults | None, system: str) -> dict:
    """{value, lo, hi} of a system's primary (first) metric."""
    primary = results.systems[system].primary if results else None
    if primary is None:
        raise RuntimeError(f"no evaluation of {system!r} to read for the ablation")
    return primary.dump()


def _aligned_drafts(results: EvalResults | None) -> dict:
    """What the aligned drafts did on the held-out questions: helped, hurt, changed vs SFT, stated the fact."""
    d = results.drafts.get("aligned") if results else None
    return {k: getattr(d, k) for k in ("helped", "hurt", "changed_vs_sft", "states_fact") if d and d.holds(k)}
