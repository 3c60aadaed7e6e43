"""Loading a run directory's artifacts for the report; any of them may be missing, a corrupt one is a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..io import read_json, read_jsonl
from ..layout import RunLayout
from ..results import DEFAULT_CONFIDENCE, EvalResults, read_results


@dataclass
class Artifacts:
    """Everything the report reads from a run directory; absent artifacts are empty."""

    dir: Path
    config_text: str | None = None
    config: dict = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)  # stage name -> manifest, in report order
    evals: dict[str, EvalResults] = field(default_factory=dict)  # eval dir name -> results.json, "eval" first
    predictions: list[dict] = field(default_factory=list)  # eval/predictions.jsonl
    rounds: list[int] = field(default_factory=list)
    mining: dict[int, dict] = field(default_factory=dict)
    scores: dict[int, list[dict]] = field(default_factory=dict)
    dpo_logs: dict[int, list[dict]] = field(default_factory=dict)
    sft_log: list[dict] = field(default_factory=list)
    ablations: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # unreadable artifacts, shown in the report

    @property
    def name(self) -> str:
        """The recipe name (config, else results, else the folder name)."""
        ev = self.evals.get("eval")
        return str(self.config.get("name") or (ev.recipe if ev else None) or self.dir.name)

    @property
    def confidence(self) -> float:
        """The run's configured CI level (eval.confidence), which its ablations share."""
        return float((self.config.get("eval") or {}).get("confidence", DEFAULT_CONFIDENCE))


def load(run_dir: Path) -> Artifacts:
    """Read every artifact the report uses; a missing file is skipped, an unreadable one becomes a warning."""
    run = RunLayout(run_dir)
    a = Artifacts(dir=run.root)
    if run.config.is_file():
        a.config_text = run.config.read_text(encoding="utf-8")
        try:
            cfg = yaml.safe_load(a.config_text)
            a.config = cfg if isinstance(cfg, dict) else {}
        except yaml.YAMLError as e:
            a.warnings.append(f"{run.config.name}: not valid YAML ({e})")
    a.manifests = stage_manifests(run.root, a)
    for name in run.evals():
        if (r := _opt(read_results, run.eval(name).results, a)) is not None:
            if r.confidence is None:  # results written before the level was stored
                r.confidence = a.confidence
            a.evals[name] = r
    a.predictions = _opt(read_jsonl, run.eval("eval").predictions, a) or []
    a.rounds = run.rounds()
    for k in a.rounds:
        rd = run.round(k)
        if (st := _opt(read_json, rd.mining_stats, a)) is not None:
            a.mining[k] = st
        if (sc := _opt(read_jsonl, rd.mined("scores"), a)) is not None:
            a.scores[k] = sc
        if (lg := _opt(read_jsonl, rd.train_log, a)) is not None:
            a.dpo_logs[k] = lg
    a.sft_log = _opt(read_jsonl, run.sft.train_log, a) or []
    a.ablations = _opt(read_json, run.ablation_results, a) or {}
    return a


def stage_manifests(run_dir: Path, a: Artifacts | None = None) -> dict[str, dict]:
    """Stage name -> manifest in pipeline order; an unreadable one is a warning in `a` (skipped without one)."""
    sink = a or Artifacts(dir=Path(run_dir))
    return {name: m for name, p in RunLayout(run_dir).manifests() if (m := _opt(read_json, p, sink)) is not None}


def _opt(reader: Callable[[Path], Any], path: Path, a: Artifacts) -> Any:
    """`reader(path)`, or None when the file is absent; a corrupt file is reported, not fatal."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError) as e:
        a.warnings.append(f"{path.relative_to(a.dir)}: unreadable ({e})")
        return None
