"""scripts/fact_shift.py reads how alignment moved the drafts' fact share from a run's results, as published."""

import importlib.util
from pathlib import Path

import pytest

from cowest.io import read_json

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("fact_shift", ROOT / "scripts/fact_shift.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_published_fact_shifts_are_the_scripts_own_and_read_the_runs_results():
    shift = _script().shift
    published = read_json(ROOT / "results/fact-shift.json")
    assert set(published) >= {"formulary-seed0", "rail-fares-seed3", "travel-policy-seed2"}
    for name, got in published.items():
        for evaluation in ("eval", "eval_valid"):
            assert shift(ROOT / "results" / name, evaluation) == got[evaluation], (name, evaluation)
    res = read_json(ROOT / "results/formulary-seed0/eval/results.json")
    seed0 = published["formulary-seed0"]["eval"]
    assert seed0["sft_states_fact"] == res["drafts"]["sft"]["states_fact"]
    assert seed0["fact_shift"] == pytest.approx(seed0["aligned_states_fact"] - seed0["sft_states_fact"])
    assert seed0["cowest_minus_refine"] == res["comparisons"]["cowest - refine"]["diff"]
