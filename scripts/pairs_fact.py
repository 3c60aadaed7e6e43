"""Which of a finished run's preference pairs favour their question's fact: of the pairs whose two drafts differ on
it, those whose chosen draft states it (for) and those where only the rejected draft does (against), counted as
mining counts them (`collab.mining_stats.fact_split`, in what the strong model is shown). Runs mined before mining
counted them are read from their pairs files. Run from the repository root (the runs' data paths are relative):

    python scripts/pairs_fact.py results/travel-policy-seed0 results/travel-policy-seed1 --out FILE.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowest.collab.mining_stats import MiningResult, fact_split
from cowest.collab.recall import states_fact
from cowest.config import load_recipe
from cowest.context import RunContext
from cowest.io import read_jsonl, write_json


def count(run_dir: Path) -> dict:
    """Round 1's pairs (training and held out) of one run: for / against the fact, and the share against."""
    ctx = RunContext(load_recipe(run_dir / "config.yaml", check_trainers=False))
    questions = {e.id: e for e in ctx.task.train}
    shown = ctx.prompter.shown_draft
    pairs = [*read_jsonl(run_dir / "round_1/pairs.jsonl"), *read_jsonl(run_dir / "round_1/pairs_heldout.jsonl")]
    for p in pairs:
        ex = questions[p["question_id"]]
        for side in ("chosen", "rejected"):
            p[f"{side}_states_fact"] = states_fact(shown(p[side][-1]["content"]), ex)
    split = fact_split(MiningResult(pairs=pairs))
    out = {k: split[k] for k in ("pairs_for_fact", "pairs_against_fact", "pairs_dropped_against_fact")}
    split = out["pairs_for_fact"] + out["pairs_against_fact"]
    return {"pairs": len(pairs), **out, "share_against": out["pairs_against_fact"] / split if split else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished or published run directories")
    ap.add_argument("--out", type=Path, required=True, help="JSON file: {run name: counts}")
    args = ap.parse_args()
    res = {d.name: count(d) for d in args.runs}
    for name, c in res.items():
        print(f"{name}: {c['pairs']} pairs, {c['pairs_for_fact']} for the fact, {c['pairs_against_fact']} against")
    write_json(args.out, res)


if __name__ == "__main__":
    main()
