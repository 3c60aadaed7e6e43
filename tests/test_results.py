"""The typed results object: every published results.json loads into it, and its dump is the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowest.io import read_json, write_json
from cowest.results import RESULTS_VERSION, EvalResults, best_single, load_results, read_results

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(ROOT.glob("results/**/eval*/results.json"))


def test_there_are_published_results():
    assert len(PUBLISHED) >= 10


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_every_published_results_file_loads_and_dumps_back_unchanged(path: Path):
    res = read_results(path)
    assert res.dump() == read_json(path)  # nothing read is lost, nothing the file lacks is added
    assert res.systems and all(s.primary is not None and s.label for s in res.systems.values())
    assert res.primary_metric in next(iter(res.systems.values())).metrics
    assert res.scored_in() in ("accuracy", "f1", "em", "macro_f1")
    assert 0 < res.level < 1 and res.n
    for c in res.comparisons.values():
        assert c.lo <= c.diff <= c.hi


def test_an_old_file_reads_with_defaults_and_a_new_one_says_its_version(tmp_path: Path):
    accuracy = {"accuracy": {"value": 0.5, "lo": 0, "hi": 1}}
    old = {"n": 2, "systems": {"strong": {"label": "strong", "metrics": accuracy}}, "comparisons": {}, "future_field": [1]}
    write_json(tmp_path / "results.json", old)
    res = read_results(tmp_path / "results.json")
    assert res.version == 0 and res.confidence is None and res.level == 0.95 and res.scored_in() == "accuracy"
    assert res.systems["strong"].mean_score == 0.5  # no score: the primary metric
    assert res.dump() == old  # the unknown field is kept
    new = EvalResults(version=RESULTS_VERSION, n=2, systems={})
    assert list(new.dump()) == ["version", "n", "systems"]
    assert load_results(tmp_path / "missing.json") is None
    write_json(tmp_path / "other.json", {"formats": []})
    with pytest.raises(ValueError, match="no systems"):
        read_results(tmp_path / "other.json")


def test_the_best_single_model_comes_from_validation_or_is_fixed_a_priori():
    def ci(v: float) -> dict:
        return {"value": v, "lo": 0.0, "hi": 1.0}

    valid = EvalResults.of({"n": 16, "systems": {"weak_sft": {"metrics": {"accuracy": ci(0.4)}, "score": ci(0.6)},
                                                 "strong": {"metrics": {"accuracy": ci(0.5)}}}})
    chosen = best_single(valid, ["weak_sft", "strong", "cowest"])
    assert chosen["system"] == "weak_sft" and chosen["rule"] == "validation" and chosen["n_valid"] == 16
    assert best_single(None, ["strong", "cowest"])["rule"] == "a priori"
    assert best_single(None, ["cowest"]) | {"detail": ""} == {"system": None, "rule": "none", "detail": ""}
