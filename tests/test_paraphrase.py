"""Fact rewordings for SFT: the strong model's lines are kept only when they keep every number and name."""

from __future__ import annotations

from fakes import ScriptedBackend

from cowest.collab.paraphrase import anchors, keeps, paraphrase

FACT = "Pylulotrel has a maximum daily dose of 2 mg/kg."


def test_a_rewording_must_keep_the_facts_numbers_and_names():
    assert anchors(FACT) == {"2", "Pylulotrel"}
    assert keeps("The maximum daily dose of Pylulotrel is 2 mg/kg.", FACT)
    assert not keeps("Pylulotrel may be given up to 3 mg/kg a day.", FACT)  # a number changed
    assert not keeps("It has a maximum daily dose of 2 mg/kg.", FACT)  # the name lost
    rail = "On the Kestrel Line, a single ticket from Drovensby to Nethercaw costs 79 crowns."
    assert anchors(rail) == {"79", "Kestrel", "Line", "Drovensby", "Nethercaw"}  # not the sentence's "On"


def test_paraphrase_keeps_valid_distinct_samples_and_counts_the_rest():
    lines = ["1. The maximum daily dose of Pylulotrel is 2 mg/kg.", "Pylulotrel: no more than 2 mg/kg per day.",
             "Pylulotrel:  no more than 2 mg/kg per day.",  # a repeat
             "Pylulotrel may be given up to 3 mg/kg a day.",  # a changed number
             FACT]  # the line itself

    def strong(conv, i, sampling):
        assert conv[-1]["content"].endswith("Fact: " + FACT) and sampling.temperature > 0
        return lines[sampling.seed]  # one rewording per request, a new seed for each

    backend = ScriptedBackend(strong)
    (row,) = paraphrase(backend, [FACT], n=5)
    assert row["paraphrases"] == ["The maximum daily dose of Pylulotrel is 2 mg/kg.",
                                  "Pylulotrel: no more than 2 mg/kg per day."]
    assert row["fact"] == FACT and row["dropped"] == 3 and len(backend.requests) == 5
