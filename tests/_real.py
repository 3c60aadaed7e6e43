"""The small formulary recipe the real-model tests run once per session (SmolLM2-135M trained, Qwen 1.5B strong)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

RECIPE = {
    "name": "e2e",
    "seed": 0,
    "task": {"name": "formulary", "options": {"n_drugs": 4, "wordings_per_fact": 2, "n_mining": 6, "n_test": 4}},
    "weak": {"backend": "hf", "model": "smollm2-135m-instruct", "batch_size": 16},
    "strong": {"backend": "llamacpp", "model": "qwen2.5-coder-1.5b-instruct", "n_ctx": 2048},
    "collab": {"draft_max_tokens": 64, "strong_max_tokens": 96},
    # The strong model is asked to judge (1-10), so its calibration on gold and wrong answers runs; rank mode finds
    # pairs on six questions whichever evaluator it leaves mining with. Four SFT steps teach the format, not the
    # facts: the SFT check measures and warns, and alignment trains on whatever pairs there are.
    "mining": {"k": 3, "temperature": 1.0, "mode": "rank", "evaluator": "judge", "where": {"kind": "reasoning"},
               "share": 1.0},
    "sft": {"max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 0.001},
    "sft_recall": {"target": None},
    "checks": {"on_fail": "warn", "min_pairs": 1, "judge_questions": 6},
    "dpo": {"max_steps": 1, "per_device_train_batch_size": 2},
    "eval": {"systems": ["weak_sft", "weak_aligned", "strong", "supericl", "retrieval", "refine", "cowest"],
             "n_bootstrap": 200, "retrieval_k": 2},
}


@dataclass(frozen=True)
class RealRun:
    """A finished run: its recipe file, run directory, the command and what the first run printed."""

    recipe: Path
    dir: Path
    cmd: list[str]
    first: subprocess.CompletedProcess


def run_real_recipe(root: Path) -> RealRun:
    """`cowest run` of RECIPE under `root` (all stages, real models)."""
    recipe = root / "e2e.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "output_dir": str(root / "runs")}))
    cmd = [sys.executable, "-m", "cowest", "run", str(recipe)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-4000:]
    return RealRun(recipe, root / "runs" / RECIPE["name"], cmd, out)
