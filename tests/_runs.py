"""Hand-made run directories (config.yaml, eval results and predictions) for the compare / publish tests."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

import yaml

from cowest.io import write_json, write_jsonl

LABELS = {"weak_sft": "Weak (SFT)", "weak_aligned": "Weak (aligned)", "strong": "Strong", "refine": "Refinement",
          "cowest": "CoWest", "supericl": "SuperICL"}


def results(scores: dict[str, list[float]], extra: dict[str, dict] | None = None) -> dict:
    """A results.json whose primary metric and score are the mean of each system's scores (CI: min..max)."""
    systems = {}
    for name, s in scores.items():
        v = {"value": fmean(s), "lo": min(s), "hi": max(s)}
        systems[name] = {"label": LABELS.get(name, name), "metrics": {"accuracy": v, "f1": dict(v)}, "score": dict(v),
                         "strong_prompt_tokens_per_q": 100.0, "strong_completion_tokens_per_q": 20.0, "wall_s": 1.0,
                         **(extra or {}).get(name, {})}
    return {"n": len(next(iter(scores.values()))), "systems": systems, "comparisons": {}, "task": "t", "split": "test"}


def make_run(
    root: Path, name: str, seed: int, scores: dict[str, list[float]], valid: dict[str, float] | None = None,
    confidence: float = 0.9, order: dict[str, list[int]] | None = None, extra: dict[str, dict] | None = None,
) -> Path:
    """A run directory: scores[system][i] is the score on question q{i}; `order` permutes a system's rows."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"name": name, "seed": seed, "task": {"name": "formulary", "seed": seed},
           "eval": {"confidence": confidence, "n_bootstrap": 200}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    write_json(d / "eval" / "results.json", results(scores, extra))
    rows = []
    for system, s in scores.items():
        for i in (order or {}).get(system, range(len(s))):
            rows.append({"system": system, "question_id": f"q{i}", "question": f"Q{i}?", "draft": "", "text": "",
                         "answer": "A", "gold": "A", "score": s[i], "prompt_tokens": 1, "completion_tokens": 1})
    write_jsonl(d / "eval" / "predictions.jsonl", rows)
    if valid is not None:
        write_json(d / "eval_valid" / "results.json", results({k: [v] for k, v in valid.items()}) | {"n": 10})
    return d
