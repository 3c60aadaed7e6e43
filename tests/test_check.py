"""`cowest check`: every recipe problem at once with file:line: field, data and models found, the plan; nothing
written. Also `--version` and `-v`/`-q` after the command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cowest import assets
from cowest.cli import app

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted([*ROOT.glob("recipes/*.yaml"), *ROOT.glob("examples/*/recipe.yaml")])
OFFLINE = ("smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct")


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_recipes_pass_the_check(recipe, monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name their data relative to the repository root
    res = invoke("check", recipe.relative_to(ROOT))
    assert "valid" in res.stdout.splitlines()[0] and res.exit_code != 2, res.output  # the recipe itself is valid
    if recipe.name.startswith("paper-"):  # hub data and a paid endpoint: this machine is offline, without a key
        return
    if not all(assets.is_installed(a) for a in OFFLINE):
        pytest.skip("offline models not installed (cowest models install)")
    assert res.exit_code == 0 and "ready to run" in res.stdout, res.output
    assert "  sft: " in res.stdout and "data: " in res.stdout and "model: strong: " in res.stdout


PLANTED = """\
name: planted
output_dir: {out}
task:
  name: formulary
  n_test: many
weak: {{backend: hf, model: smollm2-135m-instruct}}
strong: {{backend: llamacpp, model: qwen2.5-coder-1.5b-instruct}}
strong: {{backend: openai, model: gpt-4o}}
collab:
  colour: blue
"""


def test_three_planted_errors_are_all_named_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(PLANTED.format(out=tmp_path / "runs"))
    before = tree(tmp_path)
    res = invoke("check", recipe)
    assert res.exit_code == 2, res.output
    errors = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    assert any(f"{recipe}:5: field task.n_test: Input should be a valid integer" in x for x in errors), errors
    assert any(f"{recipe}:8: field strong: duplicate key" in x for x in errors), errors
    assert any(f"{recipe}:10: field collab.colour: Extra inputs are not permitted" in x for x in errors), errors
    assert tree(tmp_path) == before


def test_missing_data_file_is_named_and_plan_explains_an_up_to_date_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = tmp_path / "r.yaml"
    text = (ROOT / "recipes/demo.yaml").read_text().replace("examples/formulary/demo/train.jsonl",
                                                              str(tmp_path / "gone.jsonl"))
    recipe.write_text(text)
    res = invoke("check", recipe, "--set", f"output_dir={tmp_path / 'runs'}")
    assert res.exit_code == 1 and "gone.jsonl" in res.stderr and "task" in res.stderr, res.output
    assert not (tmp_path / "runs").exists()


def test_a_hub_model_while_offline_is_a_problem_not_found(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = invoke("check", "recipes/demo.yaml", "--set", "weak.model=no-org/no-such-model", "--set",
                 f"output_dir={tmp_path / 'runs'}")
    assert res.exit_code == 1, res.output
    assert "error: weak.model: 'no-org/no-such-model' is not installed and the Hub cannot be reached (offline" \
        in res.stderr, res.output


def test_version_and_verbosity_after_the_command(tmp_path):
    from cowest import __version__

    assert invoke("--version").stdout.strip() == f"cowest {__version__}"
    res = invoke("tasks", "-q")
    assert res.exit_code == 0 and "formulary" in res.stdout, res.output
    assert invoke("tasks", "--verbose").exit_code == 0


def test_ablate_makes_no_run_folder_when_it_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    res = invoke("ablate", "recipes/demo.yaml", "--set", f"output_dir={tmp_path / 'runs'}")
    assert res.exit_code == 2 and "no ablations" in res.stderr, res.output
    assert not (tmp_path / "runs").exists()
    assert os.listdir(tmp_path) == []
