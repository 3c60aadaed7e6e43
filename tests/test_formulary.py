"""The synthetic `formulary` domain: determinism, sizes, disjoint splits, correct golds and distractors."""

from __future__ import annotations

import re

import pytest

import cowest.tasks.formulary as formulary  # registers "formulary" even before loaders.py imports it
from cowest.config import TaskConfig
from cowest.tasks.base import LETTERS
from cowest.tasks.formulary import FACT_TEMPLATES, formulary_facts, load_formulary

BOTH = ["dose", "contraindication"]


def cfg(seed: int = 0, n_test: int | None = None, **options) -> TaskConfig:
    return TaskConfig(name="formulary", seed=seed, n_test=n_test, options=options)


@pytest.fixture(scope="module")
def both():
    c = cfg(facts=BOTH)
    return load_formulary(c), {d["drug"]: d for d in formulary_facts(c)}


def all_examples(task):
    return task.train + task.test + task.extra["recall"]


def gold_text(ex):
    return ex.options[LETTERS.index(ex.gold)]


def test_deterministic_and_seed_dependent():
    a, b = load_formulary(cfg(facts=BOTH)), load_formulary(cfg(facts=BOTH))
    assert [e.model_dump() for e in all_examples(a)] == [e.model_dump() for e in all_examples(b)]
    assert a.corpus == b.corpus
    drugs0 = {d["drug"] for d in formulary_facts(cfg(seed=0))}
    drugs1 = {d["drug"] for d in formulary_facts(cfg(seed=1))}
    assert drugs0 != drugs1
    other = load_formulary(cfg(seed=1, facts=BOTH))
    assert [e.question for e in other.test] != [e.question for e in a.test]


def test_entity_table():
    facts = formulary_facts(cfg())
    assert len(facts) == 12
    for key in ("drug", "dose_mg_per_kg", "contraindication", "manufacturer", "class"):
        assert len({d[key] for d in facts}) == len(facts) or key == "manufacturer"
    assert all(re.fullmatch(r"[A-Z][a-z]+", d["drug"]) for d in facts)
    assert all((2 * d["dose_mg_per_kg"]).is_integer() and d["dose_mg_per_kg"] > 0 for d in facts)


def test_default_sizes():
    t = load_formulary(cfg())
    kinds = [e.metadata["kind"] for e in t.train]
    assert kinds.count("fact") == 12 * 6 and kinds.count("reasoning") == 48
    assert len(t.test) == 48 and all(e.metadata["kind"] == "reasoning" for e in t.test)
    assert len(t.extra["recall"]) == 12 * (len(FACT_TEMPLATES["dose"]) - 6)
    assert len(t.corpus) == 12 + 12
    assert t.type.name == "multiple_choice"
    assert all(len(e.options) == 4 and e.gold in "ABCD" for e in all_examples(t))
    assert {e.metadata["fact"] for e in all_examples(t)} == {"dose"}


def test_configured_sizes_and_n_test_from_config():
    t = load_formulary(cfg(n_test=10, n_drugs=6, facts=BOTH, wordings_per_fact=3, n_mining=20, n_options=3))
    assert len(t.test) == 10 and len(t.train) == 6 * 2 * 3 + 20
    assert all(len(e.options) == 3 for e in all_examples(t))
    both_set = TaskConfig(name="formulary", n_test=10, options={"n_test": 7})
    assert len(load_formulary(both_set).test) == 7  # options win over cfg.n_test


@pytest.mark.parametrize("bad", [{"facts": ["colour"]}, {"wordings_per_fact": 9}, {"n_options": 13},
                                 {"n_drgs": 3}, {"n_mining": 10_000}, {"rationale_mix": 1.5},
                                 {"wordings_per_fact": 7, "validation_wordings": 2}, {"n_sft_reasoning": -1}])
def test_bad_options_raise(bad):
    with pytest.raises(ValueError):
        load_formulary(cfg(**bad))


def test_questions_disjoint_and_ids_unique(both):
    t, _ = both
    qs = [e.question for e in all_examples(t)]
    assert len(set(qs)) == len(qs)
    ids = [e.id for e in all_examples(t)]
    assert len(set(ids)) == len(ids)
    mining = {(e.metadata["drug"], e.metadata["weight_kg"]) for e in t.train if "weight_kg" in e.metadata}
    test = {(e.metadata["drug"], e.metadata["weight_kg"]) for e in t.test if "weight_kg" in e.metadata}
    assert mining and test and not mining & test


def test_dose_reasoning_gold_and_distractors(both):
    t, table = both
    doses = {d["dose_mg_per_kg"] for d in table.values()}
    dose_qs = [e for e in t.train + t.test if e.metadata["kind"] == "reasoning" and e.metadata["fact"] == "dose"]
    assert len(dose_qs) >= 40
    for e in dose_qs:
        w, dose = e.metadata["weight_kg"], table[e.metadata["drug"]]["dose_mg_per_kg"]
        assert 40 <= w <= 110 and f"{w} kg" in e.question and e.metadata["drug"] in e.question
        values = [float(o.removesuffix(" mg")) for o in e.options]
        assert all(v.is_integer() for v in values)  # exact products, no rounding needed
        assert gold_text(e) == f"{int(w * dose)} mg"
        assert len(set(values)) == len(values)
        others = [v for v in values if v != w * dose]
        assert len(others) == 3 and all(v / w in doses - {dose} for v in others)
        assert e.metadata["reasoning"] == f"{w} kg x {dose:g} mg/kg = {int(w * dose)} mg."


