"""Every command through the CLI: the stage commands on tiny models, listings, and one-line errors."""

from __future__ import annotations

import json

import pytest
from test_run import recipe_dict, scripted_strong, strong_knows_golds, write_recipe  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from cowest import assets
from cowest.cli import app
from cowest.config import load_recipe
from cowest.io import read_json, read_jsonl
from cowest.net import free_port


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_stage_commands_one_by_one_then_eval_and_infer_on_other_splits(tmp_path, tiny_lm, strong_knows_golds):  # noqa: F811
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", mining={"k": 3, "where": {"kind": "reasoning"}, "share": 1.0,
                                                               "heldout_fraction": 0.34},
                    eval={"systems": ["weak_sft", "refine"], "n_bootstrap": 50})
    recipe = write_recipe(tmp_path, d)
    run_dir = tmp_path / "runs" / "tiny"
    for cmd in ("sft", "mine", "dpo"):
        res = invoke(cmd, recipe)
        assert res.exit_code == 0, res.output
    assert (run_dir / "round_1/adapter/adapter_config.json").exists()
    # Stage commands record the settings they ran with, as `cowest run` does (serve and the benches read them).
    assert load_recipe(run_dir / "config.yaml").mining.k == 3
    assert read_json(run_dir / "round_1/trainer_config.json")["trainer"]["max_steps"] == 2
    # A stage already done is skipped, and says so.
    again = invoke("-v", "sft", recipe)
    assert again.exit_code == 0 and "sft: up to date, skipped" in again.stderr
    quiet = invoke("-q", "mine", recipe)
    assert quiet.exit_code == 0 and "up to date" not in quiet.stderr

    res = invoke("eval", recipe, "--limit", 2)
    assert res.exit_code == 0, res.output
    results = read_json(run_dir / "eval/results.json")
    assert results["n"] == 2 and results["split"] == "test" and set(results["systems"]) == {"weak_sft", "refine"}
    res = invoke("eval", recipe, "--split", "recall")
    assert res.exit_code == 0, res.output
    assert read_json(run_dir / "eval/results.json")["split"] == "recall"

    res = invoke("infer", recipe, "--limit", 1)
    assert res.exit_code == 0, res.output
    rows = read_jsonl(run_dir / "infer/predictions.jsonl")
    assert {r["system"] for r in rows} == {"weak_base", "strong", "collab_base"} and len(rows) == 3

    # Ablations: without an ablations block it is a usage error; with one it prints the results as JSON.
    res = invoke("ablate", recipe)
    assert res.exit_code == 2 and res.stderr.startswith("error: the recipe has no ablations")
    res = invoke("ablate", recipe, "--set", "ablations.dpo_settings=[{learning_rate: 0.01}]")
    assert res.exit_code == 0, res.output
    search = json.loads(res.stdout[res.stdout.index("{\n"):])["dpo_search"]  # after the trainers' step lines
    assert search[0]["setting"] == {"alignment": "dpo", "learning_rate": 0.01} and search[0]["valid_n"] == 2


def test_known_errors_are_one_line_without_traceback(tmp_path, tiny_lm):
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task={"name": "jsonl", "path": str(tmp_path / "q.jsonl"),
                                                           "type": "multiple_choice"})
    (tmp_path / "q.jsonl").write_text('{"question": "Q?", "options": ["a", "b"], "gold": "A"}\n{"question": \n')
    res = invoke("sft", write_recipe(tmp_path, d))
    assert res.exit_code == 1 and "Traceback" not in res.output
    last = res.stderr.strip().splitlines()[-1]  # after the progress lines: one line naming the file and line
    assert last.startswith("error: ") and "q.jsonl:2: invalid JSON" in last and res.stderr.count("error: ") == 1
    # -v shows where it came from.
    res = invoke("-v", "sft", write_recipe(tmp_path, d))
    assert res.exit_code == 1 and type(res.exception).__name__ == "TaskDataError"
    # No pairs to align on: alignment is skipped, said so, and the round keeps the SFT model.
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", name="nopairs")
    (tmp_path / "runs/nopairs/round_1").mkdir(parents=True)
    (tmp_path / "runs/nopairs/sft").mkdir()
    (tmp_path / "runs/nopairs/round_1/pairs.jsonl").write_text("")
    res = invoke("dpo", write_recipe(tmp_path, d))
    assert res.exit_code == 0 and "alignment skipped: 0 training pair(s)" in res.stderr
    counts = json.loads((tmp_path / "runs/nopairs/round_1/dpo.manifest.json").read_text())["counts"]
    assert counts["skipped"] is True and not (tmp_path / "runs/nopairs/round_1/adapter").exists()
    # A bad recipe is a usage error (exit 2) naming the field.
    res = invoke("eval", write_recipe(tmp_path, {**d, "rounds": 0}))
    assert res.exit_code == 2 and "rounds" in res.stderr


