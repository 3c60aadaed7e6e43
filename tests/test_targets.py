"""SFT draft targets carry knowledge: explanation, else evidence passages, else retrieved corpus facts, else a template."""

from __future__ import annotations

import logging
from pathlib import Path

from cowest.collab import Prompter
from cowest.collab.targets import evidence_background, knowledge_backgrounds, sft_rows
from cowest.config import TaskConfig
from cowest.tasks import load_task
from cowest.tasks.base import Example
from cowest.tasks.types import MultipleChoice, ShortAnswer

FIX = Path(__file__).parent / "fixtures"
FACTS = [
    "Part KT-1042, the sample probe, carries a 6-month warranty.",
    "Part KT-1042, the sample probe, fits the Orrin A3 analyser.",
    "Part KT-3305, the cuvette rotor, carries a 24-month warranty.",
    "Part KT-3305, the cuvette rotor, fits the Velka 9 analyser.",
    "Part KT-2291, the reagent pump, carries an 18-month warranty.",
    "Part KT-2291, the reagent pump, fits the Orrin A3 analyser.",
    "Part KT-5518, the lamp module, carries a 9-month warranty.",
    "Part KT-5518, the lamp module, fits the Brannock M2 analyser.",
    "The service desk opens at eight.",
]


def mc(i: str, question: str, options: list[str], gold: str, **kw) -> Example:
    return Example(id=i, question=question, options=options, gold=gold, **kw)


def completion(row: dict) -> str:
    return row["completion"][0]["content"]


def test_background_order_explanation_evidence_facts_template(caplog):
    prompter = Prompter(MultipleChoice(), "knowledge")
    examples = [
        mc("own", "Warranty of part KT-3305?", ["6 months", "24 months"], "B", explanation="The rotor lasts."),
        mc("ctx", "Which analyser takes part KT-1042?", ["Orrin A3", "Velka 9"], "A",
           metadata={"context": ["The probe is sold for the Orrin line."]}),
        mc("fact", "How long is part KT-3305 under warranty?", ["6 months", "24 months"], "B"),
        mc("two", "Which has the longer warranty, part KT-1042 or part KT-3305?", ["KT-3305", "KT-1042"], "A"),
        mc("none", "Which colour is the lid?", ["Red", "Blue"], "A"),
    ]
    with caplog.at_level(logging.WARNING, logger="cowest.collab.targets"):
        rows, templated = sft_rows(prompter, examples, FACTS)
    got = [completion(r) for r in rows]
    assert got[0] == "Background: The rotor lasts.\nAnswer: B) 24 months"
    assert got[1] == "Background: The probe is sold for the Orrin line.\nAnswer: A) Orrin A3"
    # The facts of the question's part, the one that answers it first; other parts' warranties score far lower.
    assert got[2] == ("Background: Part KT-3305, the cuvette rotor, carries a 24-month warranty. Part KT-3305, the "
                      "cuvette rotor, fits the Velka 9 analyser.\nAnswer: B) 24 months")
    # The query holds the gold answer too, so a question about two parts gets the answer's facts first.
    assert got[3] == ("Background: Part KT-3305, the cuvette rotor, carries a 24-month warranty. Part KT-3305, the "
                      "cuvette rotor, fits the Velka 9 analyser.\nAnswer: A) KT-3305")
    assert got[4].startswith("Background: The relevant fact is that the answer to this question is A) Red.")
    assert templated == 1
    assert "SFT: 1 of 5 targets have no explanation, evidence or matching fact" in caplog.text


def test_without_facts_every_row_without_knowledge_is_templated_and_counted(caplog):
    prompter = Prompter(MultipleChoice(), "cot")
    examples = [mc(str(i), f"Q{i}?", ["a", "b"], "A") for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="cowest.collab.targets"):
        rows, templated = sft_rows(prompter, examples)
    assert templated == 3 and "3 of 3 targets" in caplog.text
    assert all("The relevant fact is" in completion(r) for r in rows)


def test_direct_drafts_have_no_background_and_no_warning(caplog):
    prompter = Prompter(MultipleChoice(), "direct")
    examples = [mc("1", "Warranty of part KT-3305?", ["6 months", "24 months"], "B")]
    with caplog.at_level(logging.WARNING, logger="cowest.collab.targets"):
        rows, templated = sft_rows(prompter, examples, FACTS)
    assert completion(rows[0]) == "Answer: B) 24 months" and templated == 0 and not caplog.text


def test_ifqa_evidence_passages_become_the_background():
    data = load_task(TaskConfig(name="ifqa", path=str(FIX / "ifqa.jsonl"), test_fraction=0))
    by_id = {e.id: e for e in data.train}
    prompter = Prompter(ShortAnswer(), "knowledge")
    rows, templated = sft_rows(prompter, list(by_id.values()))
    targets = {e.id: completion(r) for e, r in zip(by_id.values(), rows)}
    assert targets["0"] == ("Background: The Eiffel Tower is a wrought-iron lattice tower in Paris, France. London is "
                            "the capital of the United Kingdom.\nAnswer: United Kingdom")
    assert targets["3"].startswith("Background: Hamlet is a tragedy written by William Shakespeare.")  # one string
    assert targets["2"].startswith("Background: The relevant fact is")  # an empty context list
    assert templated == 1


