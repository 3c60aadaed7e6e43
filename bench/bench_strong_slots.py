"""Strong-model throughput by llama.cpp server slots (n_parallel): the demo's strong-alone calls, re-asks included.

Each setting starts its own server and sends the same prompts with no cache; 1 slot (one request at a time) is the
naive baseline. Needs the offline assets (`cowest models install`).
Usage: python bench/bench_strong_slots.py [--prompts 16] [--slots 1 2 4] [--max-tokens 80]
"""

from __future__ import annotations

import argparse
import time

from cowest.collab import Collaborator, Prompter
from cowest.config import CollabConfig, ModelConfig, TaskConfig
from cowest.models import build_backend
from cowest.tasks import load_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--max-tokens", type=int, default=80)
    args = ap.parse_args()

    task = load_task(TaskConfig(name="formulary", options={"n_drugs": 6, "n_test": args.prompts}))
    examples = task.test[: args.prompts]
    prompter = Prompter(task.type, "knowledge")
    ccfg = CollabConfig(strong_max_tokens=args.max_tokens)
    print(f"== strong alone: {len(examples)} prompts, max {args.max_tokens} new tokens (+ re-asks), "
          "Qwen2.5-Coder-1.5B Q4_K_M on llama.cpp, CPU")
    base = None
    for slots in args.slots:
        cfg = ModelConfig(backend="llamacpp", model="qwen2.5-coder-1.5b-instruct", n_ctx=2048, n_parallel=slots,
                          cache="off")
        strong = build_backend(cfg)
        try:
            strong.generate([prompter.strong_alone(examples[0])], n=1)  # warm-up: load and first prompt
            t0 = time.perf_counter()
            out = Collaborator(None, strong, prompter, ccfg).strong_alone(examples)
            wall = time.perf_counter() - t0
        finally:
            strong.close()
        gen = sum(a.completion_tokens for a in out)
        base = base or wall
        print(f"n_parallel {slots}: {wall:6.1f} s  {gen:5d} generated tok  {gen / wall:5.1f} tok/s  "
              f"{len(examples) / wall:5.2f} q/s  speed-up vs 1 slot {base / wall:4.2f}x  "
              f"answered {sum(a.answer is not None for a in out)}/{len(out)}")


if __name__ == "__main__":
    main()
