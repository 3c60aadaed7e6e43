"""Several seeds of one recipe as one result: per-seed tables, pooled scores and pooled paired differences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .checks import shown_draft_warnings, stage_warnings
from .errors import CowestError
from .io import read_jsonl, write_json, write_text
from .layout import ComparisonDir, RunLayout
from .report.artifacts import stage_manifests
from .report.seeds import compare_markdown
from .results import VALID_EVAL, SystemResult, best_single, load_results, read_results
from .tasks.metrics import bootstrap_ci, paired_comparison

# (a, b) pairs compared (bootstrap CI, paired test); "best_single" is resolved per run before the test is read.
COMPARISONS: list[tuple[str, str]] = [
    ("cowest", "refine"), ("cowest", "best_single"), ("refine", "best_single"),
    ("cowest", "supericl"), ("cowest", "retrieval"), ("cowest", "collab_base"),
]


class CompareError(CowestError, ValueError):
    """Run artifacts that cannot be compared; the message names the file."""


def _need(path: Path) -> Path:
    """The path, or a CompareError naming it."""
    if not path.is_file():
        raise CompareError(f"{path}: missing (is this a finished run directory?)")
    return path


def _config(run_dir: Path) -> dict:
    """The run's config.yaml as a dict ({} when absent)."""
    path = RunLayout(run_dir).config
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _scores(path: Path, rows: list[dict]) -> dict[str, dict[str, float]]:
    """{system: {question_id: score}} from the rows of the predictions.jsonl at `path`; a repeated question is an
    error."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        per = out.setdefault(row["system"], {})
        qid = str(row["question_id"])
        if qid in per:
            raise CompareError(f"{path}: question {qid!r} appears twice for system {row['system']!r}")
        per[qid] = float(row["score"])
    return out


def _load_run(run_dir: Path, eval_name: str) -> dict[str, Any]:
    """One run's config, test results, per-question scores and fixed best single model."""
    cfg = _config(run_dir)
    run = RunLayout(run_dir)
    results = read_results(_need(run.eval(eval_name).results))
    predictions = _need(run.eval(eval_name).predictions)
    rows = read_jsonl(predictions)
    scores = _scores(predictions, rows)
    systems = list(results.systems)
    warnings = [w["message"] for _, w in stage_warnings(stage_manifests(run_dir))]
    # runs evaluated before this check existed: read it from their predictions
    sections = (cfg.get("collab") or {}).get("draft_sections")
    for w in shown_draft_warnings(rows, sections, eval_name):
        if w["message"] not in warnings:
            warnings.append(w["message"])
    return {"dir": run_dir, "name": str(cfg.get("name") or run_dir.name), "seed": cfg.get("seed"), "cfg": cfg,
            "results": results, "scores": scores, "best": best_single(load_results(run.eval(VALID_EVAL).results), systems),
            "warnings": warnings}


def _system_row(entry: SystemResult) -> dict[str, Any]:
    """A system's primary metric with its CI, its mean score and the truncated share when recorded."""
    metric, m = next(iter(entry.metrics.items()))
    row = {"label": entry.label or "", "metric": metric, "value": m.value, "lo": m.lo, "hi": m.hi}
    if entry.score is not None:
        row["score"] = entry.score.dump()
    if entry.truncated_share is not None:
        row["truncated_share"] = entry.truncated_share
    return row


def _label(entry: SystemResult, name: str) -> str:
    """A system's label (its key when the file has none)."""
    return name if entry.label is None else entry.label


def _paired(run: dict, a: str, b: str) -> tuple[list[float], list[float]] | None:
    """Scores of a and b on the questions both answered in one run, matched by question_id."""
    sa, sb = run["scores"].get(a), run["scores"].get(b)
    if sa is None or sb is None or a == b:
        return None
    qids = [q for q in sa if q in sb]
    return [sa[q] for q in qids], [sb[q] for q in qids]


def _default(runs: list[dict], block: str, key: str, fallback: float) -> float:
    """A setting from the first run's config (eval block), else the fallback."""
    value = (runs[0]["cfg"].get(block) or {}).get(key) if runs else None
    return float(value) if value is not None else fallback


def compare_runs(
    run_dirs: list[Path], eval_name: str = "eval", n_boot: int = 2000, confidence: float | None = None, seed: int = 0
) -> dict[str, Any]:
    """Per-run rows and pooled scores / paired differences over all questions of all runs (JSON-ready)."""
    if not run_dirs:
        raise CompareError("no run directories to compare")
    runs = [_load_run(Path(d), eval_name) for d in run_dirs]
    if len({r["name"] for r in runs}) < len(runs):  # repeats of one recipe: their folders tell them apart
        for r in runs:
            r["name"] = Path(r["dir"]).name
    conf = confidence if confidence is not None else _default(runs, "eval", "confidence", 0.95)
    boot = dict(n_boot=n_boot, confidence=conf, seed=seed)
    order = list(dict.fromkeys(s for r in runs for s in r["results"].systems))
    out: dict[str, Any] = {"eval": eval_name, "confidence": conf, "n_boot": n_boot, "seed": seed,
                           "score_metric": runs[0]["results"].scored_in(), "runs": []}
    for r in runs:
        diffs = {}
        for a, b in COMPARISONS:
            other = r["best"]["system"] if b == "best_single" else b
            pair = _paired(r, a, other) if other else None
            if pair and pair[0]:
                diffs[f"{a} - {b}"] = {**paired_comparison(pair[0], pair[1], **boot), "n": len(pair[0]),
                                       "b": other}
        ge = diffs.get("cowest - refine")
        out["runs"].append({
            "run": r["name"], "dir": str(r["dir"]), "seed": r["seed"], "n": r["results"].n,
            "systems": {s: _system_row(e) for s, e in r["results"].systems.items()},
            "best_single": r["best"], "diffs": diffs,
            "cowest_ge_refine": None if ge is None else bool(ge["diff"] >= 0), "warnings": r["warnings"],
        })
    out["systems"] = {}
    for s in order:
        pooled = [v for r in runs for v in r["scores"].get(s, {}).values()]
        if pooled:
            mean, lo, hi = bootstrap_ci(pooled, n_boot=n_boot, confidence=conf, seed=seed)
            label = next(_label(r["results"].systems[s], s) for r in runs if s in r["results"].systems)
            out["systems"][s] = {"label": label, "value": mean, "lo": lo, "hi": hi, "n": len(pooled),
                                 "runs": sum(s in r["scores"] for r in runs)}
    out["diffs"] = {}
    for a, b in COMPARISONS:
        name, xs, ys, used = f"{a} - {b}", [], [], 0
        for r in runs:
            other = r["best"]["system"] if b == "best_single" else b
            pair = _paired(r, a, other) if other else None
            if pair and pair[0]:
                xs += pair[0]
                ys += pair[1]
                used += 1
        if xs:
            out["diffs"][name] = {**paired_comparison(xs, ys, **boot), "n": len(xs), "runs": used}
    flags = [r["cowest_ge_refine"] for r in out["runs"] if r["cowest_ge_refine"] is not None]
    out["cowest_ge_refine"] = {"count": sum(flags), "of": len(flags)}
    return out


def write_comparison(
    run_dirs: list[Path], out_dir: Path, eval_name: str = "eval", n_boot: int = 2000,
    confidence: float | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Compare the runs and write compare.json and compare.md (atomically) into out_dir."""
    data = compare_runs(run_dirs, eval_name, n_boot=n_boot, confidence=confidence, seed=seed)
    out = ComparisonDir(Path(out_dir))
    write_json(out.json, data)
    write_text(out.md, compare_markdown(data))
    return data
