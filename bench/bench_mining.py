"""Pairs per 100 strong calls: adaptive mining against the exhaustive way, on the same questions and SFT model.

The naive baseline is the paper's loop as it was: for every question, the strong model alone and a refinement of
each of its K sampled drafts (`mining.strategy: exhaustive`). Adaptive mining (`collab/adaptive.py`) drafts first,
skips questions whose drafts all show the strong model the same text, skips the drafts of questions the strong model
already answers perfectly, refines each distinct shown draft at most once and only while its question may still give
a pair, and adds drafts where a question splits. Each way runs with its own empty call cache, so every strong call it
asks for is made; no pair target or budget stops either. A third row is adaptive mining as a run does it, stopped by
the recipe's `pair_target` and `strong_call_budget`: it reads the second row's cache, and its calls are its requests
(adaptive mining never sends one prompt twice, so on an empty cache it would make each of them).
Usage: python bench/bench_mining.py RUN_DIR [--questions N] [--out FILE.json]   (RUN_DIR: a run with an SFT model;
N: the first N mining questions, all of them by default)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from cowest.collab import RuleEvaluator, mine
from cowest.collab.adaptive import mine_adaptive
from cowest.config import load_recipe
from cowest.io import write_json
from cowest.run import Run


def once(recipe, strategy: str, n: int | None, cache: Path, stops: bool = False) -> dict:
    """Mine the first `n` mining questions one way (with the recipe's target and budget if `stops`); its calls, pairs
    and time."""
    run = Run(recipe, cache_path=cache)
    update = {"strategy": strategy} if stops else {"strategy": strategy, "pair_target": None, "strong_call_budget": None}
    cfg = run.recipe.mining.model_copy(update=update)
    examples = run.questions.mining[:n]
    weak = run.weak("sft")
    t0 = time.perf_counter()
    s: dict = {}
    try:
        collab = run.collaborator(weak)
        evaluator = RuleEvaluator(run.prompter)
        if strategy == "adaptive":
            s = mine_adaptive(examples, collab, evaluator, cfg, seed=run.recipe.seed).stats
        else:
            s = mine(examples, collab, evaluator, cfg, seed=run.recipe.seed).stats
        made = s["strong_requests"] if stops else run.strong.usage.calls
    finally:
        weak.close()
        run.release()
    return {"strategy": f"{strategy}, recipe's stops" if stops else strategy, "questions": len(examples),
            "wall_s": round(time.perf_counter() - t0, 1),
            "strong_requests": s["strong_requests"], "strong_calls_made": made, "pairs": s["pairs"],
            "questions_with_pair": s["questions_with_pair"],
            "pairs_per_100_calls": round(100 * s["pairs"] / made, 2) if made else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--questions", type=int, help="the first N mining questions (default: all)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    recipe = load_recipe(args.run_dir / "config.yaml")
    recipe = recipe.model_copy(update={"output_dir": str(args.run_dir.parent), "name": args.run_dir.name})
    rows = []
    with tempfile.TemporaryDirectory(prefix="cowest-mining-") as tmp:
        for strategy, stops in (("exhaustive", False), ("adaptive", False), ("adaptive", True)):
            rows.append(r := once(recipe, strategy, args.questions, Path(tmp) / f"{strategy}.sqlite", stops))
            print(f"{r['strategy']:<26} {r['questions']} questions  {r['strong_calls_made']:4d} strong calls  "
                  f"{r['pairs']:3d} pairs  {r['pairs_per_100_calls']:6.2f} pairs / 100 calls  {r['wall_s']:7.1f} s",
                  flush=True)
    base = rows[0]["pairs_per_100_calls"]
    for r in rows:
        r["vs_exhaustive"] = round(r["pairs_per_100_calls"] / base, 2) if base else None
    for r in rows[1:]:
        print(f"{r['strategy']} / exhaustive: {r['vs_exhaustive']}x pairs per 100 strong calls")
    out = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "run": str(args.run_dir),
           "task": recipe.task.name, "data": recipe.task.path, "k": recipe.mining.k,
           "extra_drafts": recipe.mining.extra_drafts, "draft_sections": recipe.collab.draft_sections,
           "pair_target": recipe.mining.pair_target, "strong_call_budget": recipe.mining.strong_call_budget,
           "rows": rows}
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
