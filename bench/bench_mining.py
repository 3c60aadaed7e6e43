"""Pairs per 100 strong calls: adaptive mining against the exhaustive way, on the same questions and SFT model.

The naive baseline is the paper's loop as it was: for every question, the strong model alone and a refinement of each of
its K sampled drafts (`mining.strategy: exhaustive`). Adaptive mining (`collab/adaptive.py`) drafts first, skips
questions whose drafts all show the strong model the same text, skips the drafts of questions the strong model already
answers perfectly, refines each distinct shown draft at most once and only while its question may still give a pair, and
adds drafts where a question splits. Each way runs with its own empty call cache, so every strong call it asks for is
made; no pair target or budget stops either. Adaptive mining runs twice: asking the strong model alone first for every
question (`mining.alone: first`, as it did before `auto`), and as a run does by default (`mining.alone: auto`: first for
the first wave, then only where a question's refinements differ, when that wave says it costs fewer calls). The last two
rows are the default as a run does it, stopped by the recipe's `pair_target` and `strong_call_budget`: first without
drawing again for the questions whose drafts all showed one text (`mining.redraws: 0`, the naive way for that step),
then with the recipe's `mining.redraws`. Rows after the first adaptive one read a copy of its cache, and every adaptive
row's calls are its requests (adaptive mining never sends one prompt twice, so on an empty cache it would make each of
them); their wall times then time only the calls the cache could not answer. With `--cache FILE` (a run's
`cache.sqlite`, whose mining asked most of the same prompts) the first adaptive row starts from a copy of it too: the
call counts stay exact, and only the exhaustive row's wall time is comparable.
Usage: python bench/bench_mining.py RUN_DIR [--questions N] [--cache FILE] [--keep DIR] [--out FILE.json]
(RUN_DIR: a run with an SFT model; N: the first N mining questions, all of them by default)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from cowest.collab import RuleEvaluator, mine
from cowest.collab.adaptive import GIVE_UP, _states, mine_adaptive
from cowest.collab.recall import FactSheet
from cowest.config import load_run_recipe
from cowest.errors import RecipeError
from cowest.io import write_json
from cowest.run import Run


def once(recipe, strategy: str, n: int | None, cache: Path, stops: bool = False, alone: str = "auto",
         redraws: int | None = None) -> dict:
    """Mine the first `n` mining questions one way (with the recipe's target and budget if `stops`, with `redraws`
    if given); its calls, pairs, time, and what each question gave (`by_question`)."""
    run = Run(recipe, cache_path=cache)
    update = {"strategy": strategy, "alone": alone} | ({} if redraws is None else {"redraws": redraws})
    update |= {} if stops else {"pair_target": None, "strong_call_budget": None}
    cfg = run.recipe.mining.model_copy(update=update)
    examples = run.questions.mining[:n]
    weak = run.weak("sft")
    t0 = time.perf_counter()
    s: dict = {}
    try:
        collab = run.collaborator(weak)
        evaluator = RuleEvaluator(run.prompter)
        sheet = FactSheet(run.task.facts)  # as the mining stage leaves pairs out
        if strategy == "adaptive":
            res = mine_adaptive(examples, collab, evaluator, cfg, seed=run.recipe.seed, sheet=sheet)
        else:
            res = mine(examples, collab, evaluator, cfg, seed=run.recipe.seed, sheet=sheet)
        s = res.stats
        made = s["strong_requests"] if strategy == "adaptive" else run.strong.usage.calls
    finally:
        weak.close()
        run.release()
    name = strategy if strategy == "exhaustive" else f"adaptive, alone {alone}" + (", recipe's stops" if stops else "")
    name += ", no redraw" if redraws == 0 else ""
    return {"strategy": name, "questions": len(examples), "alone_last_after": s.get("alone_last_after"),
            "questions_sent": s.get("questions"), "redraws": s.get("redraws"),
            "wall_s": round(time.perf_counter() - t0, 1),
            "strong_requests": s["strong_requests"], "strong_calls_made": made, "pairs": s["pairs"],
            "questions_with_pair": s["questions_with_pair"],
            "pairs_per_100_calls": round(100 * s["pairs"] / made, 2) if made else 0.0,
            "by_question": by_question(res, run.prompter.shown_draft, examples)}


def by_question(res, shown, examples) -> dict[str, dict]:
    """Per question: its distinct shown drafts and how many of them state its fact (or gold), the strong model
    alone's score, the drafts refined (copies sharing a refinement counted once), chosen and rejected among them, and
    its pairs; to trace where two ways differ."""
    ex = {e.id: e for e in examples}
    out: dict[str, dict] = {}
    for d in res.drafts:
        q = out.setdefault(d["question_id"], {"shown": set(), "alone": None, "refined": set(), "chosen": 0,
                                              "rejected": 0, "pairs": 0})
        q["shown"].add(shown(d["draft"]))
    texts = {(d["question_id"], d["k"]): shown(d["draft"]) for d in res.drafts}
    for r in res.scores:
        q = out[r["question_id"]]
        if r["k"] is None:
            q["alone"] = r["score"]
        elif (r["question_id"], r["k"]) in texts and texts[r["question_id"], r["k"]] not in q["refined"]:
            q["refined"].add(texts[r["question_id"], r["k"]])
            q["chosen" if r["label"] == "chosen" else "rejected"] += r["label"] is not None
    for p in res.pairs:
        out[p["question_id"]]["pairs"] += 1
    return {k: {**v, "shown": len(v["shown"]), "stating": sum(_states(t, ex[k]) for t in v["shown"]),
                "refined": len(v["refined"])} for k, v in out.items()}


def fewer(base: dict[str, dict], way: dict[str, dict]) -> list[str]:
    """One line per question where `way` found fewer pairs than `base`: what each saw of it."""
    def seen(q: dict) -> str:
        return (f"{q['shown']} shown ({q['stating']} stating the fact), alone {q['alone']}, {q['refined']} refined, "
                f"{q['chosen']} chosen / {q['rejected']} rejected, {q['pairs']} pairs")
    return [f"{k}: exhaustive {seen(q)}; this way {seen(way[k])}" for k, q in base.items()
            if k in way and way[k]["pairs"] < q["pairs"]]


def against(base: dict[str, dict], way: dict[str, dict]) -> dict:
    """Where `way` and `base` parted, question by question: strong alone scored differently on one prompt (with
    `strong.reuse_prefix` the request before it changes llama.cpp's arithmetic), and the questions with fewer pairs,
    by why: its strong alone scored otherwise, it was left before all its drafts were refined (given up, or not sent
    within the budget), or its drafts were other draws."""
    both = [k for k in base if k in way]
    alone = [k for k in both if way[k]["alone"] is not None and way[k]["alone"] != base[k]["alone"]]
    lost = [k for k in both if way[k]["pairs"] < base[k]["pairs"]]
    early = [k for k in lost if k not in alone and way[k]["refined"] < min(base[k]["refined"], way[k]["shown"])]
    return {"alone_scored_differently": len(alone), "alone_asked_both": sum(way[k]["alone"] is not None for k in both),
            "fewer_pairs": len(lost), "pairs_lost": sum(base[k]["pairs"] - way[k]["pairs"] for k in lost),
            "fewer_alone_differs": sum(k in alone for k in lost), "fewer_left_early": len(early),
            "pairs_lost_left_early": sum(base[k]["pairs"] - way[k]["pairs"] for k in early),
            "fewer_other": len(lost) - sum(k in alone for k in lost) - len(early),
            "more_pairs": sum(way[k]["pairs"] > base[k]["pairs"] for k in both),
            "pairs_gained": sum(max(way[k]["pairs"] - base[k]["pairs"], 0) for k in both),
            "left_after_give_up": sum(way[k]["refined"] == GIVE_UP < way[k]["shown"]
                                      and not (way[k]["chosen"] and way[k]["rejected"]) for k in both)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--questions", type=int, help="the first N mining questions (default: all)")
    ap.add_argument("--cache", type=Path, help="start the adaptive rows from a copy of this call cache")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    ap.add_argument("--keep", type=Path, help="keep the call caches (exhaustive.sqlite, adaptive.sqlite) in this new "
                                              "folder, e.g. to start another way's rows from them with --cache")
    args = ap.parse_args()
    try:
        recipe = load_run_recipe(args.run_dir)
    except RecipeError as e:
        ap.error(str(e))
    rows = []
    if args.keep and any(args.keep.glob("*.sqlite")):
        ap.error(f"{args.keep}: holds call caches already; --keep needs an empty or new folder")
    keep = nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="cowest-mining-")
    with keep as tmp:
        Path(tmp).mkdir(parents=True, exist_ok=True)
        adaptive = Path(tmp) / "adaptive.sqlite"
        if args.cache:
            shutil.copyfile(args.cache, adaptive)
        ways = (("exhaustive", False, "first", None), ("adaptive", False, "first", None),
                ("adaptive", False, "auto", None), ("adaptive", True, "auto", 0), ("adaptive", True, "auto", None))
        for strategy, stops, alone, redraws in ways:
            cache = Path(tmp) / "exhaustive.sqlite" if strategy == "exhaustive" else adaptive
            rows.append(r := once(recipe, strategy, args.questions, cache, stops, alone, redraws))
            print(f"{r['strategy']:<26} {r['questions']} questions  {r['strong_calls_made']:4d} strong calls  "
                  f"{r['pairs']:3d} pairs  {r['pairs_per_100_calls']:6.2f} pairs / 100 calls  {r['wall_s']:7.1f} s",
                  flush=True)
    base = rows[0]["pairs_per_100_calls"]
    for r in rows:
        r["vs_exhaustive"] = round(r["pairs_per_100_calls"] / base, 2) if base else None
    for r in rows[1:]:
        print(f"{r['strategy']} / exhaustive: {r['vs_exhaustive']}x pairs per 100 strong calls")
        r["against_exhaustive"] = against(rows[0]["by_question"], r["by_question"])
        print(f"  {r['against_exhaustive']}")
        for line in fewer(rows[0]["by_question"], r["by_question"]):
            print("  " + line)
    out = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "run": str(args.run_dir),
           "task": recipe.task.name, "data": recipe.task.path, "k": recipe.mining.k,
           "extra_drafts": recipe.mining.extra_drafts, "draft_sections": recipe.collab.draft_sections,
           "pair_target": recipe.mining.pair_target, "strong_call_budget": recipe.mining.strong_call_budget,
           "redraws": recipe.mining.redraws,
           "adaptive_cache": "a copy of the run's call cache" if args.cache else "empty", "rows": rows}
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
