"""A quiet, informative console: third-party progress bars and metric dicts only with -v; stage k of N."""

from __future__ import annotations

import logging

import pytest
from test_run import _cowest, _finish, recipe_dict, write_recipe

from cowest.console import QUIET_ENV
from cowest.layout import RunLayout
from cowest.ledger import Ledger

# transformers' weight-loading bar, TRL's datasets.map bars, the Trainer's metric dicts, transformers' FutureWarnings
NOISE = ("Loading weights", "Tokenizing train dataset", "{'loss'", "FutureWarning")


@pytest.mark.slow  # trains a tiny model, twice, in subprocesses
def test_third_party_bars_and_metric_dicts_only_with_verbose(tmp_path, tiny_lm, monkeypatch):
    for key in QUIET_ENV:  # set by an earlier in-process command of this test session: the user's, to a child
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


def test_the_stage_lines_say_the_runs_time_left_scaled_by_its_pace(tmp_path, caplog, monkeypatch):
    """The estimate of the stages left, scaled by how the stages run so far compared with their estimates."""
    import cowest.ledger as ledger_mod

    # sft takes 1200 s against its 600 (training 2x slower here), mining 450 s against its 900 (calls 2x faster)
    clock = iter([0.0, 1200.0, 2000.0, 2450.0, 3000.0, 3000.0])
    monkeypatch.setattr(ledger_mod.time, "perf_counter", lambda: next(clock))
    ledger = Ledger(RunLayout(tmp_path), usage=dict)
    ledger.order = ["sft", "round_1/mine", "round_1/dpo", "eval"]
    ledger.estimates = {"sft": 600.0, "round_1/mine": 900.0, "round_1/dpo": 600.0, "eval": 600.0}
    with caplog.at_level(logging.INFO, logger="cowest.ledger"):
        for name in ledger.order[:3]:
            ledger.run(name, {"k": 1}, dict)
    lines = [r.getMessage() for r in caplog.records if "running" in r.getMessage()]
    assert lines[0] == "[stage 1/4] sft: running; about 45 min left in the run"  # 2700 s at the assumed pace
    assert lines[1] == "[stage 2/4] round_1/mine: running; about 45 min left in the run"  # 900 + 2 x 600 + 600
    assert lines[2] == "[stage 3/4] round_1/dpo: running; about 25 min left in the run"  # 2 x 600 + 600 / 2


def test_each_stage_of_a_recipe_gets_an_estimate(monkeypatch):
    """Every planned stage of a shipped recipe has a positive estimate, SFT's from its rows and epochs."""
    from pathlib import Path

    from cowest.config import load_recipe
    from cowest.eta import estimate, say
    from cowest.ledger import run_plan
    from cowest.roles import assign
    from cowest.tasks import load_task

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # the recipe's paths are relative to the repository
    recipe = load_recipe("examples/rail-fares/recipe.yaml")
    task = load_task(recipe.task)
    stages = run_plan(recipe, task)
    est = estimate(recipe, task, assign(task, recipe), stages)
    assert list(est) == list(stages) and all(v > 0 for v in est.values())
    assert 20 * 60 < sum(est.values()) < 120 * 60  # a recipe `cowest init` sized for 60 minutes
    assert (say(30), say(125 * 60), say(34 * 60)) == ("under a minute", "about 2 h 05 min", "about 34 min")
