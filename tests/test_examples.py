"""The worked example of the README's "Bring your own data": examples/spare-parts, its files and recipe, as documented.

The end-to-end run of this recipe on the real models is in tests/test_e2e_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cowest.collab.targets import sft_rows
from cowest.config import load_recipe
from cowest.run import Run
from cowest.tasks.base import select_where
from cowest.tasks.types import MultipleChoice

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "spare-parts"
RECIPE = EXAMPLE / "recipe.yaml"


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EXAMPLE / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def run(tmp_path, monkeypatch) -> Run:
    monkeypatch.chdir(ROOT)  # the recipe's paths are relative to the repository root, where `cowest run` starts
    return Run(load_recipe(RECIPE).model_copy(update={"output_dir": str(tmp_path)}))


def test_every_row_and_fact_loads_as_documented(run):
    data = run.task
    assert isinstance(data.type, MultipleChoice) and data.name == "jsonl"
    train, test = rows("train.jsonl"), rows("test.jsonl")
    assert [e.id for e in data.test] == [r["id"] for r in test]  # the test file is the test split
    assert sorted(e.id for e in data.train) == sorted(r["id"] for r in train)
    for e, r in zip(sorted(data.train + data.test, key=lambda e: e.id), sorted(train + test, key=lambda r: r["id"])):
        # Golds given as a letter or as the option's text both become the letter.
        assert e.options[ord(e.gold) - 65] == (r["options"][ord(r["answer"]) - 65] if len(r["answer"]) == 1
                                               else r["answer"])
        assert e.metadata["kind"] == r["kind"] and e.metadata["part"] == r["part"]  # extra columns are metadata
    assert {len(r["answer"]) > 1 for r in train} == {True, False}  # both gold forms are shown
    facts = (EXAMPLE / "facts.txt").read_text(encoding="utf-8").splitlines()
    assert data.facts == data.corpus == facts and len(facts) == 17


def test_mining_where_selects_the_reasoning_questions(run):
    mined = select_where(run.task.train, run.recipe.mining.where)
    assert len(mined) == 8 and {e.metadata["kind"] for e in mined} == {"reasoning"}


def test_sft_targets_state_the_catalogue_facts(run):
    data = run.task
    targets, templated = sft_rows(run.prompter, data.train, data.facts)
    assert templated == 0  # every target's background comes from facts.txt
    for e, row in zip(data.train, targets):
        background, answer = row["completion"][0]["content"].split("\n")
        part = e.metadata["part"]
        assert background.startswith("Background: ") and f"Part {part}," in background, e.id
        assert answer == f"Answer: {e.gold}) {e.options[ord(e.gold) - 65]}"
        if e.id.startswith("sp-w"):  # a warranty question: the part's warranty fact states the gold value
            months = e.options[ord(e.gold) - 65].split()[0]
            assert f"Part {part}, " in background and f"{months}-month warranty" in background, e.id


def test_readme_shows_the_examples_recipe_and_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Bring your own data\n", 1)[1].split("\n### ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["task"] == yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["task"]
    shown = section.split("```json\n", 1)[1].split("```", 1)[0].splitlines()
    assert shown and all(json.loads(line) in rows("train.jsonl") for line in shown)
    facts = section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert facts and set(facts) <= set((EXAMPLE / "facts.txt").read_text(encoding="utf-8").splitlines())
    assert "cowest run examples/spare-parts/recipe.yaml" in section and "cowest tasks --describe jsonl" in section
