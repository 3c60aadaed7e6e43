"""Multi-process runs: weak drafting and SFT in one process against several under `accelerate launch`, same machine.

Each configuration runs this script's worker, which does what the run's stages do and times only that work (model
loading excluded, a barrier on each side): `draft` samples `--k` drafts for each of `--questions` formulary questions
(training, test and recall questions of the recipe's task) with the base weak model through the project's HF backend (batches split over the processes, gathered in order);
`sft` is the project's `train_sft` on the demo recipe's SFT rows for one epoch (the recipe's batch taken as the
`global_batch_size`, split over the processes: the same optimizer steps). Configurations: one process on one thread, one process on every core (the
naive way to use the machine), and N processes on one thread each. The drafts must come out identical in every
configuration; the SFT loss is reported so that a split which changes what is learned shows.
Usage: python bench/bench_multiprocess.py [RECIPE] [--processes 2] [--questions 96] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cowest.io import write_json
from cowest.net import free_port

HERE = Path(__file__).resolve()


def one_step_batch(sft: dict) -> dict:
    """The recipe's SFT block for one epoch, its per-device batch read as one step's rows over all processes."""
    sft = {**sft, "num_train_epochs": 1}
    if "global_batch_size" not in sft:
        sft["global_batch_size"] = sft.pop("per_device_train_batch_size", 8)
    return sft


def draft_figures(run, questions: int, k: int) -> dict:
    """`k` sampled drafts for each of `questions` questions, timed after a warm-up batch; the drafts' hash."""
    from cowest import dist
    from cowest.models import build_backend
    from cowest.models.base import Sampling

    r = run.recipe
    examples = (run.task.train + run.task.test + run.task.extra.get("recall", []))[:questions]
    convs = [run.prompter.draft_prompt(e) for e in examples]
    weak = build_backend(r.weak.model_copy(update={"cache": "off"}))
    sampling = Sampling(temperature=r.mining.temperature, top_p=1.0, max_tokens=r.collab.draft_max_tokens,
                        seed=r.seed)
    weak.generate(convs[: r.weak.batch_size], n=1, sampling=sampling)  # warm-up, not measured
    dist.barrier()
    t0 = time.perf_counter()
    drafts = weak.generate(convs, n=k, sampling=sampling)
    dist.barrier()
    wall = time.perf_counter() - t0
    texts = [c.text for row in drafts for c in row]
    tokens = sum(c.completion_tokens for row in drafts for c in row)
    return {"wall_s": round(wall, 2), "drafts": len(texts), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "drafts_sha": hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]}


def worker(task: str, recipe_path: Path, questions: int, k: int, out: Path) -> None:
    """One configuration's timed work; the main process writes its figures to `out`."""
    import torch

    from cowest import dist
    from cowest.assets import resolve_model
    from cowest.collab.targets import sft_rows
    from cowest.config import load_recipe
    from cowest.run import Run

    run = Run(load_recipe(recipe_path))
    r = run.recipe
    threads = torch.get_num_threads()
    result: dict = {"task": task, "processes": dist.world_size(), "threads": threads}
    if task == "draft":
        result |= draft_figures(run, questions, k)
    else:
        from cowest.train import train_sft
        from cowest.train.common import load_log

        train = [e for e in run.task.train if e.metadata.get("sft", True)]
        rows, _ = sft_rows(run.prompter, train, run.task.facts)
        if r.task.sft_corpus:  # the rows the sft stage trains on
            rows += [run.prompter.corpus_row(p) for p in run.task.corpus]
        base = resolve_model(r.weak.model, "hf")
        with tempfile.TemporaryDirectory(prefix="cowest-mp-bench-") as tmp:
            d = dist.share(lambda: tmp)  # every process trains into the main one's folder (only it writes)
            log_path = Path(d) / "log.jsonl"
            dist.barrier()
            t0 = time.perf_counter()
            train_sft(base, rows, Path(d), one_step_batch(r.sft), r.lora, seed=r.seed, log_path=log_path)
            wall = time.perf_counter() - t0
            if dist.is_main():
                log = load_log(log_path)
                steps = [s for s in log if "loss" in s]
                final = next((s for s in reversed(log) if "train_loss" in s), {})
                result |= {"wall_s": round(wall, 1), "rows": len(rows), "steps": len(steps),
                           "train_loss": round(final.get("train_loss", float("nan")), 4),
                           "tokens": steps[-1].get("num_tokens"),
                           "tokens_per_s": round(steps[-1].get("num_tokens", 0) / wall, 1)}
            dist.barrier()
    if dist.is_main():
        out.write_text(json.dumps(result))
    dist.finish()


def configuration(task: str, recipe: Path, processes: int, threads: int, questions: int, k: int) -> dict:
    """Run the worker in `processes` processes of `threads` threads each; its figures."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="cowest-mp-bench-") as tmp:
        out = Path(tmp) / "result.json"
        script = [str(HERE), "--worker", task, str(recipe), "--questions", str(questions), "--k", str(k),
                  "--result", str(out)]
        if processes == 1:
            cmd = [sys.executable, *script]
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(free_port()), *script]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path, nargs="?", default=Path("recipes/demo.yaml"))
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--questions", type=int, default=96)
    ap.add_argument("--k", type=int, default=2, help="sampled drafts per question")
    ap.add_argument("--only", choices=["draft", "sft"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", choices=["draft", "sft"], help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.recipe, args.questions, args.k, args.result)
        return
    from bench_training import machine  # this folder is on the path of a script run from it

    cores = os.cpu_count() or 1
    configs = [("one process, one thread", 1, 1), (f"one process, {cores} threads (naive)", 1, cores),
               (f"{args.processes} processes, one thread each", args.processes, 1)]
    out: dict = {"machine": machine(), "recipe": str(args.recipe), "questions": args.questions, "k": args.k,
                 "processes": args.processes, "rows": []}
    if args.only and args.out and args.out.exists():  # keep the other task's rows from the earlier run
        old = json.loads(args.out.read_text())
        out["rows"] = [r for r in old["rows"] if r["task"] != args.only]
        out |= {k: old[k] for k in ("questions", "k", "drafts_identical") if k in old and args.only == "sft"}
    for task in ("draft", "sft"):
        if args.only not in (None, task):
            continue
        for label, processes, threads in configs:
            r = configuration(task, args.recipe, processes, threads, args.questions, args.k) | {"config": label}
            out["rows"].append(r)
            print(json.dumps(r), flush=True)
        naive = next(r for r in out["rows"] if r["task"] == task and "naive" in r["config"])
        for r in out["rows"]:
            if r["task"] == task:
                r["vs_naive"] = round(naive["wall_s"] / r["wall_s"], 2)
        if task == "draft":
            out["drafts_identical"] = len({r["drafts_sha"] for r in out["rows"] if r["task"] == "draft"}) == 1
    print(json.dumps(out, indent=1))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