def test_tasks_and_models_commands():
    res = invoke("tasks")
    assert res.exit_code == 0 and {"formulary", "jsonl", "csv", "mmlu"} <= set(res.stdout.split())
    res = invoke("models", "list")
    assert res.exit_code == 0
    listed = {line.split()[0]: line.split() for line in res.stdout.splitlines()}
    assert listed[assets.WEAK_DEFAULT][2] == "installed" and listed[assets.STRONG_DEFAULT][2] == "installed"
    res = invoke("models", "path", assets.STRONG_DEFAULT)
    assert res.exit_code == 0 and res.stdout.strip() == str(assets.path(assets.STRONG_DEFAULT))
    res = invoke("models", "install", assets.STRONG_DEFAULT)  # installed already: no work, prints where it is
    assert res.exit_code == 0 and res.stdout.split() == [assets.STRONG_DEFAULT, str(assets.path(assets.STRONG_DEFAULT))]
    res = invoke("models", "path", "no-such-model")
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "Traceback" not in res.output


def test_tasks_describe_prints_each_loaders_fields_and_knobs():
    from cowest.tasks.registry import BUILTIN, LoaderInfo, get_loader

    # Every built-in loader carries its own description (next to its code, not in the CLI).
    assert all(isinstance(getattr(get_loader(n), "info", None), LoaderInfo) for n in BUILTIN)
    res = invoke("tasks", "--describe", "jsonl")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    block = res.stdout.split("\n\n")[0]
    for field in ("id", "question", "options", "gold", "answers", "explanation"):
        assert f"\n    {field} " in block, field
    for knob in ("task.type", "task.fields", "task.test_path", "options_sep", "answers_sep", "index_base",
                 "on_error", "task.corpus_path", "task.n_train"):
        assert knob in text, knob
    assert "a letter (B, b, (b), b)), an option's text, 'c) text', or an index counted from index_base" in text
    assert "with a separate test file (task.test_path) or a hub test split they are seeded samples" in text
    assert "plain text, one fact per line, or JSONL with a 'text' field" in text
    assert "mining.where: {column: value}" in text
    every = invoke("tasks", "--describe")
    assert every.exit_code == 0 and all(f"\n{n}: " in "\n" + every.stdout for n in BUILTIN)
    listing = invoke("tasks")
    assert "jsonl" in listing.stdout and "Your own questions in one file" in listing.stdout
    bad = invoke("tasks", "--describe", "jsonll")
    assert bad.exit_code == 2 and "unknown task jsonll" in bad.stderr


@pytest.mark.parametrize("cmd", ["run", "sft", "mine", "dpo", "eval", "infer", "ablate"])
def test_recipe_commands_share_the_recipe_argument_and_set(cmd):
    res = invoke(cmd, "--help")
    assert res.exit_code == 0 and "RECIPE" in res.stdout.upper() and "--set" in res.stdout


def test_run_checks_every_model_before_the_first_stage(tmp_path, tiny_lm, monkeypatch):
    port = free_port()  # a loopback port nobody listens on
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", name="pre",
                    strong={"backend": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1",
                            "api_key_env": "NO_SUCH_KEY"},
                    judge={"backend": "hf", "model": str(tmp_path / "missing-model")})
    res = invoke("run", write_recipe(tmp_path, d))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "strong.api_key_env: environment variable NO_SUCH_KEY is not set" in res.stderr
    assert f"judge.model: {tmp_path / 'missing-model'}: no such model directory" in res.stderr
    assert not (tmp_path / "runs/pre/sft").exists()  # nothing was trained
    monkeypatch.setenv("NO_SUCH_KEY", "sk-test")
    res = invoke("run", write_recipe(tmp_path, {**d, "judge": None}))
    assert res.exit_code == 1 and f"strong.base_url: http://127.0.0.1:{port}/v1 refused the connection" in res.stderr