def test_long_evidence_is_cut_at_a_sentence_end():
    long = " ".join(f"Sentence {i} has five words." for i in range(30))
    e = Example(id="x", question="q", gold="a", metadata={"context": [long]})
    text = evidence_background(e, max_words=12)
    assert text == "Sentence 0 has five words. Sentence 1 has five words."
    one = Example(id="y", question="q", gold="a", metadata={"context": "A single very long sentence " * 20})
    assert evidence_background(one, max_words=5)  # the first sentence is kept whatever its length


def test_loader_background_metadata_is_kept_and_not_searched():
    prompter = Prompter(MultipleChoice(), "knowledge")
    e = mc("f", "Warranty of part KT-3305?", ["6 months", "24 months"], "B", metadata={"background": "Own fact."})
    assert knowledge_backgrounds(prompter, [e], FACTS) == [None]
    assert prompter.draft_target(e, "ignored") == "Background: Own fact.\nAnswer: B) 24 months"


def test_a_second_fact_joins_the_background_only_while_it_stays_one_short_line():
    from cowest.collab.targets import EVIDENCE_WORDS, fact_backgrounds

    prompter = Prompter(ShortAnswer(), "knowledge")
    short = ["The Kestrel Line fare from Amberly to Dunmore is 14 crowns.",
             "The Kestrel Line journey from Amberly to Dunmore takes 45 minutes."]
    q = Example(id="q", question="What does a Kestrel Line ticket from Amberly to Dunmore cost?", gold="14 crowns")
    assert fact_backgrounds(prompter, [q], short) == [" ".join(short)]  # two short facts of the same route
    long_ = [f"Clause {i} of the Kestrel Line tariff: tickets from Amberly to Dunmore " + "cost more on holidays " * 8
             for i in (1, 2)]
    (bg,) = fact_backgrounds(prompter, [q], long_)
    assert bg in long_ and len(long_[0].split()) * 2 > EVIDENCE_WORDS  # the best long clause alone


def test_corpus_rows_repeat_each_fact_in_fresh_orders_packed_into_short_rows():
    from cowest.collab.targets import EVIDENCE_WORDS, corpus_rows

    prompter = Prompter(ShortAnswer(), "knowledge")
    facts = [f"Part KT-{i} carries a {i + 3}-month warranty." for i in range(30)] + ["A long clause" + " word" * 70]
    rows = corpus_rows(prompter, facts, repeats=3, seed=0)
    recited = [r["completion"][0]["content"].split("\n") for r in rows]
    assert sorted(f for row in recited for f in row) == sorted(facts * 3)  # every fact exactly `repeats` times
    assert all(len(row) == 1 or len(" ".join(row).split()) <= EVIDENCE_WORDS for row in recited)
    assert [facts[-1]] in recited  # a long fact alone in its row
    assert len(rows) < len(facts) * 3  # packed: fewer rows than facts
    first = [f for r in corpus_rows(prompter, facts, 1, seed=0) for f in r["completion"][0]["content"].split("\n")]
    again = [f for r in corpus_rows(prompter, facts, 1, seed=0) for f in r["completion"][0]["content"].split("\n")]
    other = [f for r in corpus_rows(prompter, facts, 1, seed=1) for f in r["completion"][0]["content"].split("\n")]
    assert first == again and first != other  # seeded


def test_a_runner_up_about_another_entity_never_joins_the_background():
    from cowest.collab.targets import fact_backgrounds

    prompter = Prompter(MultipleChoice(), "knowledge")
    facts = ["Pylulotrel has a maximum daily dose of 2 mg/kg.", "Zorexotarone has a maximum daily dose of 8.5 mg/kg.",
             "Gavexomivol has a maximum daily dose of 7 mg/kg.", "Kalulotarone has a maximum daily dose of 3 mg/kg.",
             "Rhenirazine has a maximum daily dose of 9.5 mg/kg."]
    q = Example(id="q", question="A 108 kg patient is to receive Pylulotrel. What is the highest daily dose?",
                options=["216 mg", "324 mg"], gold="A")
    assert fact_backgrounds(prompter, [q], facts) == [facts[0]]  # not another drug's dose besides it
    rail = ["On the Kestrel Line, a single ticket from Drovensby to Nethercaw costs 79 crowns.",
            "On the Kestrel Line, a single ticket from Fennrick to Nethercaw costs 23 crowns.",
            "On the Kestrel Line, the journey from Drovensby to Nethercaw takes 105 minutes.",
            "On the Heron Line, the journey from Fennrick to Umberfold takes 80 minutes.",
            "On the Heron Line, a single ticket from Umberfold to Greythorn costs 12 crowns."]
    r = Example(id="r", question="How much does a single ticket from Drovensby to Nethercaw on the Kestrel Line cost?",
                gold="79 crowns")
    assert fact_backgrounds(Prompter(ShortAnswer(), "knowledge"), [r], rail) == [f"{rail[0]} {rail[2]}"]  # same route
