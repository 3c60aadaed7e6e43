"""The README's "Bring your own data" example: docs/examples/glasshouse.yaml and its two CSV files, as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowest.config import load_recipe
from cowest.run import Run
from cowest.tasks import load_task
from cowest.tasks.types import MultipleChoice

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "docs" / "examples" / "glasshouse.yaml"
GOLDS = {"gh-01": "B", "gh-02": "B", "gh-03": "B", "gh-04": "C", "gh-05": "B", "gh-06": "B",
         "gh-07": "D", "gh-08": "D", "gh-09": "A", "gh-10": "A", "gh-11": "C", "gh-12": "B"}


@pytest.fixture
def run(tmp_path, monkeypatch) -> Run:
    monkeypatch.chdir(ROOT)  # the recipe's paths are relative to the repository root, where `cowest run` starts
    recipe = load_recipe(RECIPE)
    return Run(recipe.model_copy(update={"output_dir": str(tmp_path)}))


def test_every_row_maps_to_an_example(run):
    whole = load_task(run.recipe.task.model_copy(update={"n_train": None}))
    assert isinstance(whole.type, MultipleChoice) and whole.name == "csv"
    # Golds given as option text, a letter (gh-02, gh-07) and a 1-based index (gh-05) all become the letter.
    assert {e.id: e.gold for e in whole.train} == GOLDS
    for e in whole.train:
        assert len(e.options) == 4 and e.metadata["source"].endswith(f"glasshouse-train.csv:{int(e.id[3:]) + 1}")
        plant = e.question.split("the ")[1].removesuffix(" watered?").removesuffix(" wilt?")
        assert e.explanation.startswith(f"The {plant} is watered every") and "wilts above" in e.explanation
    assert whole.train[1].options == ["18 °C", "22 °C", "30 °C", "38 °C"]  # split on options_sep ";"
    assert [(e.id, e.gold, e.explanation) for e in whole.test] == [
        ("gh-t1", "C", None), ("gh-t2", "D", None), ("gh-t3", "B", None), ("gh-t4", "C", None)]


def test_splits_are_the_test_file_and_a_seeded_training_sample(run):
    data = run.task
    assert [e.id for e in data.test] == ["gh-t1", "gh-t2", "gh-t3", "gh-t4"]
    assert len(data.train) == 10 and {e.id for e in data.train} < set(GOLDS)
    again = load_task(run.recipe.task)
    assert [e.id for e in again.train] == [e.id for e in data.train]
    other = load_task(run.recipe.task.model_copy(update={"seed": 1}))
    assert {e.id for e in other.train} != {e.id for e in data.train}


def test_sft_rows_teach_the_explanations(run):
    data, prompter = run.task, run.prompter
    rows = [prompter.sft_row(e) for e in data.train]  # as the SFT stage builds them
    for e, row in zip(data.train, rows):
        prompt = row["prompt"][0]["content"]
        assert e.question in prompt and data.type.format_options(e) in prompt
        answer = f"{e.gold}) {e.options['ABCD'.index(e.gold)]}"
        assert row["completion"][0]["content"] == f"Background: {e.explanation}\nAnswer: {answer}"
    assert run.recipe.task.sft_corpus and len(data.corpus) == 10
    corpus_rows = [prompter.corpus_row(p) for p in data.corpus]
    assert all(e.explanation in r["completion"][0]["content"] for e, r in zip(data.train, corpus_rows))


def test_readme_shows_the_recipes_task_block():
    import yaml

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Bring your own data\n", 1)[1].split("\n### ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["task"] == yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["task"]
    rows = section.split("```csv\n", 1)[1].split("```", 1)[0].splitlines()
    train = (RECIPE.parent / "glasshouse-train.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == train[0] and set(rows[1:]) <= set(train[1:])
