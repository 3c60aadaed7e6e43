"""Task loaders on small fixtures in the real schemas, splits, error messages, and the packaged data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cowest.config import TaskConfig
from cowest.tasks import available, load_task
from cowest.tasks.base import Example
from cowest.tasks.families.evals import parse_mcq_prompt
from cowest.tasks.readers import TaskDataError, iter_rows
from cowest.tasks.splits import split_examples
from cowest.tasks.types import Classification, MultipleChoice, ShortAnswer

FIX = Path(__file__).parent / "fixtures"


def load(name: str, **kw) -> object:
    return load_task(TaskConfig(name=name, **kw))


def all_examples(data) -> list[Example]:
    return data.train + data.test


def questions(examples) -> set[str]:
    return {" ".join(e.question.casefold().split()) for e in examples}


def test_builtins_registered():
    assert {"mmlu", "medmcqa", "ifqa", "prosocial", "evals_mcq", "jsonl", "csv"} <= set(available())


def test_every_builtin_name_resolves_to_its_loader():
    from cowest.tasks.registry import BUILTIN, get_loader

    for name, target in BUILTIN.items():
        assert get_loader(name).__name__ == target.split(":")[1]
    with pytest.raises(ValueError, match="unknown task 'nope'; known: csv, evals_mcq"):
        get_loader("nope")


def test_importing_the_package_imports_no_loader():
    import subprocess
    import sys

    code = "import sys, cowest.tasks; print(*sorted(m for m in sys.modules if m.startswith('cowest.tasks.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "cowest.tasks.registry" in loaded
    assert not [m for m in loaded if ".families" in m or m.endswith((".loaders", ".formulary"))]


# ---------------------------------------------------------------- MedMCQA


def test_medmcqa_hub_schema():
    data = load("medmcqa", path=str(FIX / "medmcqa_hub.jsonl"), test_fraction=0.25)
    assert isinstance(data.type, MultipleChoice)
    exs = {e.id: e for e in all_examples(data)}
    assert len(exs) == 8 and len(data.test) == 2
    b12 = exs["mm-001"]
    assert b12.options == ["Vitamin C", "Vitamin B7", "Vitamin B12", "Vitamin D"] and b12.gold == "C"
    assert b12.explanation == "Vitamin B12 is found only in foods of animal origin."
    assert b12.metadata["subject"] == "Biochemistry"
    assert exs["mm-003"].gold == "A" and exs["mm-003"].explanation is None
    assert exs["mm-005"].explanation is None  # empty exp
    # The near-duplicate question (case/spacing) lands in the same split as its twin.
    in_test = {e.id for e in data.test}
    assert ("mm-002" in in_test) == ("mm-007" in in_test)
    assert not questions(data.train) & questions(data.test)
    for e in data.train:  # the corpus carries answers and explanations for retrieval
        assert any(e.question in p and data.type.format_answer(e) in p for p in data.corpus)
    assert any("animal origin" in p for p in data.corpus) == ("mm-001" not in in_test)


def test_medmcqa_evals_schema():
    data = load("medmcqa", path=str(FIX / "medmcqa_evals.jsonl"), test_fraction=0.5, seed=1)
    exs = sorted(all_examples(data), key=lambda e: e.id)
    assert [e.id for e in exs] == ["medmcqa-1", "medmcqa-2", "medmcqa-3", "medmcqa-4"]
    first = exs[0]
    assert first.question.startswith("Chronic urethral obstruction") and "Subject" not in first.question
    assert first.options == ["Hyperplasia", "Hyperophy", "Atrophy", "Dyplasia"] and first.gold == "C"
    assert first.metadata["subject"] == "Anatomy"
    assert [e.gold for e in exs] == ["C", "D", "B", "A"]
    assert "\n\nWhich aery" in exs[3].question  # blank lines inside the question survive
    assert MultipleChoice().extract("c) Atrophy", first) == "C"  # the `ideal` format reads back


def test_medmcqa_parquet_and_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIX / "medmcqa_hub.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    data = load("medmcqa", path=str(tmp_path / "m.parquet"))
    assert len(all_examples(data)) == 8
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("question,opa,opb,opc,opd,cop,exp\nQ?,a,b,c,d,3,because\n")
    data = load("medmcqa", path=str(csv_path), test_fraction=0)
    assert data.train[0].gold == "D" and data.train[0].id == "medmcqa-2"


def test_medmcqa_cop_base_option(tmp_path):
    f = tmp_path / "orig.jsonl"
    f.write_text(json.dumps({"question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4}) + "\n")
    with pytest.raises(TaskDataError, match="field 'cop'"):
        load("medmcqa", path=str(f))
    assert load("medmcqa", path=str(f), test_fraction=0, options={"cop_base": 1}).train[0].gold == "D"


def test_medmcqa_hub_uses_validation_as_test(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIX / "medmcqa_hub.jsonl").read_text().splitlines()]
    unlabeled = [dict(r, cop=-1) for r in rows[:2]]
    fake = datasets.DatasetDict(
        train=datasets.Dataset.from_list(rows[2:]),
        validation=datasets.Dataset.from_list(rows[:2]),
        test=datasets.Dataset.from_list(unlabeled),
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    data = load("medmcqa", hub="openlifescienceai/medmcqa")
    assert calls == [("openlifescienceai/medmcqa", None)]
    assert {e.id for e in data.test} == {"mm-001", "mm-002"}
    # mm-007 repeats mm-002's question, so it is held out of train.
    assert {e.id for e in data.train} == {"mm-003", "mm-004", "mm-005", "mm-006", "mm-008"}
    capped = load("medmcqa", hub="x/y", n_train=2, n_test=1, seed=4)
    assert len(capped.train) == 2 and len(capped.test) == 1
    assert capped.test == load("medmcqa", hub="x/y", n_train=4, n_test=1, seed=4).test  # caps are independent
    assert [e.id for e in capped.train] == [e.id for e in load("medmcqa", hub="x/y", n_train=2, n_test=1, seed=4).train]


def test_a_hub_dataset_not_cached_and_out_of_reach_is_one_line_naming_task_hub(monkeypatch, tmp_path):
    import datasets

    from cowest.models import hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)  # nothing cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskDataError, match=r"^task\.hub: 'no-org/no-set' is not cached here and the Hub is off"):
        load("medmcqa", hub="no-org/no-set")

    # Online but unreachable: one quick probe, then straight to the cache (no retries), and the switch put back.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "probe", lambda repo, kind: ("unreachable", "the Hub cannot be reached (ConnectError)"))
    seen = []

    def cached_only(*a, **k):
        seen.append(datasets.config.HF_HUB_OFFLINE)
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(datasets, "load_dataset", cached_only)
    with pytest.raises(TaskDataError, match=r"not cached here and the Hub cannot be reached \(ConnectError\)"):
        load("medmcqa", hub="no-org/no-set")
    assert seen == [True] and datasets.config.HF_HUB_OFFLINE is False

    monkeypatch.setattr(hub, "probe", lambda repo, kind: ("missing", "no such dataset on the Hugging Face Hub"))
    with pytest.raises(TaskDataError, match=r"^task\.hub: 'no-org/no-set': no such dataset"):
        load("medmcqa", hub="no-org/no-set")


def test_offline_paths_never_import_the_hub(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("hub touched"))
    load("medmcqa", path=str(FIX / "medmcqa_hub.jsonl"))
    load("ifqa", path=str(FIX / "ifqa.json"))
    load("prosocial", path=str(FIX / "prosocial.jsonl"))


# ---------------------------------------------------------------- IfQA


@pytest.mark.parametrize("name", ["ifqa.json", "ifqa.jsonl"])
def test_ifqa_json_list_and_jsonl(name):
    data = load("ifqa", path=str(FIX / name), test_fraction=0.5)
    assert isinstance(data.type, ShortAnswer)
    exs = {e.id: e for e in all_examples(data)}
    assert sorted(exs) == ["0", "1", "2", "3", "4", "5"] and len(data.test) == 3
    uk = exs["0"]
    assert uk.gold == "United Kingdom" and uk.answers == ["United Kingdom", "UK", "England"]
    assert uk.explanation is None and len(uk.metadata["context"]) == 2
    assert exs["3"].metadata["context"] == ["Hamlet is a tragedy written by William Shakespeare."]
    assert "context" not in exs["2"].metadata
    assert exs["0"].metadata["source"].endswith(f"{name}:{2 if name.endswith('.json') else 1}")
    for e in data.train:
        assert any(e.question in p and all(c in p for c in e.metadata.get("context", [])) for p in data.corpus)


def test_ifqa_json_array_line_numbers(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"idx": 1, "question": "Q?", "answers": ["a"]},\n  {"idx": 2, "question": "Q2?",\n   "answers": []}\n]\n')
    with pytest.raises(TaskDataError, match=r"bad\.json:3: field 'answers': empty"):
        load("ifqa", path=str(bad))
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"idx": 1, "question": "Q?", "answers": ["a"]},\n  {"idx": 2, "question": oops}\n]')
    with pytest.raises(TaskDataError, match=r"broken\.json:3: invalid JSON"):
        load("ifqa", path=str(broken))


def test_a_json_object_holding_one_list_of_rows_is_read_as_that_list(tmp_path):
    wrapped = tmp_path / "w.json"
    wrapped.write_text('{"version": "1.1",\n "data": [\n  {"q": "A?", "a": "1"},\n  {"q": "B?",\n   "a": "2"}\n ]}\n')
    assert [(loc.line, row["q"]) for loc, row in iter_rows(wrapped)] == [(3, "A?"), (4, "B?")]
    jsonl = tmp_path / "j.json"  # one object a line stays JSONL, even where a line holds a list of objects
    jsonl.write_text('{"q": "A?", "a": "1", "refs": [{"x": 1}]}\n{"q": "B?", "a": "2", "refs": []}\n')
    assert [loc.line for loc, _ in iter_rows(jsonl)] == [1, 2]
    one = tmp_path / "one.json"  # and a file of one such row is that row
    one.write_text('{"q": "A?", "a": "1", "refs": [{"x": 1}, {"x": 2}]}\n')
    assert [row["q"] for _, row in iter_rows(one)] == ["A?"]


def test_ifqa_needs_a_source():
    with pytest.raises(TaskDataError, match="task.path"):
        load("ifqa")


# ---------------------------------------------------------------- ProsocialDialog


def test_prosocial():
    data = load("prosocial", path=str(FIX / "prosocial.jsonl"), test_fraction=0.34)
    assert isinstance(data.type, Classification)
    exs = {e.id: e for e in all_examples(data)}
    assert len(exs) == 6 and len(data.test) == 2
    e = exs["3-0"]
    assert e.question.startswith("I want to get back at my coworker")
    assert e.options == ["casual", "possibly needs caution", "probably needs caution", "needs caution", "needs intervention"]
    assert e.gold == "needs caution"
    assert e.explanation == "It's wrong to sabotage coworkers You shouldn't seek revenge"
    assert e.metadata["response"].startswith("Deleting her work")
    assert {x.gold for x in exs.values()} == set(e.options)
    assert data.type.extract("Final answer: __needs_caution__", e) == "needs caution"


def test_prosocial_hub(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIX / "prosocial.jsonl").read_text().splitlines()]
    fake = datasets.DatasetDict(train=datasets.Dataset.from_list(rows[:4]), test=datasets.Dataset.from_list(rows[4:]))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    data = load("prosocial", hub="allenai/prosocial-dialog")
    assert len(data.train) == 4 and len(data.test) == 2
    assert data.test[0].metadata["source"].startswith("allenai/prosocial-dialog[test]:")


def test_prosocial_bad_label(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"context": "hi", "rots": [], "safety_label": "__fine__"}) + "\n")
    with pytest.raises(TaskDataError, match=r"p\.jsonl:1: field 'safety_label': expected one of __casual__"):
        load("prosocial", path=str(f))


# ---------------------------------------------------------------- evals MCQ and MMLU (fixtures)


def test_evals_mcq_fixture():
    data = load("evals_mcq", path=str(FIX / "evals_tort.jsonl"), test_fraction=0)
    exs = data.train
    assert [e.gold for e in sorted(exs, key=lambda e: e.id)] == ["A", "C", "A"]
    tort = next(e for e in exs if e.id.endswith("-1"))
    assert tort.question.endswith("Is the driver negligent?") and tort.options[0].startswith("Yes, because running")
    quartz = next(e for e in exs if e.id.endswith("-3"))
    assert quartz.options == ["increases", "decreases"]


def test_parse_mcq_prompt_layouts():
    assert parse_mcq_prompt("Q?\nA. A.one\nB. B.two\nAnswer:") == (None, "Q?", ["one", "two"])
    assert parse_mcq_prompt("Subject: X\n\nQ?\n(a) one\n(b) two") == ("X", "Q?", ["one", "two"])
    assert parse_mcq_prompt("Q?\nB. one\nC. two") is None  # must start at A
    assert parse_mcq_prompt("Is this ok?\nYes\nNo\nAnswer:") is None
    assert parse_mcq_prompt("Is this ok?\nYes\nNo\nAnswer:", unlettered=True) == (None, "Is this ok?", ["Yes", "No"])


def test_mmlu_fixture_subjects_and_header_rows():
    path = str(FIX / "mmlu_small.jsonl")
    data = load("mmlu", path=path, test_fraction=0)
    assert len(data.train) == 6  # the stray "question,answer_a,..." header row is skipped
    nutr = load("mmlu", path=path, subjects=["Nutrition"], test_fraction=0)
    assert {e.metadata["subject"] for e in nutr.train} == {"nutrition"} and len(nutr.train) == 2
    with pytest.raises(TaskDataError, match=r"unknown subject\(s\) virology; valid: anatomy, jurisprudence, nutrition"):
        load("mmlu", path=path, subjects=["virology"])
    # Two different questions share the text "Which of the following is true?": both kept, same split.
    for seed in range(6):
        d = load("mmlu", path=path, seed=seed, test_fraction=0.5)
        same = [e for e in all_examples(d) if e.question == "Which of the following is true?"]
        assert len(same) == 2
        assert sum(e in d.test for e in same) in (0, 2)


def test_mix_pools_sources_and_never_splits_one_question():
    path = str(FIX / "mmlu_small.jsonl")
    sources = [{"name": "mmlu", "path": path, "subjects": ["nutrition"]},
               {"name": "medmcqa", "path": str(FIX / "medmcqa_hub.jsonl")},
               {"name": "mmlu", "path": path}]  # repeats the nutrition rows: dropped as exact repeats
    single = {"nutrition": 2, "mmlu": 6, "medmcqa": len(all_examples(load("medmcqa", path=sources[1]["path"])))}
    for seed in range(4):
        d = load("mix", seed=seed, test_fraction=0.4, options={"sources": sources})
        got = all_examples(d)
        assert len(got) == single["mmlu"] + single["medmcqa"]
        assert questions(d.train).isdisjoint(questions(d.test))
        assert {e.metadata["source_task"] for e in got} == {"mmlu", "medmcqa"}
        assert len(d.corpus) == len(d.train) and isinstance(d.type, MultipleChoice)
    assert len(load("mix", n_train=3, n_test=2, options={"sources": sources}).train) == 3
    with pytest.raises(TaskDataError, match=r"task.options.sources\[0\].bogus"):
        load("mix", options={"sources": [{"name": "mmlu", "bogus": 1}]})
    with pytest.raises(TaskDataError, match="different task types"):
        load("mix", options={"sources": [{"name": "mmlu", "path": path},
                                         {"name": "ifqa", "path": str(FIX / "ifqa.jsonl")}]})
    with pytest.raises(TaskDataError, match="must be a list"):
        load("mix")


# ---------------------------------------------------------------- generic JSONL / CSV


def test_generic_jsonl_mapping():
    fields = {"id": "qid", "question": "prompt", "options": "choices", "gold": "label", "explanation": "why"}
    data = load("jsonl", path=str(FIX / "generic.jsonl"), type="multiple_choice", fields=fields, test_fraction=0)
    exs = {e.id: e for e in data.train}
    assert {k: e.gold for k, e in exs.items()} == {"g1": "B", "g2": "A", "g3": "C", "g4": "B", "g5": "C"}
    assert exs["g4"].options == ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"]  # "|"-delimited
    assert exs["g1"].explanation.startswith("Beta cells")
    assert len(exs["g2"].options) == 3


def test_generic_csv_option_columns():
    fields = {"question": "text", "options": "opt1,opt2,opt3", "gold": "answer", "explanation": "note"}
    data = load("csv", path=str(FIX / "generic.csv"), type="multiple_choice", fields=fields, test_fraction=0)
    exs = {e.id: e for e in data.train}
    assert {k: e.gold for k, e in exs.items()} == {"c1": "A", "c2": "B", "c3": "B", "c4": "B"}
    assert exs["c3"].question == "A multi-line\nquestion: which planet is red?"
    assert exs["c4"].metadata["source"].endswith("generic.csv:6")  # c3 spans lines 4-5
    assert exs["c2"].explanation == "Photosynthesis uses CO2." and exs["c1"].explanation is None


def test_generic_classification_and_short_answer():
    labels = load("csv", path=str(FIX / "generic_labels.csv"), type="classification",
                  fields={"question": "text", "gold": "label"}, test_fraction=0,
                  options={"labels": ["positive", "negative", "neutral"]})
    assert {e.id: e.gold for e in labels.train} == {"l1": "positive", "l2": "negative", "l3": "neutral", "l4": "positive"}
    assert all(e.options == ["positive", "negative", "neutral"] for e in labels.train)
    short = load("csv", path=str(FIX / "generic_short.csv"), type="short_answer",
                 fields={"question": "text", "gold": "answer", "answers": "aliases"}, test_fraction=0)
    exs = {e.id: e for e in short.train}
    assert exs["s1"].gold == "William Shakespeare" and exs["s1"].answers == ["Shakespeare", "W. Shakespeare"]
    assert exs["s2"].answers == ["Au"]


def test_generic_classification_collects_labels():
    data = load("csv", path=str(FIX / "generic_labels.csv"), type="classification",
                fields={"question": "text", "gold": "label"}, test_fraction=0.5)
    assert all(e.options == ["negative", "neutral", "positive"] for e in all_examples(data))
    assert sorted(e.gold for e in all_examples(data)) == ["negative", "neutral", "positive", "positive"]


def test_generic_errors(tmp_path):
    with pytest.raises(TaskDataError, match="task.type is required"):
        load("jsonl", path=str(FIX / "generic.jsonl"))
    with pytest.raises(TaskDataError, match="unknown field"):
        load("jsonl", path=str(FIX / "generic.jsonl"), type="short_answer", fields={"prompt": "x"})
    f = tmp_path / "g.csv"
    f.write_text("question,options,gold\nQ1,a|b|c,B\nQ2,a|b|c,E\n")
    with pytest.raises(TaskDataError, match=r"g\.csv:3: field 'gold': expected a letter A-C"):
        load("csv", path=str(f), type="multiple_choice")
    f.write_text("question,options,gold\nQ1,a|b|c,B,extra\n")
    with pytest.raises(TaskDataError, match=r"g\.csv:2: expected 3 columns, got 4"):
        load("csv", path=str(f), type="multiple_choice")


def test_generic_csv_separator_index_base_and_gold_forms(tmp_path):
    f = tmp_path / "plants.csv"
    f.write_text("qid,prompt,choices,answer\n"
                 "p1,How often is the fern watered?,Every day;Every 2 days;Every 5 days,Every 2 days\n"
                 "p2,Above which temperature does the fern wilt?,18 °C;22 °C;30 °C,b\n"
                 "p3,How often is the lily watered?,Every day;Every 3 days;Every 7 days,2\n", encoding="utf-8")
    data = load("csv", path=str(f), type="multiple_choice", test_fraction=0,
                fields={"id": "qid", "question": "prompt", "options": "choices", "gold": "answer"},
                options={"options_sep": ";", "index_base": 1})
    assert {e.id: e.gold for e in data.train} == {"p1": "B", "p2": "B", "p3": "B"}  # text, letter, 1-based index
    assert {e.id: e for e in data.train}["p2"].options == ["18 °C", "22 °C", "30 °C"]


def test_generic_extra_columns_become_metadata(tmp_path):
    f = tmp_path / "parts.jsonl"
    rows = [{"q": "Warranty of KT-1?", "options": ["6 months", "12 months"], "gold": "A", "kind": "fact",
             "shelf": 3, "subject": "pumps"},
            {"q": "Which fits the Orrin A3?", "options": ["KT-1", "KT-2"], "gold": "KT-2", "kind": "reasoning",
             "shelf": 4, "subject": "probes"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load("jsonl", path=str(f), type="multiple_choice", fields={"question": "q"}, test_fraction=0)
    first, second = data.train
    assert first.metadata == {"kind": "fact", "shelf": 3, "subject": "pumps", "source": f"{f}:1"}
    assert second.metadata["kind"] == "reasoning" and second.gold == "B"
    # A 'subject' column makes task.subjects usable.
    assert [e.id for e in load("jsonl", path=str(f), type="multiple_choice", fields={"question": "q"},
                               test_fraction=0, subjects=["probes"]).train] == ["parts-2"]
    csv = tmp_path / "parts.csv"
    csv.write_text("question,options,gold,shelf\nQ1?,a|b,A,3\nQ2?,a|b,B,4\n")
    assert [e.metadata["shelf"] for e in load("csv", path=str(csv), type="multiple_choice",
                                              test_fraction=0).train] == ["3", "4"]
    csv.write_text("question,options,gold,source\nQ1?,a|b,A,catalogue 2\n")
    with pytest.raises(TaskDataError, match=r"parts\.csv:2: field 'source': reserved"):
        load("csv", path=str(csv), type="multiple_choice", test_fraction=0)


def test_select_where_compares_cells_as_text_and_fails_loudly():
    from cowest.tasks.base import select_where

    exs = [Example(id=str(i), question=f"Q{i}", gold="A", metadata={"kind": k, "shelf": str(i)})
           for i, k in enumerate(["fact", "reasoning", "reasoning"])]
    assert [e.id for e in select_where(exs, {"kind": "reasoning"})] == ["1", "2"]
    assert [e.id for e in select_where(exs, {"shelf": 2, "kind": "reasoning"})] == ["2"]  # '2' (a CSV cell) == 2
    assert select_where(exs, {}) == exs
    with pytest.raises(TaskDataError, match=r"mining.where \{'kind': 'reasonin'\} matches none of the 3 questions "
                                            r"\(kind: fact, reasoning\)"):
        select_where(exs, {"kind": "reasonin"})
    with pytest.raises(TaskDataError, match="topic: no example has this key"):
        select_where(exs, {"topic": "pumps"})


def test_corpus_path_plain_text_and_jsonl(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"question": f"Q{i}?", "options": ["a", "b"], "gold": "A"}) + "\n"
                             for i in range(4)))
    txt = tmp_path / "facts.txt"
    txt.write_text("Part KT-1 carries a 6-month warranty.\n\n  Part KT-2 fits the Orrin A3.  \n")
    data = load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(txt))
    assert data.facts == data.corpus == ["Part KT-1 carries a 6-month warranty.", "Part KT-2 fits the Orrin A3."]
    without = load("jsonl", path=str(train), type="multiple_choice")
    assert without.facts == [] and len(without.corpus) == len(without.train)  # built from the training rows
    jl = tmp_path / "facts.jsonl"
    jl.write_text('{"text": "Part KT-1 carries a 6-month warranty.", "part": "KT-1"}\n\n{"text": 12}\n')
    assert load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(jl)).facts == [
        "Part KT-1 carries a 6-month warranty.", "12"]
    # The shared flow honours it for every loader.
    assert load("mmlu", path=str(FIX / "mmlu_small.jsonl"), corpus_path=str(txt)).corpus == data.corpus


@pytest.mark.parametrize(("content", "error"), [
    ('{"text": "ok"}\n{"fact": "no text"}\n', r"facts\.jsonl:2: field 'text': missing"),
    ('{"text": "ok"}\n{"text": ""}\n', r"facts\.jsonl:2: field 'text': empty"),
    ('{"text": ["a", "list"]}\n', r"facts\.jsonl:1: field 'text': expected text, got list"),
    ('{"text": "ok"}\n{"text": "unclosed\n', r"facts\.jsonl:2: invalid JSON"),
    ("\n\n", r"facts\.jsonl: task.corpus_path: the file holds no facts"),
])
def test_corpus_path_errors_name_file_line_and_field(tmp_path, content, error):
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"question": "Q?", "options": ["a", "b"], "gold": "A"}) + "\n")
    bad = tmp_path / "facts.jsonl"
    bad.write_text(content)
    with pytest.raises(TaskDataError, match=error):
        load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(bad))


def test_corpus_path_missing_or_unknown_kind(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"question": "Q?", "options": ["a", "b"], "gold": "A"}) + "\n")
    with pytest.raises(TaskDataError, match=r"nope\.txt: no such file"):
        load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(tmp_path / "nope.txt"))
    (tmp_path / "facts.csv").write_text("text\nA fact.\n")
    with pytest.raises(TaskDataError, match=r"facts\.csv: task.corpus_path: unsupported file type '.csv'"):
        load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(tmp_path / "facts.csv"))
    bad = tmp_path / "facts.txt"
    bad.write_bytes(b"good line\nbad \xff line\n")
    with pytest.raises(TaskDataError, match=r"facts\.txt:2: not valid UTF-8"):
        load("jsonl", path=str(train), type="multiple_choice", corpus_path=str(bad))


# ---------------------------------------------------------------- splits


def _many(n: int) -> list[Example]:
    return [Example(id=str(i), question=f"Question number {i}?", options=["x", "y"], gold="A") for i in range(n)]


def test_split_deterministic_disjoint_and_capped():
    exs = _many(100)
    exs += [Example(id="dup", question="question  NUMBER 3?", options=["x", "y"], gold="A")]  # exact repeat
    exs += [Example(id="twin", question="Question number 5?", options=["z", "w"], gold="B")]  # same text
    cfg = TaskConfig(name="t", test_fraction=0.3, seed=7)
    train, test = split_examples(exs, cfg)
    assert len(train) + len(test) == 101 and len(test) == 30
    assert "dup" not in {e.id for e in train + test}
    assert not questions(train) & questions(test)
    again = split_examples(list(exs), cfg)
    assert [e.id for e in again[0]] == [e.id for e in train] and [e.id for e in again[1]] == [e.id for e in test]
    other = split_examples(exs, TaskConfig(name="t", test_fraction=0.3, seed=8))
    assert {e.id for e in other[1]} != {e.id for e in test}
    capped = split_examples(exs, TaskConfig(name="t", test_fraction=0.3, seed=7, n_train=10, n_test=5))
    assert [e.id for e in capped[0]] == [e.id for e in train[:10]] and [e.id for e in capped[1]] == [e.id for e in test[:5]]
    with pytest.raises(TaskDataError):
        split_examples(exs, TaskConfig(name="t", test_fraction=1.5))


def test_loader_split_is_stable_across_calls():
    a = load("medmcqa", path=str(FIX / "medmcqa_hub.jsonl"), seed=3)
    b = load("medmcqa", path=str(FIX / "medmcqa_hub.jsonl"), seed=3)
    assert [e.id for e in a.test] == [e.id for e in b.test] and [e.id for e in a.train] == [e.id for e in b.train]


def test_test_path_option(tmp_path):
    data = load("ifqa", path=str(FIX / "ifqa.json"), test_path=str(FIX / "ifqa.jsonl"))
    assert len(data.test) == 6 and data.train == []  # every train question is also a test question


# ---------------------------------------------------------------- malformed rows name file, line and field


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": "x"},
         "field 'cop': expected an integer 0-3, got 'x'"),
        ({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 7}, "field 'cop'"),
        ({"question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": True}, "field 'cop'"),
        ({"question": "", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 1}, "field 'question': empty"),
        ({"question": "Q", "opa": "a", "opc": "c", "opd": "d", "cop": 1}, "field 'opb': missing"),
        ({"question": "Q", "opa": ["a"], "opb": "b", "opc": "c", "opd": "d", "cop": 1}, "field 'opa': expected text"),
        ({"input": [{"role": "user", "content": "no options here"}], "ideal": "a"}, "field 'input'"),
        ({"input": [{"role": "user", "content": "Q\na) x\nb) y"}], "ideal": "c) z"}, "field 'ideal'"),
        ({"input": [{"role": "user", "content": "Q\na) x\nb) y"}], "ideal": "b) not y"}, "field 'ideal': 'b) not y' does not match option B"),
    ],
)
def test_malformed_medmcqa_rows(tmp_path, row, expected):
    f = tmp_path / "data.jsonl"
    good = {"question": "Fine?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}
    f.write_text("\n".join(json.dumps(r) for r in [good] * 16 + [row]) + "\n")
    with pytest.raises(TaskDataError) as err:
        load("medmcqa", path=str(f))
    assert f"data.jsonl:17: {expected}" in str(err.value)


def test_file_level_errors(tmp_path):
    f = tmp_path / "data.jsonl"
    good = json.dumps({"question": "Fine?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0})
    f.write_bytes(good.encode() + b'\n{"question": "caf\xe9"}\n')
    with pytest.raises(TaskDataError, match=r"data\.jsonl:2: not valid UTF-8"):
        load("medmcqa", path=str(f))
    f.write_text('{"question": "Q", "opa": "a"\n')
    with pytest.raises(TaskDataError, match=r"data\.jsonl:1: invalid JSON"):
        load("medmcqa", path=str(f))
    f.write_text('["not", "an", "object"]\n')
    with pytest.raises(TaskDataError, match=r"data\.jsonl:1: expected a JSON object"):
        load("medmcqa", path=str(f))
    c = tmp_path / "d.csv"
    c.write_bytes(b"question,answers\nQ,a\nQ2,\xff\n")
    with pytest.raises(TaskDataError, match=r"d\.csv:3: not valid UTF-8"):
        list(iter_rows(c))
    with pytest.raises(TaskDataError, match="no such file"):
        load("medmcqa", path=str(tmp_path / "missing.jsonl"))
    with pytest.raises(TaskDataError, match="unsupported file type"):
        load("medmcqa", path=str(shutil.copy(FIX / "generic.csv", tmp_path / "x.txt")))
    assert issubclass(TaskDataError, ValueError)


def test_on_error_skip(tmp_path, caplog):
    f = tmp_path / "data.jsonl"
    good = {"question": "Fine?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}
    f.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, question="Other?", cop=9)) + "\n")
    data = load("medmcqa", path=str(f), test_fraction=0, options={"on_error": "skip"})
    assert len(data.train) == 1 and "skipped 1 malformed rows" in caplog.text


# ---------------------------------------------------------------- the packaged data (installed by `make assets`)


@pytest.mark.integration
def test_packaged_mmlu():
    from cowest.assets import data_file

    data = load("mmlu", seed=0)
    n = len(all_examples(data))
    assert 13_900 < n <= 14_042  # 14,044 lines minus 2 stray header rows, minus exact repeats
    assert not questions(data.train) & questions(data.test)
    assert abs(len(data.test) / n - 0.3) < 0.01
    med = load("mmlu", subjects=["clinical_knowledge", "college_medicine"], n_train=20, n_test=30)
    assert len(med.train) == 20 and len(med.test) == 30
    assert {e.metadata["subject"] for e in all_examples(med)} <= {"clinical knowledge", "college medicine"}
    assert data_file("mmlu").is_file()


@pytest.mark.integration
def test_packaged_medmcqa_and_evals_sets():
    data = load("medmcqa")
    assert len(all_examples(data)) == 300 and len(data.test) == 90
    e = next(x for x in all_examples(data) if x.question.startswith("Chronic urethral obstruction"))
    assert e.gold == "C" and e.options[2] == "Atrophy" and e.metadata["subject"] == "Anatomy"
    tort = load("evals_mcq", options={"asset": "us_tort_law"})
    assert len(all_examples(tort)) >= 330 and all(len(x.options) == 4 for x in all_examples(tort))
    moral = load("evals_mcq", options={"asset": "moral_exceptqa"})
    assert all(x.options == ["Yes", "No"] for x in all_examples(moral))


def test_an_empty_data_file_is_named(tmp_path):
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    with pytest.raises(TaskDataError, match=rf"task 'jsonl': {re.escape(str(empty))}: no examples"):
        load("jsonl", path=str(empty), type="multiple_choice")
