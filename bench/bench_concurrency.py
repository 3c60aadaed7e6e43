"""Strong-call concurrency: the `openai` backend against a stand-in API that answers each call after 200 ms.

Throughput of N calls at concurrency 1 (the naive way: one call at a time), 8 and 32, as ratios to concurrency 1,
with the stand-in in its own process; then the same N calls at concurrency 32 against a stand-in that takes only 16
at once and answers the rest 429 with Retry-After (a hosted API's concurrency limit): every call must still be
answered, and no retry may come sooner than the Retry-After it was given. Loopback only; no model.
Usage: python bench/bench_concurrency.py [--requests 200] [--latency 0.2] [--levels 1 8 32] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from cowest.config import ModelConfig
from cowest.io import write_json
from cowest.models.base import Sampling
from cowest.models.openai_compat import OpenAIBackend
from cowest.testing.faults import FaultServer, FaultServerProcess, questions


def calls(server: FaultServer | FaultServerProcess, count: int, concurrency: int) -> tuple[float, int]:
    """(wall seconds, answered) for `count` one-sample calls at `concurrency`."""
    cfg = ModelConfig(backend="openai", model="remote", base_url=server.url, max_concurrency=concurrency,
                      timeout_s=30, max_retries=8, cache="off")
    backend = OpenAIBackend(cfg, api_key="sk-local")
    try:
        t0 = time.perf_counter()
        out = backend.generate(questions(count), 1, Sampling(max_tokens=16))
        return time.perf_counter() - t0, sum(1 for row in out if row and row[0].text)
    finally:
        backend.close()


def retry_gaps(server: FaultServer) -> list[float]:
    """For each 429 for being busy: seconds until the same request came again."""
    gaps = []
    for t, key in server.limited:
        later = [a for a, k in server.arrivals if k == key and a > t]
        if later:
            gaps.append(min(later) - t)
    return gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--limit", type=int, default=16, help="calls the rate-limited stand-in takes at once")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    n, top = args.requests, max(args.levels)
    print(f"== {n} strong calls against a stand-in answering after {args.latency * 1000:.0f} ms; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    out: dict = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "requests": n,
                 "latency_s": args.latency, "levels": []}
    base = None
    for c in args.levels:
        with FaultServerProcess(args.latency) as s:
            wall, answered = calls(s, n, c)
        base = base or n / wall
        bound = n * args.latency / c
        row = {"concurrency": c, "wall_s": round(wall, 2), "calls_per_s": round(n / wall, 2),
               "vs_concurrency_1": round(n / wall / base, 2), "bound_s": round(bound, 2), "answered": answered}
        out["levels"].append(row)
        print(f"concurrency {c:>3}: {wall:6.2f} s  {n / wall:7.2f} calls/s  {row['vs_concurrency_1']:5.2f}x of "
              f"concurrency 1  (bound n x latency / concurrency {bound:.2f} s)  answered {answered}/{n}")

    with FaultServer(delay_s=args.latency, max_in_flight=args.limit, retry_after_s=1.0) as s:
        wall, answered = calls(s, n, top)
        gaps = retry_gaps(s)
        attempts = len(s.arrivals)
    out["rate_limited"] = {"concurrency": top, "server_limit": args.limit, "retry_after_s": 1.0,
                           "wall_s": round(wall, 2), "answered": answered, "limited": len(s.limited),
                           "attempts_per_call": round(attempts / n, 2),
                           "min_retry_gap_s": round(min(gaps), 3) if gaps else None}
    print(f"rate-limited stand-in ({args.limit} at once, 429 + Retry-After 1 s) at concurrency {top}: {wall:.2f} s, "
          f"answered {answered}/{n}, {len(s.limited)} answered 429, {attempts / n:.2f} attempts per call, "
          f"earliest retry after a 429: {min(gaps) if gaps else float('nan'):.2f} s")
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
