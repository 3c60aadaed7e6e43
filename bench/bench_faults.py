"""Reliability benchmark: OpenAIBackend against the fault-injecting stand-in, clean vs each fault at 20%.

Prints, per fault: faults injected, answers identical to the clean run, attempts per request; then the calls
repeated after a kill -9 and resume, and the seconds to give up on a dead and on a hung server next to the naive
expectation (max_retries x N x timeout / concurrency). Loopback only; no model, no GPU.
Usage: python bench/bench_faults.py [--requests 200] [--n 3] [--rate 0.2] [--defaults] [--out results/bench/faults.json]
(`--out` keeps the figures for the README's reliability table: `cowest readme` renders it.)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cowest
from cowest.config import ModelConfig
from cowest.models.base import BackendError, Sampling
from cowest.testing.faults import FAULTS, FaultServer, dead_url, questions

SAMPLING = Sampling(temperature=1.0, seed=11)
TIMEOUT_S, RETRIES, CONCURRENCY = 0.5, 5, 8
DEFAULTS_REQUESTS = 50  # a batch of questions, at the recipe's retry defaults


def backend(url: str, defaults_at: int | None = None):
    """An OpenAIBackend with short timeouts and backoff, so the benchmark stays short; with `defaults_at`, a recipe's
    defaults at that max_concurrency (what a user gets)."""
    from cowest.models.openai_compat import OpenAIBackend

    if defaults_at:
        cfg = ModelConfig(backend="openai", model="fault-model", base_url=url, max_concurrency=defaults_at)
    else:
        cfg = ModelConfig(backend="openai", model="fault-model", base_url=url, timeout_s=TIMEOUT_S,
                          max_retries=RETRIES, max_concurrency=CONCURRENCY, retry_initial_s=0.05, retry_max_s=0.5)
    return OpenAIBackend(cfg, api_key="sk-local")


def run(server: FaultServer, count: int, n: int) -> tuple[list[list[str]] | None, str]:
    """(texts or None, error) of one batch against `server`."""
    b = backend(server.url)
    try:
        return [[c.text for c in row] for row in b.generate(questions(count), n, SAMPLING)], ""
    except BackendError as e:
        return None, str(e)[:100]
    finally:
        b.close()


def kill_and_resume(count: int) -> tuple[int, int]:
    """(finished calls before the kill, of them asked again after resuming) for a cached client killed with -9."""
    env = dict(os.environ, PYTHONPATH=str(Path(cowest.__file__).parents[1]))
    with tempfile.TemporaryDirectory() as tmp, FaultServer(delay_s=0.02) as s:
        cmd = [sys.executable, "-m", "cowest.testing.faults", s.url, str(Path(tmp) / "c.sqlite"), str(count), "4"]
        proc = subprocess.Popen(cmd, env=env)
        while len(s.answered) < count // 2 and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        before = {k for t, k in s.answered if t < killed_at}
        seen = len(s.requests)
        subprocess.run(cmd, env=env, check=True, timeout=300)
        return len(before), len(before & {s.key(r) for r in s.requests[seen:]})


def time_to_fail(url: str, count: int, defaults_at: int | None = None) -> tuple[float, str]:
    """Seconds until a batch of `count` against `url` gives up, and the start of its message."""
    b = backend(url, defaults_at)
    t0 = time.perf_counter()
    try:
        b.generate(questions(count), 1, SAMPLING)
        msg = "did not fail"
    except BackendError as e:
        msg = str(e)
    took = time.perf_counter() - t0
    b.close()
    return took, msg[msg.find(": ") + 2 :][:70]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument("--defaults", action="store_true",
                    help="also time a dead and a hung server at the recipe defaults (about 4 minutes, mostly waiting)")
    args = ap.parse_args()
    count = args.requests
    out: dict = {"requests": count, "n": args.n, "rate": args.rate, "timeout_s": TIMEOUT_S, "max_retries": RETRIES,
                 "concurrency": CONCURRENCY, "faults": []}

    with FaultServer() as s:
        clean, _ = run(s, count, args.n)
    print(f"{count} requests, n={args.n}, each fault at {args.rate:.0%}; timeout {TIMEOUT_S} s, max_retries {RETRIES}, "
          f"concurrency {CONCURRENCY}")
    print(f"{'fault':<16} {'injected':>8} {'identical':>11} {'attempts/req':>12} {'max':>4}  error")
    for fault in FAULTS:
        with FaultServer([fault], rate=args.rate, seed=5) as s:
            t0 = time.perf_counter()
            texts, err = run(s, count, args.n)
            same = sum(a == b for a, b in zip(texts, clean)) if texts and clean else 0
            out["faults"].append({"fault": fault, "injected": sum(s.injected.values()), "identical": same,
                                  "attempts_per_request": len(s.requests) / count,
                                  "max_attempts": max(s.attempts.values()), "error": err or None,
                                  "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{fault:<16} {sum(s.injected.values()):>8} {f'{same}/{count}':>11} "
                  f"{len(s.requests) / count:>12.2f} {max(s.attempts.values()):>4}  {err or '-'}"
                  f"  ({time.perf_counter() - t0:.1f} s)")

    before, repeated = kill_and_resume(count)
    print(f"kill -9 after {before} finished calls, then resume: {repeated} finished calls repeated")
    out["kill9"] = {"finished_before_kill": before, "repeated": repeated}

    naive = RETRIES * count * TIMEOUT_S / CONCURRENCY
    took, msg = time_to_fail(dead_url(), count)
    print(f"dead server (refused): failed in {took:.1f} s (naive {naive:.0f} s): {msg}")
    out["dead"] = {"seconds": round(took, 2), "naive_seconds": naive}
    with FaultServer(["hang"], rate=1.0) as s:
        took, msg = time_to_fail(s.url, count)
    print(f"hung server (no answer): failed in {took:.1f} s (naive {naive:.0f} s): {msg}")
    out["hung"] = {"seconds": round(took, 2), "naive_seconds": naive}
    if args.defaults:  # what a user waits at the recipe defaults: a hung server costs a deadline_s (minutes)
        out["defaults"] = {"requests": DEFAULTS_REQUESTS, "deadline_s": ModelConfig.model_fields["deadline_s"].default}
        for c in (4, 1):
            dead, msg = time_to_fail(dead_url(), DEFAULTS_REQUESTS, defaults_at=c)
            print(f"defaults, max_concurrency {c}: dead server failed in {dead:.1f} s: {msg}")
            with FaultServer(["hang"], rate=1.0) as s:
                hung, msg = time_to_fail(s.url, DEFAULTS_REQUESTS, defaults_at=c)
            print(f"defaults, max_concurrency {c}: hung server failed in {hung:.1f} s: {msg}")
            out["defaults"][f"concurrency_{c}"] = {"dead_seconds": round(dead, 1), "hung_seconds": round(hung, 1)}
    if args.out:
        from cowest.io import write_json

        out["machine"] = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, cowest {cowest.__version__}"
        write_json(args.out, out)


if __name__ == "__main__":
    main()
