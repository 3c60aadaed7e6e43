"""Serving load benchmark: the `cowest` system behind `cowest serve`'s app, N requests at concurrency 1, 4 and 16.

The strong model is (a) Qwen2.5-Coder-1.5B on the local llama.cpp server and (b) a stand-in OpenAI-compatible server
on loopback that answers each call after a fixed latency (300 ms: a remote API). The weak model is SmolLM2-135M: a
run's aligned adapter with --run, else the base model (drafting cost is the same; the answers are not the point).
Per setting: throughput, p50/p95 latency and errors; then weak batching (drafts that arrive within 20 ms go to the
model as one call) against one draft per call, at the highest concurrency on the stand-in. No call cache anywhere.
Usage: python bench/bench_serve.py [--requests 16] [--levels 1 4 16] [--run RUN_DIR] [--out results/bench/serve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

import openai

from cowest.collab import Prompter
from cowest.config import CollabConfig, ModelConfig, TaskConfig, load_recipe
from cowest.io import write_json
from cowest.layout import RunLayout
from cowest.models import build_backend
from cowest.models.openai_compat import OpenAIBackend
from cowest.run import Run
from cowest.serve import Limits
from cowest.serve.app import create_app
from cowest.serve.service import Service, strong_limit
from cowest.tasks import load_task
from cowest.testing.faults import FaultServer
from cowest.testing.serving import ThreadedServer

STRONG = "qwen2.5-coder-1.5b-instruct"
COLLAB = CollabConfig(draft_max_tokens=48, strong_max_tokens=64)


class RemoteStandIn(FaultServer):
    """A remote API: every call answers after `delay_s`, with a final-answer line (so no re-ask follows)."""

    def reply(self, body: dict, n: int) -> dict:
        out = super().reply(body, n)
        for c in out["choices"]:
            c["message"]["content"] = "The draft's fact settles it.\nFinal answer: A"
        return out


class Server(ThreadedServer):
    """A Service's app on a uvicorn thread, recording the size of every weak call."""

    def __init__(self, service: Service) -> None:
        self.batches: list[int] = []
        service.on_batch = lambda variant, size: self.batches.append(size)
        super().__init__(create_app(service))
        self.url = f"{self.url}/v1"


