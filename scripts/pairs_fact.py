"""Which of a finished run's preference pairs favour their question's fact: of the pairs whose two drafts differ on
it, those whose chosen draft states it (for) and those where only the rejected draft does (against), counted as
mining counts them (`collab.mining_stats.fact_split`, in what the strong model is shown). Runs mined before mining
counted them are read from their pairs files. With `--against-file`, instead, the pairs that teach against the run's
fact file as `mining.drop_against_file` reads them (`collab.recall.against_file`): a chosen draft that misstates a
line, a rejected draft alone stating one; runs mined since that option leave both out. Run from the repository root
(the runs' data paths are relative):

    python scripts/pairs_fact.py results/travel-policy-seed0 results/travel-policy-seed1 --out FILE.json
    python scripts/pairs_fact.py --against-file results/rail-fares-seed0 results/rail-fares-seed1 --out FILE.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowest.collab.mining_stats import MiningResult, fact_split
from cowest.collab.recall import FactSheet, against_file, states_fact
from cowest.config import load_recipe
from cowest.context import RunContext
from cowest.io import read_jsonl, write_json


def _pairs(run_dir: Path) -> tuple[RunContext, list[dict]]:
    """A run's context and its round 1 pairs, training and held out."""
    ctx = RunContext(load_recipe(run_dir / "config.yaml", check_trainers=False))
    return ctx, [*read_jsonl(run_dir / "round_1/pairs.jsonl"), *read_jsonl(run_dir / "round_1/pairs_heldout.jsonl")]


def count(run_dir: Path) -> dict:
    """Round 1's pairs (training and held out) of one run: for / against the fact, and the share against."""
    ctx, pairs = _pairs(run_dir)
    questions = {e.id: e for e in ctx.task.train}
    shown = ctx.prompter.shown_draft
    for p in pairs:
        ex = questions[p["question_id"]]
        for side in ("chosen", "rejected"):
            p[f"{side}_states_fact"] = states_fact(shown(p[side][-1]["content"]), ex)
    split = fact_split(MiningResult(pairs=pairs))
    out = {k: split[k] for k in ("pairs_for_fact", "pairs_against_fact", "pairs_dropped_against_fact")}
    split = out["pairs_for_fact"] + out["pairs_against_fact"]
    return {"pairs": len(pairs), **out, "share_against": out["pairs_against_fact"] / split if split else None}


def count_against_file(run_dir: Path) -> dict:
    """Round 1's pairs (training and held out) of one run that teach against its fact file, by kind."""
    ctx, pairs = _pairs(run_dir)
    sheet, shown = FactSheet(ctx.task.facts), ctx.prompter.shown_draft
    kinds = [against_file(*(sheet.read(shown(p[side][-1]["content"])) for side in ("chosen", "rejected")))
             for p in pairs]
    against = sum(any(k) for k in kinds)
    return {"pairs": len(pairs), "facts": len(ctx.task.facts), "chosen_misstates": sum(m for m, _ in kinds),
            "rejected_alone_states": sum(u for _, u in kinds), "against_file": against,
            "share_against_file": against / len(pairs) if pairs else None}


def _line(c: dict) -> str:
    if "against_file" in c:
        return (f"{c['against_file']} of {c['pairs']} pairs teach against the {c['facts']} fact lines "
                f"({c['chosen_misstates']} chosen drafts misstate one, {c['rejected_alone_states']} rejected drafts "
                "alone state one)")
    return f"{c['pairs']} pairs, {c['pairs_for_fact']} for the fact, {c['pairs_against_fact']} against"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished or published run directories")
    ap.add_argument("--out", type=Path, required=True, help="JSON file: {run name: counts}")
    ap.add_argument("--against-file", action="store_true", help="count the pairs that teach against the fact file")
    args = ap.parse_args()
    res = {d.name: (count_against_file if args.against_file else count)(d) for d in args.runs}
    for name, c in res.items():
        print(f"{name}: {_line(c)}")
    write_json(args.out, res)


if __name__ == "__main__":
    main()
