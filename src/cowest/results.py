"""An evaluation's results: one typed object, `EvalResults`, whose dump is the `results.json` of every evaluation
folder (`eval/`, `eval_valid/`, `eval_recall/`, ...). `evaluate` builds it; the report, `cowest compare`, the
ablations, `cowest serve` (through the validation's choice) and `cowest publish` read it.

- `version`: the schema's version (`RESULTS_VERSION`); 0 for files written before it was stored.
- `n`, `task`, `split`, `recipe`, `date`: what was evaluated, and when.
- `confidence`: the level of every `lo`/`hi` interval below (the recipe's `eval.confidence`). Files written before
  it was stored are read with the run's `eval.confidence`, else 0.95 (`level`).
- `score_metric`: the metric the per-question scores (and so every comparison) are in; older files: `scored_in()`.
- `systems`: system key -> `SystemResult`: `label`; `metrics` (metric -> `{value, lo, hi}`, the first one primary);
  `score` (mean per-question score, `{value, lo, hi}`); `strong_prompt_tokens_per_q`,
  `strong_completion_tokens_per_q`, `wall_s`; optional `answered`, `truncated_share`, `draft_states_gold`
  (fractions), `cost_per_1k`, and `calls`, `cache_hits` (model calls made and answers read from the call cache, the
  weak drafts' included).
- `price` (optional): `currency`, `prompt_per_million`, `completion_per_million`.
- `comparisons`: `"A - B"` -> A's minus B's per-question scores: `diff`, its paired-bootstrap `lo`, `hi`, the one-sided
  `p_value` of a paired test of "A beats B" and that `test` ("exact McNemar" for 0/1 scores, "sign-flip
  permutation" else; files without it hold the share of bootstrap resamples <= 0, which tests no null),
  `best_single` (B is the fixed best single model).
- `drafts`: weak variant -> draft diagnostics: `n`, `states_gold`, `mean_chars`, `truncated_share` and, when
  known, `states_fact`, `changed_vs_sft`, `helped`, `hurt`, `scored_with_fact`, `scored_without_fact`, `fact_gain`
  (`evaluate.fact_gain`) and, with `collab.draft_sections`, `shown_cut_share` (the share cut inside those sections)
  (fractions).
- `alignment_skipped` (optional): the rounds whose alignment was skipped (too few pairs).
- `best_single` (test split only): the single model to beat, `{system, rule, detail}` (`best_single()`).

Every field but the systems' label and metrics may be missing from a file: what a file does not hold is not
written back (`dump`), so a results.json is exactly what its evaluation measured. Unknown fields are kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from .io import read_json

RESULTS_VERSION = 1  # 1: the version field itself
DEFAULT_CONFIDENCE = 0.95  # the level of results.json files that do not store theirs
VALID_EVAL = "eval_valid"  # the evaluation on held-out mined questions, where the best single model is chosen


class _Part(BaseModel):
    """A part of results.json: fields a file does not hold stay unset (and are not dumped); others are kept."""

    model_config = ConfigDict(extra="allow")

    def holds(self, key: str) -> bool:
        """Whether the file (or the evaluation) gave this field a value."""
        return key in self.model_fields_set or key in (self.model_extra or {})

    def dump(self) -> dict[str, Any]:
        """As results.json holds it: every field this object holds, none it does not."""
        return self.model_dump(exclude_unset=True)


class Interval(_Part):
    """A value with its confidence interval (fractions); NaN where a file does not hold one."""

    value: float = math.nan
    lo: float = math.nan
    hi: float = math.nan


class Comparison(_Part):
    """One system's per-question scores minus another's: bootstrap CI and a paired test's one-sided p."""

    diff: float
    lo: float
    hi: float
    p_value: float = math.nan
    test: str | None = None  # which paired test gave p_value (None: a file from before the tests)
    best_single: bool = False  # the other system is the fixed best single model


class SystemResult(_Part):
    """One system's row: metrics with intervals, mean score, strong-model cost, time and calls."""

    label: str | None = None
    metrics: dict[str, Interval] = {}
    wall_s: float = 0.0
    answered: float | None = None
    score: Interval | None = None
    strong_prompt_tokens_per_q: float = 0.0
    strong_completion_tokens_per_q: float = 0.0
    cost_per_1k: float | None = None
    truncated_share: float | None = None
    calls: int | None = None
    cache_hits: int | None = None
    draft_states_gold: float | None = None

    @property
    def primary(self) -> Interval | None:
        """The primary (first) metric."""
        return next(iter(self.metrics.values()), None)

    @property
    def mean_score(self) -> float:
        """The mean per-question score (the primary metric where no score is stored)."""
        return float((self.score or self.primary).value)  # type: ignore[union-attr]

    @property
    def strong_tokens(self) -> float:
        """Strong-model tokens (prompt + completion) per question."""
        return float(self.strong_prompt_tokens_per_q) + float(self.strong_completion_tokens_per_q)


