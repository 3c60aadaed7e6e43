"""A quiet, informative console: third-party progress bars and metric dicts only with -v; stage k of N."""

from __future__ import annotations

import logging

import pytest
from test_run import _cowest, _finish, recipe_dict, write_recipe

from cowest.console import _QUIET_ENV
from cowest.layout import RunLayout
from cowest.ledger import Ledger

# transformers' weight-loading bar, TRL's datasets.map bars, the Trainer's metric dicts, transformers' FutureWarnings
NOISE = ("Loading weights", "Tokenizing train dataset", "{'loss'", "FutureWarning")


@pytest.mark.slow  # trains a tiny model, twice, in subprocesses
def test_third_party_bars_and_metric_dicts_only_with_verbose(tmp_path, tiny_lm, monkeypatch):
    for key in _QUIET_ENV:  # set by an earlier in-process command of this test session: the user's, to a child
        monkeypatch.delenv(key, raising=False)
    outs = {}
    for flags in ((), ("-v",)):
        name = "verbose" if flags else "quiet"
        recipe = write_recipe(tmp_path, recipe_dict(tiny_lm.path, tmp_path / "runs", name=name))
        outs[name] = _finish(_cowest(*flags, "sft", str(recipe)))
    assert not [n for n in NOISE if n in outs["quiet"]], outs["quiet"][-3000:]
    assert all(n in outs["verbose"] for n in NOISE[:3]), outs["verbose"][-3000:]
    assert "sft" in outs["quiet"]  # cowest's own lines stay
    log = (tmp_path / "runs" / "quiet" / "run.log").read_text()
    assert "sft: running" in log and "FutureWarning" in log  # the run's log file has what the console left out


def test_a_whole_runs_stage_lines_say_which_of_how_many(tmp_path, caplog):
    ledger = Ledger(RunLayout(tmp_path), usage=dict)
    ledger.order = ["sft", "round_1/mine", "eval"]
    with caplog.at_level(logging.INFO, logger="cowest.ledger"):
        ledger.run("round_1/mine", {"k": 1}, dict)
        ledger.run("round_1/mine", {"k": 1}, dict)
        ledger.run("ablation", {}, dict)  # not one of the run's stages: its bare name
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "[stage 2/3] round_1/mine: running" and lines[1].startswith("[stage 2/3] round_1/mine: done in")
    assert lines[2] == "[stage 2/3] round_1/mine: up to date, skipped" and lines[3] == "ablation: running"
