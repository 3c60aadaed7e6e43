"""`cowest init`: a recipe for a user's own data, read from the data and sized by a budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cowest.cli import app
from cowest.config import load_recipe
from cowest.recipes import map_fields, size, survey
from cowest.tasks import load_task
from cowest.tasks.readers import TaskDataError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _files(name: str) -> tuple[str, str, str]:
    d = EXAMPLES / name
    return str(d / "train.jsonl"), str(d / "test.jsonl"), str(d / "facts.txt")


@pytest.mark.parametrize("name,kind,pool", [("spare-parts", "multiple_choice", 8), ("rail-fares", "short_answer", 60),
                                            ("travel-policy", "classification", 80)])
def test_the_survey_reads_type_fields_and_the_questions_like_the_test(name, kind, pool):
    s = survey(*_files(name))
    assert s.type == kind and s.fields["gold"] == "answer" and s.fields["question"] == "question"
    assert s.where == {"kind": "reasoning"} and s.pool == pool  # every test question is a reasoning one
    assert s.facts > 0 and s.fact_words > 0 and not s.notes


def test_sizes_follow_the_budget():
    s = survey(*_files("rail-fares"))
    small, large = size(s, minutes=30), size(s, minutes=120)
    assert small.strong_call_budget < large.strong_call_budget and small.n_test < large.n_test
    assert small.sft_epochs <= large.sft_epochs and 2 <= small.sft_epochs <= 6
    calls = size(s, strong_calls=400)
    assert calls.strong_call_budget == 180 and calls.n_test == 45 and calls.minutes is None
    long_facts = size(survey(*_files("travel-policy")), minutes=60)
    assert long_facts.draft_max_tokens > size(s, minutes=60).draft_max_tokens  # room for two long clauses
    # the SFT check's extensions: always one, a second where the SFT share of the budget pays for it
    assert (small.sft_extensions, large.sft_extensions, calls.sft_extensions) == (1, 2, 2)
    few = size(survey(*_files("spare-parts")), minutes=60)  # 24 rows: 4 validation questions cannot steer one
    assert few.sft_extensions == 0 and any("too few to steer" in n for n in few.notes)


def test_sizes_say_when_mining_should_give_too_few_pairs_and_what_would_pay_for_them():
    s = survey(*_files("rail-fares"))  # 36 mining candidates
    short = next(n for n in size(s, minutes=60).notes if n.startswith("mining should give"))
    assert "--minutes 75 pays for the 187 strong calls 40 pairs need" in short and "this data has 36" in short
    # the advised budget does pay for them: the budget's part of the note goes, the questions' part stays
    paid = next(n for n in size(s, minutes=75).notes if n.startswith("mining should give"))
    assert "--minutes" not in paid and "a larger budget alone cannot give" in paid
    assert size(s, strong_calls=415).strong_call_budget >= 187
    many = survey(*_files("rail-fares"))
    many.pool = 200  # enough candidates and calls: nothing to say
    assert not any(n.startswith("mining should give") for n in size(many, minutes=120).notes)


def test_init_writes_a_recipe_that_loads_and_reads_the_data(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "r.yaml"
    train, test, facts = (str(Path(p).relative_to(ROOT)) for p in _files("travel-policy"))
    res = CliRunner().invoke(app, ["init", train, "--test", test, "--facts", facts, "--out", str(out),
                                   "--minutes", "45"])
    assert res.exit_code == 0, res.output
    assert "classification, 120 training" in res.stderr
    recipe = load_recipe(out)
    assert recipe.name == "travel-policy" and recipe.task.type == "classification"
    assert recipe.mining.where == {"kind": "reasoning"} and recipe.mining.pair_target == 48
    assert recipe.collab.draft_sections == ["Background"] and recipe.strong.n_parallel == 1
    task = load_task(recipe.task)
    assert len(task.train) == 120 and len(task.test) == recipe.task.n_test
    # every setting says why, and a second init does not overwrite the first
    assert out.read_text().count("#") > 20
    again = CliRunner().invoke(app, ["init", train, "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.stderr


def test_init_with_a_remote_strong_model_and_no_facts(tmp_path):
    rows = [{"q": f"What is {i} + {i}?", "label": str(2 * i)} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl"), "--field", "question=q", "--field", "gold=label",
                                   "--strong-calls", "200", "--strong-model", "gpt-4o",
                                   "--base-url", "http://localhost:9/v1"])
    assert res.exit_code == 0, res.output
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.strong.backend == "openai" and recipe.strong.model == "gpt-4o" and recipe.task.type == "short_answer"
    assert recipe.task.fields == {"question": "q", "gold": "label"} and recipe.mining.where == {}
    assert "no fact file" in res.stderr and recipe.mining.strong_call_budget == 90
    assert len(load_task(recipe.task).train) > 0


def test_a_missing_column_or_a_wrong_mapping_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"prompt_text": "Q?", "answer": "A"}\n')
    with pytest.raises(TaskDataError, match="no column for the question .* --field question=COLUMN"):
        survey(str(tmp_path / "d.jsonl"))
    with pytest.raises(TaskDataError, match="--field question=nope: no such column; columns: prompt_text, answer"):
        survey(str(tmp_path / "d.jsonl"), fields={"question": "nope"})


DEMO_ARGS = ["--minutes", "7", "--systems", "weak_sft,weak_aligned,strong,refine,cowest"]


@pytest.mark.parametrize("folder,name,recipe,extra", [
    ("spare-parts", "spare-parts", None, []), ("rail-fares", "rail-fares", None, []),
    ("travel-policy", "travel-policy", None, []), ("formulary", "formulary-files", None, []),
    ("formulary/demo", "demo", "recipes/demo.yaml", DEMO_ARGS),  # `make demo` runs what init writes too
])
def test_the_shipped_recipes_are_what_init_writes(tmp_path, monkeypatch, folder, name, recipe, extra):
    monkeypatch.chdir(ROOT)
    d = f"examples/{folder}"
    out = tmp_path / "recipe.yaml"
    res = CliRunner().invoke(app, ["init", f"{d}/train.jsonl", "--test", f"{d}/test.jsonl", "--facts", f"{d}/facts.txt",
                                   "--name", name, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    assert out.read_text() == (ROOT / (recipe or f"{d}/recipe.yaml")).read_text()


@pytest.mark.parametrize("columns,gold,letter", [
    (["A", "B", "C", "D"], "B", "B"),  # a CSV with one column per option
    (["answer_a", "answer_b", "answer_c", "answer_d"], "C", "C"),  # MMLU as packaged
    (["opa", "opb", "opc", "opd"], "Paris", "B"),  # MedMCQA's columns, the gold an option's text
])
def test_options_in_one_column_each_make_a_multiple_choice_recipe(tmp_path, columns, gold, letter):
    rows = [{"question": f"Capital number {i}?", **dict(zip(columns, ["Rome", "Paris", "Oslo", "Bern"])),
             "correct": gold} for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl"), "--field", "gold=correct"])
    assert res.exit_code == 0, res.output
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.task.type == "multiple_choice" and recipe.task.fields["options"] == ",".join(columns)
    example = load_task(recipe.task).train[0]
    assert example.options == ["Rome", "Paris", "Oslo", "Bern"] and example.gold == letter


def test_letter_golds_without_options_are_refused_not_read_as_labels(tmp_path):
    rows = [{"question": f"Q{i}?", "answer": "ABCD"[i % 4]} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskDataError, match="option letter .* no options column .* --field options="):
        survey(str(tmp_path / "d.jsonl"))
    assert survey(str(tmp_path / "d.jsonl"), task_type="classification").type == "classification"


def test_prompt_completion_columns_are_read():
    assert map_fields(["prompt", "completion"], {}, "d.jsonl") == {"question": "prompt", "gold": "completion"}


def test_numeric_golds_without_a_zero_count_from_one(tmp_path):
    rows = [{"question": f"Q{i}?", "options": ["w", "x", "y", "z"], "answer": 1 + i % 3} for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl")])
    assert res.exit_code == 0, res.output
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.task.options == {"index_base": 1} and "counted from 1" in res.stderr
    assert all(e.gold == "ABC"[int(e.question[1:-1]) % 3] for e in load_task(recipe.task).train)


def test_a_recipe_that_cannot_read_its_data_is_not_written(tmp_path):
    rows = [{"question": f"What is code {i}?", "answer": f"X-{i}"} for i in range(30)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.jsonl").write_text('{"question": "What is code 99?"}\n')  # no gold
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl"), "--test", str(tmp_path / "t.jsonl")])
    assert res.exit_code != 0 and "t.jsonl:1: field 'answer': missing" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "t.jsonl"]


def test_one_gold_for_every_row_is_refused(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"question": f"Q{i}?", "answer": "a"}) + "\n"
                                              for i in range(10)))
    with pytest.raises(TaskDataError, match="every row's gold is 'a'"):
        survey(str(tmp_path / "d.jsonl"))


def test_long_questions_get_a_strong_context_to_hold_them(tmp_path):
    passage = " ".join(["The clause says that taxis are refunded after ten at night."] * 200)  # 2,200 words
    rows = [{"question": f"{passage} Case {i}: is it refunded?", "answer": "yes" if i % 2 else "no"} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl")])
    assert res.exit_code == 0, res.output
    n_ctx = load_recipe(tmp_path / "recipe.yaml").strong.n_ctx
    assert n_ctx >= 1.6 * 2200 + 384 and n_ctx % 1024 == 0  # the passage, its answer, and the prompt around them
    assert "the longest question (2205 words" in (tmp_path / "recipe.yaml").read_text()


def test_the_real_data_example_is_what_init_and_make_data_write(tmp_path, monkeypatch):
    d = ROOT / "examples" / "mmlu-nutrition"
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(app, ["init", "examples/mmlu-nutrition/nut_train.jsonl", "--test",
                                   "examples/mmlu-nutrition/nut_test.jsonl", "--minutes", "20",
                                   "--out", str(tmp_path / "recipe.yaml")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "recipe.yaml").read_text() == (d / "recipe.yaml").read_text()
    assert "no explanation column" in res.stderr
    subprocess.run([sys.executable, str(d / "make_data.py"), str(tmp_path)], check=True, capture_output=True)
    assert all((tmp_path / p).read_bytes() == (d / p).read_bytes() for p in ("nut_train.jsonl", "nut_test.jsonl"))


def test_the_rail_fares_files_are_what_make_data_and_init_write(tmp_path, monkeypatch):
    d = ROOT / "examples" / "rail-fares"
    subprocess.run([sys.executable, str(d / "make_data.py"), str(tmp_path)], check=True, capture_output=True)
    files = ("facts.txt", "train.jsonl", "test.jsonl", "train_more.jsonl")
    assert all((tmp_path / p).read_bytes() == (d / p).read_bytes() for p in files)
    train, more, test = ([json.loads(x) for x in (d / f).read_text().splitlines()]
                         for f in ("train.jsonl", "train_more.jsonl", "test.jsonl"))
    assert more[:len(train)] == train and len(more) == len(train) + 72  # the older file's rows, then 3 per route
    assert not {r["question"] for r in more} & {r["question"] for r in test}
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(app, ["init", "examples/rail-fares/train_more.jsonl", "--test",
                                   "examples/rail-fares/test.jsonl", "--facts", "examples/rail-fares/facts.txt",
                                   "--name", "rail-fares-more", "--minutes", "75", "--out", str(tmp_path / "r.yaml")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.yaml").read_text() == (d / "recipe_more.yaml").read_text()
    assert "60 candidate questions" in res.stderr  # train.jsonl has 36; its recipe's note asks for about 60


@pytest.mark.parametrize("cell,kind", [
    ("reimbursable|not reimbursable", "classification"),  # one label set in a CSV cell, golds as labels
    ('["reimbursable", "not reimbursable"]', "classification"),
    ({"text": ["reimbursable", "not reimbursable"], "label": ["A", "B"]}, "classification"),
])
def test_a_label_set_shared_by_every_row_is_a_classification(tmp_path, cell, kind):
    rows = [{"question": f"Q{i}?", "options": cell, "answer": ["reimbursable", "not reimbursable"][i % 2]}
            for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert survey(str(tmp_path / "d.jsonl")).type == kind


def test_labelled_choices_as_arc_exports_them(tmp_path):
    rows = [{"question": f"Which is warm {i}?", "choices": {"text": ["ice", "sun", "snow"], "label": ["1", "2", "3"]},
             "answerKey": "2"} for i in range(12)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["init", str(tmp_path / "d.jsonl")])
    assert res.exit_code == 0, res.output
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.task.type == "multiple_choice" and recipe.task.fields == {"gold": "answerKey", "options": "choices"}
    assert recipe.task.options == {}  # the labels say where "2" points, not an index base
    example = load_task(recipe.task).train[0]
    assert example.options == ["ice", "sun", "snow"] and example.gold == "B"  # label "2" is the second option
