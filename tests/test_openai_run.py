"""A whole `cowest run` whose strong model is an OpenAI reasoning model behind OPENAI_BASE_URL: the recipe names no
base_url, the stand-in refuses max_tokens and temperature as OpenAI does, and the run finishes."""

from __future__ import annotations

import pytest
from test_run import recipe_dict, strong_answer, write_recipe
from typer.testing import CliRunner

from cowest.cli import app
from cowest.config import load_recipe
from cowest.io import read_json
from cowest.tasks import load_task
from cowest.testing.faults import FaultServer

pytestmark = pytest.mark.slow  # trains through the pipeline on tiny models


def test_a_run_finds_the_endpoint_in_openai_base_url_and_learns_a_reasoning_model_s_parameters(
        tmp_path, tiny_lm, monkeypatch):
    golds: dict[str, str] = {}
    with FaultServer(reasoning=True, answer=lambda body, i: strong_answer(body["messages"], golds)) as server:
        d = recipe_dict(tiny_lm.path, tmp_path / "runs", name="reasoning")
        d["strong"] = {"backend": "openai", "model": "o-stand-in", "max_concurrency": 1}  # no base_url
        d["eval"] |= {"systems": ["strong", "refine", "cowest"], "limit": 2}
        recipe = write_recipe(tmp_path, d)
        task = load_task(load_recipe(recipe).task)
        golds.update({f"Question: {e.question}": e.gold for e in task.train + task.test})
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-stand-in")
        res = CliRunner().invoke(app, ["run", str(recipe)])
        assert res.exit_code == 0, res.output

        assert server.auth and set(server.auth) == {"Bearer sk-stand-in"}  # every strong call went to the stand-in
        # one refusal of each, learnt then and kept for the whole run (the strong model is closed and reopened
        # around training); every other request was taken
        assert server.refused == ["max_tokens", "temperature"]
        taken = server.requests[2:]
        assert len(taken) > 10 and all("max_completion_tokens" in r and "max_tokens" not in r
                                       and "temperature" not in r for r in taken)
        assert res.stderr.count("refuses max_tokens") == 1 and res.stderr.count("refuses temperature") == 1
    results = read_json(load_recipe(recipe).run_dir / "eval/results.json")
    assert {"strong", "refine", "cowest"} <= set(results["systems"]) and results["n"] == 2