def test_fact_and_contraindication_golds(both):
    t, table = both
    contras = {d["contraindication"] for d in table.values()}
    for e in all_examples(t):
        d = table[e.metadata["drug"]]
        assert d["drug"] in e.question and len(set(e.options)) == len(e.options)
        if e.metadata["kind"] == "fact" and e.metadata["fact"] == "dose":
            assert gold_text(e) == f"{d['dose_mg_per_kg']:g} mg/kg"
        elif e.metadata["fact"] == "contraindication":
            conds = [re.sub(r"^The \d+-year-old with ", "", o) for o in e.options]
            assert conds[LETTERS.index(e.gold)] == d["contraindication"]
            assert set(conds) <= contras
            if e.metadata["kind"] == "reasoning":
                assert f"The {e.metadata['patient_age']}-year-old with" in gold_text(e)


def test_recall_wordings_unseen_in_train(both):
    t, _ = both
    for fact, templates in FACT_TEMPLATES.items():
        facts = [e for e in t.train if e.metadata["kind"] == "fact" and e.metadata["fact"] == fact]
        train_w = {e.metadata["wording"] for e in facts}
        recall_w = {e.metadata["wording"] for e in t.extra["recall"] if e.metadata["fact"] == fact}
        assert len(recall_w) >= 2 and not train_w & recall_w and train_w | recall_w == set(range(len(templates)))
    train_stems = {formulary_stem(e) for e in t.train}
    assert not train_stems & {formulary_stem(e) for e in t.extra["recall"]}


def formulary_stem(e):
    """The question with the drug name blanked: the wording."""
    return e.question.replace(e.metadata["drug"], "{drug}")


def test_background_and_reasoning_metadata(both):
    t, table = both
    for e in all_examples(t):
        bg, rs = e.metadata["background"], e.metadata["reasoning"]
        assert bg and rs and e.explanation == f"{bg} {rs}"
        row = table[e.metadata["drug"]]
        fact = f"{row['dose_mg_per_kg']:g} mg/kg" if e.metadata["fact"] == "dose" else row["contraindication"]
        assert bg.startswith(e.metadata["drug"]) and fact in bg
        assert bg.count(". ") == 0 and rs.count(". ") == 0  # one sentence each
    assert set(ex.metadata["background"] for ex in all_examples(t)) <= set(t.corpus)


def test_load_through_registry():
    from cowest.tasks import available, load_task

    assert "formulary" in available()
    c = cfg(seed=3, facts=BOTH, n_mining=8, n_test=8)
    t = load_task(c)
    assert t.name == "formulary" and len(t.test) == 8
    assert [e.question for e in t.test] == [e.question for e in formulary.load_formulary(c).test]


def test_corpus_statements_in_several_wordings():
    from cowest.config import TaskConfig
    from cowest.tasks import load_task
    from cowest.tasks.formulary import formulary_facts

    cfg = TaskConfig(name="formulary", options={"n_drugs": 5, "statements_per_fact": 4, "n_mining": 5, "n_test": 5})
    t = load_task(cfg)
    table = formulary_facts(cfg)
    assert len(t.corpus) == 5 * 4 + 5  # four statements per drug, plus one handbook line each
    for row in table:
        said = [c for c in t.corpus if c.startswith(row["drug"]) or f" {row['drug']}" in c]
        dose = f"{row['dose_mg_per_kg']:g} mg"
        assert sum(dose in c for c in said) == 4 and len(set(said)) == len(said)
    with pytest.raises(ValueError, match="statements_per_fact"):
        load_task(TaskConfig(name="formulary", options={"statements_per_fact": 99}))


def test_validation_wordings_sit_between_training_and_recall():
    t = load_formulary(cfg(n_drugs=4, wordings_per_fact=3, validation_wordings=1))
    wording = lambda split: {e.metadata["wording"] for e in split}  # noqa: E731
    assert wording([e for e in t.train if e.metadata["kind"] == "fact"]) == {0, 1, 2}
    assert wording(t.extra["sft_valid"]) == {3} and min(wording(t.extra["recall"])) == 4
    assert len(t.extra["sft_valid"]) == 4 and "sft_valid" not in load_formulary(cfg(n_drugs=4)).extra


def test_separate_sft_reasoning_and_mixed_rationales():
    """Mined questions are unseen by SFT; half of SFT's reasoning rationales name another handbook fact."""
    t = load_formulary(cfg(n_drugs=4, n_mining=16, n_sft_reasoning=40, rationale_mix=0.5))
    taught = [e for e in t.train if e.metadata["kind"] == "reasoning_sft"]
    mined = [e for e in t.train if e.metadata["kind"] == "reasoning"]
    assert len(taught) == 40 and len(mined) == 16
    assert all(e.metadata["sft"] is False for e in mined) and all("sft" not in e.metadata for e in taught)
    other = [e for e in taught if "mg/kg" not in e.metadata["background"]]
    assert 10 <= len(other) <= 30 and all("is supplied by" in e.metadata["background"] for e in other)
    assert all(e.metadata["fact_value"] in e.metadata["background"] for e in mined)  # mined rationales untouched
    pairs = lambda split: {(e.metadata["drug"], e.metadata["weight_kg"]) for e in split}  # noqa: E731
    assert not pairs(taught) & pairs(mined) and not (pairs(taught) | pairs(mined)) & pairs(t.test)
    same = load_formulary(cfg(n_drugs=4, n_mining=16))  # without the knobs, SFT learns from the mined questions
    assert all(e.metadata["fact_value"] in e.metadata["background"] for e in same.train)
