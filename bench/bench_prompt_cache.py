"""Whether the strong model's greedy answer to a prompt depends on the request before it, and what reusing the prompt
prefix saves (`strong.reuse_prefix`, llama.cpp's prompt cache).

For the first N mining questions of a run, the strong model alone is asked twice per setting: in order A (the
questions in turn, back to back, as adaptive mining asks them) and in order B (reversed, each right after a
refinement of another question, as the paper's loop interleaves them), on one fresh one-slot server per setting,
greedy at the recipe's `collab.strong_max_tokens`. The naive baseline is `reuse_prefix: false` (every prompt computed
whole); the rows give how many answers were the same text and the same extracted answer in both orders, the prompt
tokens the server computed, and the wall time.
Usage: python bench/bench_prompt_cache.py RUN_DIR [--questions N] [--out FILE.json]   (RUN_DIR: a run folder with
its config.yaml; N: 12 by default)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from openai import OpenAI

from cowest.config import load_run_recipe
from cowest.errors import RecipeError
from cowest.io import write_json
from cowest.models.llamacpp import LlamaCppServer
from cowest.run import Run


def once(run: Run, reuse: bool, n: int) -> dict:
    """Ask the strong model alone on the first `n` mining questions in orders A and B; what changed and what it cost."""
    recipe, p = run.recipe, run.prompter
    qs = run.questions.mining[:n]
    facts = [ln for ln in Path(recipe.task.corpus_path).read_text().splitlines() if ln.strip()] if (
        recipe.task.corpus_path) else [f"The answer to {q.question!r} needs care." for q in qs]
    with LlamaCppServer.of(recipe.strong, n_parallel=1, alias=None, reuse_prefix=reuse) as srv, \
            OpenAI(base_url=srv.base_url, api_key=srv.api_key) as client:
        computed = 0

        def ask(conv) -> str:
            nonlocal computed
            r = client.chat.completions.create(model="strong", messages=conv, temperature=0, seed=0,
                                               max_tokens=recipe.collab.strong_max_tokens)
            computed += r.model_extra["timings"]["prompt_n"]
            return r.choices[0].message.content

        t0 = time.perf_counter()
        a = {q.id: ask(p.strong_alone(q)) for q in qs}
        order_a_s = time.perf_counter() - t0
        b = {}
        for k, q in enumerate(reversed(qs)):
            ask(p.strong_refine(qs[k], f"Background: {facts[k % len(facts)]}"))
            b[q.id] = ask(p.strong_alone(q))
        wall = time.perf_counter() - t0
    same = sum(p.task_type.extract(a[q.id], q) == p.task_type.extract(b[q.id], q) for q in qs)
    return {"reuse_prefix": reuse, "questions": len(qs), "calls": 3 * len(qs),
            "same_text": sum(a[i] == b[i] for i in a), "same_answer": same, "prompt_tokens_computed": computed,
            "order_a_s": round(order_a_s, 1), "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--questions", type=int, default=12, help="the first N mining questions (default: 12)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    try:
        recipe = load_run_recipe(args.run_dir)
    except RecipeError as e:
        ap.error(str(e))
    run = Run(recipe, cache_path=None)
    rows = [once(run, reuse, args.questions) for reuse in (True, False)]
    for r in rows:
        print(f"reuse_prefix {str(r['reuse_prefix']):<5}  {r['same_text']:2d}/{r['questions']} same text, "
              f"{r['same_answer']:2d}/{r['questions']} same answer in both orders  {r['prompt_tokens_computed']:5d} "
              f"prompt tokens computed  order A {r['order_a_s']:6.1f} s  all {r['wall_s']:6.1f} s", flush=True)
    ratio = rows[1]["wall_s"] / rows[0]["wall_s"]
    print(f"reuse_prefix false / true: {ratio:.2f}x the wall time")
    out = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "run": str(args.run_dir),
           "task": recipe.task.name, "data": recipe.task.path, "strong": recipe.strong.model,
           "strong_max_tokens": recipe.collab.strong_max_tokens, "wall_ratio_off_on": round(ratio, 2), "rows": rows}
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
