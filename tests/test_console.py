"""A quiet console: a tiny run shows third-party progress bars and metric dicts only with -v."""

from __future__ import annotations

import pytest
from test_run import _cowest, _finish, recipe_dict, write_recipe

pytestmark = pytest.mark.slow  # trains a tiny model, twice, in subprocesses

# transformers' weight-loading bar, TRL's datasets.map bars, the Trainer's metric dicts, transformers' FutureWarnings
NOISE = ("Loading weights", "Tokenizing train dataset", "{'loss'", "FutureWarning")


def test_third_party_bars_and_metric_dicts_only_with_verbose(tmp_path, tiny_lm):
    outs = {}
    for flags in ((), ("-v",)):
        name = "verbose" if flags else "quiet"
        recipe = write_recipe(tmp_path, recipe_dict(tiny_lm.path, tmp_path / "runs", name=name))
        outs[name] = _finish(_cowest(*flags, "sft", str(recipe)))
    assert not [n for n in NOISE if n in outs["quiet"]], outs["quiet"][-3000:]
    assert all(n in outs["verbose"] for n in NOISE[:3]), outs["verbose"][-3000:]
    assert "sft" in outs["quiet"]  # cowest's own lines stay
