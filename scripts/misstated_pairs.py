"""How many of a finished run's preference pairs have a chosen (or rejected) draft that misstates a line of its fact
file, as `mining.drop_misstated` reads them (`collab.recall.FactSheet`, in what the strong model is shown): the pairs
that option leaves out of runs mined from now on. Run from the repository root (the runs' data paths are relative):

    python scripts/misstated_pairs.py results/rail-fares-seed0 results/rail-fares-seed1 --out FILE.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowest.collab.recall import FactSheet
from cowest.config import load_recipe
from cowest.context import RunContext
from cowest.io import read_jsonl, write_json


def count(run_dir: Path) -> dict:
    """Round 1's pairs (training and held out) of one run whose chosen / rejected draft misstates a fact line."""
    ctx = RunContext(load_recipe(run_dir / "config.yaml", check_trainers=False))
    sheet, shown = FactSheet(ctx.task.facts), ctx.prompter.shown_draft
    pairs = [*read_jsonl(run_dir / "round_1/pairs.jsonl"), *read_jsonl(run_dir / "round_1/pairs_heldout.jsonl")]
    wrong = {side: sum(sheet.misstated(shown(p[side][-1]["content"])) is not None for p in pairs)
             for side in ("chosen", "rejected")}
    return {"pairs": len(pairs), "facts": len(ctx.task.facts), "chosen_misstated": wrong["chosen"],
            "rejected_misstated": wrong["rejected"],
            "share_chosen_misstated": wrong["chosen"] / len(pairs) if pairs else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished or published run directories")
    ap.add_argument("--out", type=Path, required=True, help="JSON file: {run name: counts}")
    args = ap.parse_args()
    res = {d.name: count(d) for d in args.runs}
    for name, c in res.items():
        print(f"{name}: {c['pairs']} pairs, {c['chosen_misstated']} chosen and {c['rejected_misstated']} rejected "
              f"drafts misstate one of {c['facts']} fact lines")
    write_json(args.out, res)


if __name__ == "__main__":
    main()
