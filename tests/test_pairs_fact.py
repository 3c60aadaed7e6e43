"""scripts/pairs_fact.py counts a published run's pairs for and against the fact as mining itself counts them."""

import importlib.util
from pathlib import Path

from cowest.io import read_json

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("pairs_fact", ROOT / "scripts/pairs_fact.py")
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