async def load(url: str, questions: list, requests: int, concurrency: int) -> dict:
    """`requests` chat requests for `cowest`, at most `concurrency` in flight: wall, throughput, latencies, errors."""
    client = openai.AsyncOpenAI(api_key="sk-local", base_url=url, max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        ex = questions[i % len(questions)]
        async with gate:
            t0 = time.perf_counter()
            try:
                msgs = [{"role": "user", "content": ex.question}]
                await client.chat.completions.create(model="cowest", messages=msgs, extra_body={"options": ex.options})
                latencies.append(time.perf_counter() - t0)
            except openai.APIError as e:
                errors.append(type(e).__name__)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - t0
    await client.close()
    lat = sorted(latencies)
    return {"concurrency": concurrency, "requests": requests, "wall_s": round(wall, 2),
            "throughput_rps": round(len(lat) / wall, 3), "p50_s": round(statistics.median(lat), 2) if lat else None,
            "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2) if lat else None, "errors": len(errors)}


def measure(service: Service, questions: list, requests: int, levels: list[int], label: str) -> list[dict]:
    """Each concurrency level on one server (after one warm-up request), with the mean weak batch size."""
    server = Server(service)
    rows = []
    try:
        asyncio.run(load(server.url, questions, 1, 1))  # warm-up: first forward passes, first strong call
        for c in levels:
            server.batches.clear()
            row = asyncio.run(load(server.url, questions, requests, c))
            row |= {"strong": label, "mean_draft_batch": round(statistics.fmean(server.batches), 2)}
            rows.append(row)
            print(f"{label:<22} concurrency {c:>2}: {row['wall_s']:7.1f} s  {row['throughput_rps']:6.3f} req/s  "
                  f"p50 {row['p50_s']:6.2f} s  p95 {row['p95_s']:6.2f} s  errors {row['errors']}  "
                  f"drafts per weak call {row['mean_draft_batch']:.1f}  "
                  f"throughput vs concurrency 1 {row['throughput_rps'] / rows[0]['throughput_rps']:.2f}x", flush=True)
    finally:
        server.close()
    return rows


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--latency", type=float, default=0.3, help="seconds the stand-in takes per call")
    ap.add_argument("--run", type=Path, help="a finished run: serve its aligned adapter")
    ap.add_argument("--out", type=Path, help="write the figures as JSON (for `cowest readme`)")
    return ap.parse_args()


def main() -> None:
    args = arguments()
    task = load_task(TaskConfig(name="formulary", options={"n_drugs": 6, "n_test": max(args.requests, 16)}))
    weak_cfg = ModelConfig(backend="hf", model="smollm2-135m-instruct", batch_size=16, cache="off")
    if args.run:  # the run's aligned model: its merged SFT checkpoint plus the last round's adapter
        where = [f"output_dir={json.dumps(str(args.run.parent))}", f"name={json.dumps(args.run.name)}"]
        run = Run(load_recipe(RunLayout(args.run).config, where))
        weak_cfg = run.weak_config("aligned").model_copy(update={"cache": "off", "batch_size": 16})
        task = run.task  # its own questions
    questions = task.test
    adapter = weak_cfg.adapter
    weak = build_backend(weak_cfg)
    prompter = Prompter(task.type, "cot")
    busy = Limits(deadline_s=600, max_in_flight=64)
    top = max(args.levels)
    print(f"== cowest serve, {args.requests} requests per level, weak SmolLM2-135M "
          f"({'adapter ' + adapter if adapter else 'base model'}), drafts {COLLAB.draft_max_tokens} tokens, "
          f"strong {COLLAB.strong_max_tokens}; {os.cpu_count()} CPUs", flush=True)
    out = {"machine": f"{os.cpu_count()} CPUs, {platform.machine()}, no GPU", "requests": args.requests,
           "latency_s": args.latency, "weak": "smollm2-135m-instruct" + (" + adapter" if adapter else ""),
           "draft_max_tokens": COLLAB.draft_max_tokens, "strong_max_tokens": COLLAB.strong_max_tokens, "rows": []}
    try:
        local = ModelConfig(backend="llamacpp", model=STRONG, n_ctx=2048, n_parallel=2, cache="off")
        strong = build_backend(local)
        try:
            service = Service(prompter, COLLAB, strong, {"aligned": weak}, busy, strong_limit(local))
            out["rows"] += measure(service, questions, args.requests, args.levels, "llama.cpp (2 slots)")
        finally:
            strong.close()

        with RemoteStandIn(delay_s=args.latency) as stand_in:
            remote = ModelConfig(backend="openai", model="remote", base_url=stand_in.url, max_concurrency=16,
                                 cache="off")
            label = f"stand-in {args.latency * 1000:.0f} ms"
            strong = OpenAIBackend(remote, api_key="sk-local")
            try:
                service = Service(prompter, COLLAB, strong, {"aligned": weak}, busy, strong_limit(remote))
                out["rows"] += measure(service, questions, args.requests, args.levels, label)
                one = Limits(deadline_s=600, max_in_flight=64, batch_window_s=0.0, max_batch=1)
                service = Service(prompter, COLLAB, strong, {"aligned": weak}, one, strong_limit(remote))
                naive = measure(service, questions, args.requests, [top], f"{label}, 1 draft/call")[0]
            finally:
                strong.close()
        batched = next(r for r in out["rows"] if r["strong"] == label and r["concurrency"] == top)
        out["batching"] = {"concurrency": top, "batched": batched, "one_at_a_time": naive,
                           "speedup": round(batched["throughput_rps"] / naive["throughput_rps"], 2)}
        print(f"weak batching at concurrency {top} (stand-in): {batched['throughput_rps']:.3f} vs "
              f"{naive['throughput_rps']:.3f} req/s one draft per call: {out['batching']['speedup']:.2f}x; "
              f"p95 {batched['p95_s']:.2f} vs {naive['p95_s']:.2f} s")
    finally:
        weak.close()
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
