"""The scripts behind published figures recompute them: scripts/pairs_fact.py counts a run's pairs for and against the
fact as mining itself counts them; scripts/fact_shift.py reads how alignment moved the drafts' fact share."""

import importlib.util
from pathlib import Path

import pytest

from cowest.io import read_json

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str = "pairs_fact"):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"scripts/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_script_counts_as_mining_did_and_the_published_counts_are_its_own(monkeypatch):
    monkeypatch.chdir(ROOT)  # the runs' data paths are relative to the repository
    count = _script().count
    mined = read_json(ROOT / "results/travel-policy-seed2/round_1/mining_stats.json")  # mined with the counts
    got = count(Path("results/travel-policy-seed2"))
    assert (got["pairs_for_fact"], got["pairs_against_fact"]) == (mined["pairs_for_fact"], mined["pairs_against_fact"])
    assert got["pairs"] == mined["pairs"]
    published = read_json(ROOT / "results/pairs-fact.json")
    for name in ("travel-policy-seed0", "rail-fares-seed1"):
        assert count(Path("results") / name) == published[name]


def test_the_published_fact_shifts_are_the_scripts_own_and_read_the_runs_results(monkeypatch):
    monkeypatch.chdir(ROOT)  # the runs' data paths are relative to the repository
    shift = _script("fact_shift").shift
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
    # refinement scored 75.9% where the SFT draft stated its fact (22 of 29) and 0% where it did not (0 of 11)
    assert (seed0["sft_scored_with_fact"], seed0["sft_scored_without_fact"]) == pytest.approx((22 / 29, 0.0))
    assert seed0["fact_gain"] == pytest.approx((1 - seed0["sft_states_fact"]) * 22 / 29)
    # a run evaluated since results store them: the script reads its predictions as the evaluation measured
    stored = read_json(ROOT / "results/travel-policy-seed1-whole/eval_valid/results.json")["drafts"]["sft"]
    got = published["travel-policy-seed1-whole"]["eval_valid"]
    assert (got["sft_scored_with_fact"], got["sft_scored_without_fact"], got["fact_gain"]) == pytest.approx(
        (stored["scored_with_fact"], stored["scored_without_fact"], stored["fact_gain"]))


def test_the_published_counts_of_pairs_against_the_fact_file_are_the_scripts_own(monkeypatch):
    monkeypatch.chdir(ROOT)  # the runs' data paths are relative to the repository
    count = _script().count_against_file
    published = read_json(ROOT / "results/fact-file-pairs.json")
    for name in ("rail-fares-seed2", "travel-policy-seed0", "demo"):
        assert count(Path("results") / name) == published[name]
    rail = published["rail-fares-checked-seed0"]
    assert 0 < rail["chosen_misstates"] < rail["against_file"] and rail["rejected_alone_states"] > 0
    assert published["travel-policy-seed0"]["facts"] > 0
