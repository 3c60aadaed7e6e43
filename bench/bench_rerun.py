"""Cached re-run: a recipe run once, again unchanged, and again with one evaluation knob changed.

Each run is `cowest run` in a subprocess into a fresh output folder. Reported per run: wall time, the stages that ran
and were skipped, and the model calls (calls the stages' manifests record as made, cache hits apart). The naive
baseline is the first run itself: a re-run without stage skipping and the call cache would repeat all of it.
Usage: python bench/bench_rerun.py [RECIPE] [--change eval.n_bootstrap=2000] [--set K=V ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cowest.config import load_recipe
from cowest.io import write_json


def run(recipe: Path, overrides: list[str]) -> dict:
    """One `cowest run`: wall seconds, stages run and skipped, model calls and cache hits of the stages that ran."""
    cmd = [sys.executable, "-m", "cowest", "run", str(recipe)]
    for o in overrides:
        cmd += ["--set", o]
    started = time.time()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    ran = [ln.split("] ", 1)[1].split(":")[0] for ln in out.stderr.splitlines() if ln.endswith(": running")]
    skipped = [ln.split("] ", 1)[1].split(":")[0] for ln in out.stderr.splitlines()
               if ln.endswith("up to date, skipped")]
    run_dir = load_recipe(recipe, overrides).run_dir
    calls = hits = 0
    for m in run_dir.rglob("manifest.json"):
        if m.stat().st_mtime < started:
            continue  # written by an earlier run
        for u in json.loads(m.read_text()).get("usage", {}).values():
            calls, hits = calls + u.get("calls", 0), hits + u.get("cache_hits", 0)
    return {"wall_s": round(wall, 1), "ran": ran, "skipped": skipped, "model_calls": calls, "cache_hits": hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path, nargs="?", default=Path("recipes/demo.yaml"))
    ap.add_argument("--change", default="eval.n_bootstrap=2000", help="the knob changed for the third run")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="applied to every run")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cowest-rerun-") as tmp:
        base = [*args.overrides, f"output_dir={json.dumps(tmp)}"]
        rows = {}
        for label, extra in [("first run", []), ("re-run, unchanged", []), (f"re-run, {args.change}", [args.change])]:
            rows[label] = r = run(args.recipe, [*base, *extra])
            share = r["wall_s"] / rows["first run"]["wall_s"]
            print(f"{label:<32} {r['wall_s']:8.1f} s ({share:6.1%} of the first run)  model calls {r['model_calls']:5d}"
                  f"  cache hits {r['cache_hits']:5d}  ran: {', '.join(r['ran']) or '-'}", flush=True)
    out = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "recipe": str(args.recipe),
           "overrides": args.overrides, "change": args.change, "runs": rows}
    if args.out:
        write_json(args.out, out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
