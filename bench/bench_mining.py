"""Pairs per 100 strong calls: adaptive mining against the exhaustive way, on the same questions and SFT model.

The naive baseline is the paper's loop as it was: for every question, the strong model alone and a refinement of
each of its K sampled drafts (`mining.strategy: exhaustive`). Adaptive mining (`collab/adaptive.py`) drafts first,
skips questions whose drafts all show the strong model the same text, skips the drafts of questions the strong model
already answers perfectly, refines each distinct shown draft once and adds drafts where a question splits. Each way
runs with its own empty call cache, so every strong call it asks for is made; no pair target or budget stops either.
Usage: python bench/bench_mining.py RUN_DIR [--questions 24] [--out FILE.json]   (RUN_DIR: a run with an SFT model)
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


def once(recipe, strategy: str, n: int, cache: Path) -> dict:
    """Mine the first `n` mining questions one way, with a fresh call cache; its calls, pairs and time."""
    run = Run(recipe, cache_path=cache)  # a fresh cache per way: every call is really made
    cfg = run.recipe.mining.model_copy(update={"strategy": strategy, "pair_target": None, "strong_call_budget": None})
    examples = run.questions.mining[:n]
    weak = run.weak("sft")
    t0 = time.perf_counter()
    try:
        collab = run.collaborator(weak)
        evaluator = RuleEvaluator(run.prompter)
        if strategy == "adaptive":
            res = mine_adaptive(examples, collab, evaluator, cfg, seed=run.recipe.seed)
        else:
            res = mine(examples, collab, evaluator, cfg, seed=run.recipe.seed)
        made = run.strong.usage.calls
    finally:
        weak.close()
        run.release()
    s = res.stats
    return {"strategy": strategy, "questions": len(examples), "wall_s": round(time.perf_counter() - t0, 1),
            "strong_requests": s["strong_requests"], "strong_calls_made": made, "pairs": s["pairs"],
            "questions_with_pair": s["questions_with_pair"],
            "pairs_per_100_calls": round(100 * s["pairs"] / made, 2) if made else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    recipe = load_recipe(args.run_dir / "config.yaml")
    recipe = recipe.model_copy(update={"output_dir": str(args.run_dir.parent), "name": args.run_dir.name})
    rows = []
    with tempfile.TemporaryDirectory(prefix="cowest-mining-") as tmp:
        for strategy in ("exhaustive", "adaptive"):
            rows.append(r := once(recipe, strategy, args.questions, Path(tmp) / f"{strategy}.sqlite"))
            print(f"{strategy:<11} {r['questions']} questions  {r['strong_calls_made']:4d} strong calls  "
                  f"{r['pairs']:3d} pairs  {r['pairs_per_100_calls']:6.2f} pairs / 100 calls  {r['wall_s']:7.1f} s",
                  flush=True)
    base = rows[0]["pairs_per_100_calls"]
    for r in rows:
        r["vs_exhaustive"] = round(r["pairs_per_100_calls"] / base, 2) if base else None
    print(f"adaptive / exhaustive: {rows[1]['vs_exhaustive']}x pairs per 100 strong calls, "
          f"{rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x the wall time")
    out = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "run": str(args.run_dir),
           "task": recipe.task.name, "data": recipe.task.path, "k": recipe.mining.k,
           "extra_drafts": recipe.mining.extra_drafts, "draft_sections": recipe.collab.draft_sections, "rows": rows}
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
