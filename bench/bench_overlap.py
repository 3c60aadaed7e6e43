"""Overlap of weak drafting and strong calls: mining and evaluation, sequential against overlapped, against the bound.

The weak model is the real offline one (SmolLM2-135M on this machine's CPU, no cache); the strong model is a stand-in
OpenAI-compatible server in its own process that answers every call after a fixed latency ("Final answer: A", so no
re-asks), reached through the `openai` backend with a concurrency cap. Questions: the formulary task's reasoning
questions. For each workload and cap it reports the wall time of today's sequential order (every draft first, then
the strong calls) and of the overlapped one, and the bound max(weak compute, strong calls x latency / slots), where
weak compute is the time spent loading and running the weak model in that same overlapped run (in the sequential run
it is reported too: it differs by some percent from run to run on this machine).
Usage: python bench/bench_overlap.py [--questions 200] [--k 2] [--latency 0.5] [--slots 16 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from cowest.collab import Collaborator, Prompter, RuleEvaluator, mine
from cowest.config import CollabConfig, EvalConfig, MiningConfig, ModelConfig, load_recipe
from cowest.evaluate import evaluate
from cowest.systems import get_systems
from cowest.io import write_json
from cowest.models.hf import HFBackend
from cowest.models.openai_compat import OpenAIBackend
from cowest.run import Run
from cowest.testing.faults import FaultServerProcess

EVAL_SYSTEMS = ["weak_sft", "weak_aligned", "strong", "refine", "cowest"]


def timed_weak(cfg: ModelConfig, weak_s: list[float]) -> HFBackend:
    """The weak model, adding the seconds it takes to load and to generate to `weak_s[0]`."""
    t0 = time.perf_counter()
    model = HFBackend(cfg)
    generate = model._generate

    def timed(*a, **kw):
        t = time.perf_counter()
        try:
            return generate(*a, **kw)
        finally:
            weak_s[0] += time.perf_counter() - t

    model._generate = timed  # type: ignore[method-assign]
    weak_s[0] += time.perf_counter() - t0
    return model


def summary(row: dict, latency: float) -> str:
    """One measured row as a line of the log."""
    return (f"sequential {row['sequential_s']:6.1f} s, overlapped {row['overlapped_s']:6.1f} s, bound "
            f"{row['bound_s']:6.1f} s (weak {row['weak_overlapped_s']:.1f}, in the sequential run {row['weak_s']:.1f}; "
            f"strong {row['strong_calls']} x {latency:g} / {row['slots']} = {row['strong_bound_s']:.1f}); overlapped "
            f"{row['overlapped_vs_bound']:.3f}x of the bound, sequential {row['sequential_vs_bound']:.3f}x; "
            f"{row['speedup']:.2f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--k", type=int, default=2, help="drafts per question when mining")
    ap.add_argument("--latency", type=float, default=0.5, help="seconds the stand-in takes per call")
    ap.add_argument("--slots", type=int, nargs="+", default=[16, 2], help="strong calls in flight at most")
    ap.add_argument("--draft-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    run = Run(load_recipe(Path("recipes/formulary.yaml"), [f"task.options.n_mining={args.questions}"]))
    examples = [e for e in run.task.train if e.metadata.get("kind") == "reasoning"][: args.questions]
    prompter: Prompter = run.prompter
    ccfg = CollabConfig(**{**run.recipe.collab.model_dump(), "draft_max_tokens": args.draft_tokens,
                           "strong_max_tokens": 16})
    weak_cfg = ModelConfig(backend="hf", model=run.recipe.weak.model, batch_size=16, cache="off")
    mcfg = MiningConfig(k=args.k, temperature=0.8)
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"== {len(examples)} questions, weak {weak_cfg.model} on CPU, stand-in strong at {args.latency:g} s a call; "
          f"{machine}", flush=True)
    out: dict = {"machine": machine, "questions": len(examples), "k": args.k, "latency_s": args.latency,
                 "draft_tokens": args.draft_tokens, "rows": []}
    n = len(examples)
    weak_s = [0.0]  # seconds in the weak model (loading and generating), summed over a run

    def weak_model() -> HFBackend:
        return timed_weak(weak_cfg, weak_s)

    with FaultServerProcess(args.latency, answer="Final answer: A") as server:
        for slots in args.slots:
            scfg = ModelConfig(backend="openai", model="stand-in", base_url=server.url, max_concurrency=slots,
                               timeout_s=60, cache="off")
            for workload, calls in (("mining", n * (1 + args.k)), ("eval", 3 * n)):
                strong_bound = calls * args.latency / slots
                row: dict = {"workload": workload, "slots": slots, "strong_calls": calls,
                             "strong_bound_s": round(strong_bound, 1)}
                for overlap in (False, True):
                    strong = OpenAIBackend(scfg, api_key="sk-local")
                    collab = Collaborator(None, strong, prompter, ccfg, overlap=overlap)
                    weak_s[0] = 0.0
                    t0 = time.perf_counter()
                    if workload == "mining":
                        collab.weak = weak_model()
                        mine(examples, collab, RuleEvaluator(prompter), mcfg, seed=0)
                    else:
                        evaluate(examples, get_systems(EVAL_SYSTEMS), lambda variant: weak_model(), collab,
                                 EvalConfig(n_bootstrap=100), seed=0)
                    wall = time.perf_counter() - t0
                    strong.close()
                    row["overlapped_s" if overlap else "sequential_s"] = round(wall, 1)
                    # the weak model's own time in each run (it varies by some percent between runs)
                    row["weak_overlapped_s" if overlap else "weak_s"] = round(weak_s[0], 1)
                bound = max(row["weak_overlapped_s"], strong_bound)
                row |= {"bound_s": round(bound, 1), "overlapped_vs_bound": round(row["overlapped_s"] / bound, 3),
                        "sequential_vs_bound": round(row["sequential_s"] / bound, 3),
                        "speedup": round(row["sequential_s"] / row["overlapped_s"], 2)}
                out["rows"].append(row)
                print(f"{workload:>6}, {slots:>2} slots: {summary(row, args.latency)}", flush=True)
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
