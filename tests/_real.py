"""The one run on the real offline models each test session makes (SmolLM2-135M trained, Qwen 1.5B strong): the
README's worked example, `examples/spare-parts/recipe.yaml` as shipped, with its budgets cut for a test."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "spare-parts" / "recipe.yaml"
SHIPPED = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
# The example's data, columns, splits and prompts are untouched; these change only how long it trains and what it
# tries. One SFT epoch teaches the draft format, not every fact, so the checks warn rather than stop. The judge is
# asked for (its calibration on gold and wrong answers runs on the real strong model, whichever evaluator it leaves
# mining with) and SuperICL joins the systems, so those paths meet the real models too. Rank mode finds a pair on
# five questions whatever the scores, so DPO trains and the serving tests have an aligned adapter.
SYSTEMS = [*SHIPPED["eval"]["systems"][:3], "supericl", *SHIPPED["eval"]["systems"][3:]]
OVERRIDES = [
    "sft.num_train_epochs=1",
    "mining.k=3",
    "mining.mode=rank",
    "mining.evaluator=judge",
    "checks.on_fail=warn",
    "checks.min_pairs=1",
    "checks.judge_questions=5",
    "dpo.max_steps=2",
    f"eval.systems=[{','.join(SYSTEMS)}]",
    "eval.strong_max_tokens=192",
    "eval.n_bootstrap=200",
]


@dataclass(frozen=True)
class RealRun:
    """A finished run: its run directory (with the config it ran), the command and what the first run printed."""

    dir: Path
    cmd: list[str]
    first: subprocess.CompletedProcess

    @property
    def config(self) -> Path:
        """The recipe as the run resolved it (overrides applied); its data paths are relative to the repository."""
        return self.dir / "config.yaml"


def run_real_recipe(root: Path) -> RealRun:
    """`cowest run` of the worked example with OVERRIDES, writing under `root` (all stages, real models)."""
    sets = [a for o in [*OVERRIDES, f"output_dir={root / 'runs'}"] for a in ("--set", o)]
    cmd = [sys.executable, "-m", "cowest", "run", str(EXAMPLE), *sets]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)  # its paths are cwd-relative
    assert out.returncode == 0, out.stderr[-4000:]
    return RealRun(root / "runs" / SHIPPED["name"], cmd, out)
