"""How many of a finished run's preference pairs teach against its fact file, as `mining.drop_against_file` reads
them (`collab.recall.FactSheet`, in what the strong model is shown): pairs whose chosen draft misstates a line, and
pairs whose rejected draft states a line the chosen one does not. Runs mined from now on leave both out. Run from the
repository root (the runs' data paths are relative):

    python scripts/fact_file_pairs.py results/rail-fares-seed0 results/rail-fares-seed1 --out FILE.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowest.collab.recall import FactSheet
from cowest.config import load_recipe
from cowest.context import RunContext
from cowest.io import read_jsonl, write_json


def count(run_dir: Path) -> dict:
    """Round 1's pairs (training and held out) of one run that teach against its fact file, by kind."""
    ctx = RunContext(load_recipe(run_dir / "config.yaml", check_trainers=False))
    sheet, shown = FactSheet(ctx.task.facts), ctx.prompter.shown_draft
    pairs = [*read_jsonl(run_dir / "round_1/pairs.jsonl"), *read_jsonl(run_dir / "round_1/pairs_heldout.jsonl")]
    read = [(sheet.read(shown(p["chosen"][-1]["content"])), sheet.read(shown(p["rejected"][-1]["content"])))
            for p in pairs]
    misstated = [c[1] is not None for c, _ in read]
    unsaid = [bool(r[0] - c[0]) for c, r in read]
    against = sum(m or u for m, u in zip(misstated, unsaid))
    return {"pairs": len(pairs), "facts": len(ctx.task.facts), "chosen_misstates": sum(misstated),
            "rejected_alone_states": sum(unsaid), "against_file": against,
            "share_against_file": against / len(pairs) if pairs else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished or published run directories")
    ap.add_argument("--out", type=Path, required=True, help="JSON file: {run name: counts}")
    args = ap.parse_args()
    res = {d.name: count(d) for d in args.runs}
    for name, c in res.items():
        print(f"{name}: {c['against_file']} of {c['pairs']} pairs teach against the {c['facts']} fact lines "
              f"({c['chosen_misstates']} chosen drafts misstate one, {c['rejected_alone_states']} rejected drafts "
              "alone state one)")
    write_json(args.out, res)


if __name__ == "__main__":
    main()
