"""How alignment moved the share of drafts that state their question's fact, beside what CoWest gained over
refinement, per published run: on the test questions (`eval/`) and on the held-out mined questions
(`eval_valid/`, the validation a run can see). Read from each run's results (`drafts.sft.states_fact`,
`drafts.aligned.states_fact`, the `cowest - refine` comparison); refinement's score where the SFT draft states its
fact and where it does not, and what stating every fact would gain (`evaluate.fact_gain`), from its predictions, so
runs evaluated before results stored them are read too. Run from the repository root (the runs' data paths are
relative):

    python scripts/fact_shift.py results/formulary-seed0 results/rail-fares-seed0 ... --out FILE.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cowest.collab.recall import states_fact
from cowest.config import load_recipe
from cowest.context import RunContext
from cowest.evaluate import by_fact, fact_gain
from cowest.io import read_jsonl, write_json
from cowest.results import load_results


def shift(run_dir: Path, evaluation: str) -> dict | None:
    """SFT and aligned drafts' fact share, its change and CoWest - refinement (fractions); None without them."""
    path = run_dir / evaluation / "results.json"
    if not path.is_file():
        return None
    res = load_results(path)
    sft, aligned = res.drafts.get("sft"), res.drafts.get("aligned")
    comp = res.comparisons.get("cowest - refine")
    if sft is None or aligned is None or sft.states_fact is None or aligned.states_fact is None or comp is None:
        return None
    return {"questions": res.n, "sft_states_fact": sft.states_fact, "aligned_states_fact": aligned.states_fact,
            "fact_shift": aligned.states_fact - sft.states_fact, "cowest_minus_refine": comp.diff,
            **sft_fact_scores(run_dir, evaluation, sft.states_fact)}


def sft_fact_scores(run_dir: Path, evaluation: str, share: float) -> dict:
    """Refinement's mean score where the SFT draft states its fact and where not, and `fact_gain` (fractions)."""
    ctx = RunContext(load_recipe(run_dir / "config.yaml", check_trainers=False))
    examples = {e.id: e for e in (*ctx.task.train, *ctx.task.test)}
    rows = [r for r in read_jsonl(run_dir / evaluation / "predictions.jsonl") if r["system"] == "refine"]
    with_, without = by_fact([states_fact(r["draft"], examples[r["question_id"]]) for r in rows],
                             [r["score"] for r in rows])
    return {"sft_scored_with_fact": with_, "sft_scored_without_fact": without,
            "fact_gain": fact_gain(share, with_, without)}


def gain(v: float | None) -> str:
    """A fact gain in points ('?' where no draft stated its fact)."""
    return "?" if v is None else f"{100 * v:+.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished or published run directories")
    ap.add_argument("--out", type=Path, required=True, help="JSON file: {run name: {eval, eval_valid}}")
    args = ap.parse_args()
    res = {d.name: {e: shift(d, e) for e in ("eval", "eval_valid")} for d in args.runs}
    for name, r in res.items():
        cells = [f"{e}: fact {100 * s['sft_states_fact']:.0f}% -> {100 * s['aligned_states_fact']:.0f}% "
                 f"({100 * s['fact_shift']:+.0f}), cowest - refine {100 * s['cowest_minus_refine']:+.1f}, "
                 f"every SFT draft with its fact {gain(s['fact_gain'])}" for e, s in r.items() if s]
        print(f"{name}: {'; '.join(cells) or 'no aligned drafts with a checkable fact'}")
    write_json(args.out, res)


if __name__ == "__main__":
    main()