class DraftDiagnostics(_Part):
    """What one weak variant's drafts held, and whether refining them helped."""

    n: int = 0
    states_gold: float = Field(0.0, description="share of drafts that state the gold answer's text")
    mean_chars: float = 0.0
    truncated_share: float = Field(0.0, description="share of drafts cut at collab.draft_max_tokens")
    shown_cut_share: float | None = Field(
        None, description="share cut inside collab.draft_sections, what the strong model reads (None: it reads all)")
    states_fact: float | None = Field(None, description="share stating the question's fact, where most have one")
    changed_vs_sft: float | None = Field(None, description="share that differ from the SFT model's drafts")
    helped: float | None = Field(None, description="share whose refinement beat the strong model alone")
    hurt: float | None = Field(None, description="share whose refinement lost to the strong model alone")
    scored_with_fact: float | None = Field(
        None, description="refinement's mean score on the questions whose draft states its fact")
    scored_without_fact: float | None = Field(
        None, description="refinement's mean score on the questions whose draft does not state it")
    fact_gain: float | None = Field(
        None, description="what refinement would gain if every draft stated its fact, at those two scores")


class BestSingle(_Part):
    """The single model a collaborative system must beat, fixed before the test is read."""

    system: str | None = None
    rule: str = "none"  # "validation" | "a priori" | "none"
    detail: str = ""


class Price(_Part):
    """The strong model's price."""

    prompt_per_million: float = 0.0
    completion_per_million: float = 0.0
    currency: str | None = None


class EvalResults(_Part):
    """One evaluation's results (results.json)."""

    version: int = 0
    n: int | None = None
    confidence: float | None = None
    score_metric: str | None = None
    systems: dict[str, SystemResult] = {}
    price: Price | None = None
    comparisons: dict[str, Comparison] = {}
    drafts: dict[str, DraftDiagnostics] = {}
    task: str | None = None
    split: str | None = None
    recipe: str | None = None
    date: str | None = None
    alignment_skipped: list[str] | None = None
    best_single: BestSingle | None = None

    @classmethod
    def of(cls, data: EvalResults | Mapping[str, Any]) -> EvalResults:
        """The results as the typed object (a dict, e.g. a results.json read by hand, is validated)."""
        return data if isinstance(data, EvalResults) else cls.model_validate(data)

    @property
    def level(self) -> float:
        """The CI level of every interval (0.95 when the file does not say)."""
        return float(self.confidence if self.confidence is not None else DEFAULT_CONFIDENCE)

    @property
    def primary_metric(self) -> str | None:
        """The name of the primary metric: the first metric key of the first system."""
        first = next(iter(self.systems.values()), None)
        return next(iter(first.metrics), None) if first else None

    def scored_in(self) -> str | None:
        """The metric of the per-question scores, which paired comparisons are in.

        Files written before it was stored: accuracy where the systems have it (choice tasks), else token F1 (short
        answers score per question by F1), else the primary metric.
        """
        if self.score_metric:
            return str(self.score_metric)
        first = next(iter(self.systems.values()), None)
        metrics = first.metrics if first else {}
        return next((m for m in ("accuracy", "f1") if m in metrics), self.primary_metric)


Results = EvalResults | Mapping[str, Any]  # the typed results, or a dict of the same shape (read as one)


def read_results(path: Path) -> EvalResults:
    """The results.json at `path`; a ValueError naming it when it is not an evaluation's results."""
    data = read_json(path)
    if not isinstance(data, dict) or "systems" not in data:
        raise ValueError(f"{path}: not an evaluation's results (no systems)")
    return EvalResults.of(data)


def load_results(path: Path) -> EvalResults | None:
    """The results.json at `path`, None when it does not exist (an evaluation that has not run)."""
    return read_results(path) if Path(path).is_file() else None


def is_single(system: str) -> bool:
    """Whether a system is a single model (weak alone or strong alone)."""
    return system == "strong" or system.startswith("weak_")


def best_single(valid: EvalResults | None, test_systems: Sequence[str]) -> dict[str, Any]:
    """The single model to beat, fixed from the run's validation results (`VALID_EVAL`), never from the test."""
    singles = [s for s in test_systems if is_single(s)]
    systems = valid.systems if valid is not None else {}
    candidates = {s: systems[s].mean_score for s in singles if s in systems}
    if candidates:
        best = max(candidates, key=lambda s: candidates[s])  # ties: the first in the test's order
        n_valid = valid.n if valid is not None else None
        return {"system": best, "rule": "validation", "valid_scores": candidates, "n_valid": n_valid,
                "detail": f"highest mean score on the {n_valid} validation questions of {VALID_EVAL}"}
    why = f"no {VALID_EVAL} results" if valid is None else f"{VALID_EVAL} has none of the single models"
    if "strong" in singles:
        return {"system": "strong", "rule": "a priori", "detail": f"strong alone, fixed in advance; {why}"}
    return {"system": None, "rule": "none", "detail": f"{why} and no strong-alone system"}
