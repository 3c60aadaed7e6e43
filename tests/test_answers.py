"""Answer extraction and scoring of the three task types."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowest.tasks.base import LETTERS, Example
from cowest.tasks.types import TYPES, Classification, MultipleChoice, ShortAnswer, get_type

MC = MultipleChoice()
CLS = Classification()
SA = ShortAnswer()

MED = Example(id="m1", question="Kidney change?", options=["Hyperplasia", "Hyperophy", "Atrophy", "Dyplasia"], gold="C")
PROSOCIAL = ["casual", "possibly needs caution", "probably needs caution", "needs caution", "needs intervention"]
ETHICS = Example(id="p1", question="I keep reading my roommate's diary.", options=PROSOCIAL, gold="needs caution")
IFQA = Example(id="q1", question="If ...?", gold="United Kingdom", answers=["United Kingdom", "UK", "England"])


# ---------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    "text",
    [
        "Final answer: C",
        "Final Answer: (C)",
        "Answer: C.",
        "**Answer:** C",
        "**Final Answer:** **C**",
        "the answer is C",
        "The correct answer is option C.",
        "(C)",
        "C)",
        "C",
        "c",
        " c. ",
        "Atrophy",
        "atrophy.",
        "c) Atrophy",
        "C. Atrophy",
        "ANSWER: c",
        "final answer - C",
        "Answer:\n\nC",
        "\\boxed{C}",
        "So the answer is: **C) Atrophy**.",
        "Let me think. A is wrong, B is wrong.\nFinal answer: C",
        "Answer: B\nOn reflection the first answer was wrong.\nFinal answer: C",
        "Answer: B\nAnswer: C",
        "Background: obstruction raises pressure.\nReasoning: pressure atrophies tubules.\nAnswer: C) Atrophy",
        "Answer: I think it's C",
        "Answer: The correct option is C",
        "Answer: C because back-pressure destroys tubules",
        "Answer: Atrophy, since the tubules shrink",
        "I would choose option (c) here.",
        "The best choice is C",
        "Final answer: c) atrophy",
        "After weighing it all, my pick is (C).",
        "FINAL ANSWER: (c).",
        "Answer - C",
        "final_answer: C",
        "I choose C.",
        "C is correct.",
        "Final answer：C",
    ],
)
def test_mc_extracts_c(text):
    assert MC.extract(text, MED) == "C"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n ",
        "I am not sure.",
        "E",
        "Final answer: E",
        "The answer depends on the patient.",
        "A good question; I cannot decide between the options.",
        "Answer: none of these",
    ],
)
def test_mc_no_answer(text):
    assert MC.extract(text, MED) is None


def test_mc_echoed_options_are_not_an_answer():
    echo = "Kidney change?\nA. Hyperplasia\nB. Hyperophy\nC. Atrophy\nD. Dyplasia"
    assert MC.extract(echo, MED) is None
    assert MC.extract(echo + "\nAnswer: C", MED) == "C"


def test_mc_prefers_last_final_answer_over_plain_answer():
    assert MC.extract("Final answer: B\nAnswer: D", MED) == "B"
    assert MC.extract("Final answer: A\nwait.\nFinal answer: D", MED) == "D"


def test_mc_article_and_pronoun_are_not_letters():
    ex = Example(id="x", question="q", options=[f"opt {i}" for i in range(10)], gold="I")
    assert MC.extract("Answer: I think it is C", ex) == "C"
    assert MC.extract("Answer: A patient with this would pick (D)", ex) == "D"
    assert MC.extract("Answer: A because ...", ex) == "A"
    assert MC.extract("Final answer: I", ex) == "I"


def test_mc_only_letters_in_range():
    two = Example(id="y", question="Louder or quieter?", options=["louder", "quieter"], gold="A")
    assert MC.extract("Final answer: C", two) is None
    assert MC.extract("Final answer: B", two) == "B"
    assert MC.extract("Quieter", two) == "B"


def test_mc_yes_no_options():
    yn = Example(id="z", question="Is this acceptable?", options=["Yes", "No"], gold="B")
    assert MC.extract("No.", yn) == "B"
    assert MC.extract("Final answer: No, because it harms others.", yn) == "B"
    assert MC.extract("Final answer: A", yn) == "A"


def test_mc_option_text_that_reads_like_a_statement():
    ex = Example(id="w", question="q", options=["final answer is B", "B"], gold="A")
    assert MC.extract("final answer is B", ex) == "A"


def test_mc_score_metrics_and_format():
    assert MC.score("C", MED) == 1.0 and MC.score("c", MED) == 1.0
    assert MC.score("B", MED) == 0.0 and MC.score(None, MED) == 0.0
    assert MC.format_options(MED) == "A. Hyperplasia\nB. Hyperophy\nC. Atrophy\nD. Dyplasia"
    assert MC.format_answer(MED) == "C) Atrophy"
    assert MC.extract(f"Answer: {MC.format_answer(MED)}", MED) == "C"
    exs = [MED.model_copy(update={"gold": g}) for g in "AABC"]
    m = MC.metrics(["A", "B", None, "C"], exs)
    assert list(m) == ["accuracy", "macro_f1", "answered"]
    assert m["accuracy"] == 0.5 and m["answered"] == 0.75
    # A: tp 1, pred 1, gold 2 -> 2/3; B: tp 0 -> 0; C: 2/2 -> 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    with pytest.raises(ValueError):
        MC.metrics(["A"], exs)


def test_types_registry():
    assert set(TYPES) == {"multiple_choice", "short_answer", "classification"}
    assert isinstance(get_type("multiple_choice"), MultipleChoice)
    assert all(t.name == k and t.answer_hint for k, t in TYPES.items())
    with pytest.raises(ValueError, match="unknown task type"):
        get_type("essay")


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Final answer: needs caution", "needs caution"),
        ("Final answer: __needs_caution__", "needs caution"),
        ("Final answer: Needs-Caution.", "needs caution"),
        ("Final answer: probably_needs_caution", "probably needs caution"),
        ("Label: possibly needs caution", "possibly needs caution"),
        ("It is not casual at all.\nFinal answer: needs intervention", "needs intervention"),
        ("Answer: casual\nFinal answer: needs caution", "needs caution"),
        ("This needs caution.", "needs caution"),
        ("casual", "casual"),
        ("**Answer:** __casual__", "casual"),
    ],
)
def test_classification_extract(text, label):
    assert CLS.extract(text, ETHICS) == label


def test_classification_none_and_scoring():
    assert CLS.extract("I cannot tell.", ETHICS) is None
    assert CLS.extract("", ETHICS) is None
    assert CLS.score("Needs Caution", ETHICS) == 1.0 and CLS.score("casual", ETHICS) == 0.0
    assert CLS.score(None, ETHICS) == 0.0
    assert CLS.format_options(ETHICS).startswith("Labels: casual; possibly needs caution")
    assert CLS.format_answer(ETHICS) == "needs caution"
    exs = [ETHICS.model_copy(update={"gold": g}) for g in ["casual", "casual", "needs caution"]]
    m = CLS.metrics(["casual", None, "needs caution"], exs)
    assert list(m) == ["accuracy", "macro_f1", "answered"]
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)


# ---------------------------------------------------------------- short answer


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Reasoning: London is in the UK.\nFinal answer: United Kingdom", "United Kingdom"),
        ("Final answer: **the UK**.", "the UK"),
        ("Answer: England\nsome trailing note", "England"),
        ("Answer: France\nFinal answer: UK", "UK"),
        ("Final answer:\n  Britain", "Britain"),
        ("The answer is UK", "UK"),
        ("**United Kingdom**", "United Kingdom"),
        ('"UK".', "UK"),
        ("\\boxed{UK}", "UK"),
    ],
)
def test_short_answer_extract(text, answer):
    assert SA.extract(text, IFQA) == answer


# Replies of the strong model (Qwen2.5-Coder-1.5B on llama.cpp) to the strong-alone and refinement prompts of
# short-answer questions, verbatim; the last ones were cut by an 80- or 24-token cap.
REAL_ANSWERED = [
    ("The Eiffel Tower would be in France. Final answer: France.", "France"),
    ("To convert degrees Celsius to Fahrenheit, you can use the formula: (Celsius * 9/5) + 32. For 10 degrees "
     "Celsius, the calculation would be: (10 * 9/5) + 32 = 50 + 32 = 82 degrees Fahrenheit. Final answer: 82.", "82"),
    ("The KT-3305 rotor has the longest warranty of 24 months. Final answer: 24 months", "24 months"),
    ("The draft is incorrect. The temperature at which water freezes is 0 degrees Celsius, not 10 degrees Celsius. "
     "Therefore, the correct answer is:\nFinal answer: 0 degrees Fahrenheit", "0 degrees Fahrenheit"),
    ("The draft is incorrect. The tower does not stand where it was built. The correct answer is France.", "France"),
    ("Final answer: Spanish", "Spanish"),  # the reply to the re-ask
]
REAL_UNANSWERED = [
    "If Shakespeare had been born in Spain, he would most likely have written in Spanish. Shakespeare was born in "
    "Stratford-upon-Avon, England, but he spent much of his life in Stratford and London, England. He wrote in "
    "English, which is the official language of England and the United Kingdom.",
    "If the Amazon river flowed into the Pacific, it would reach the Pacific Ocean. The Amazon is the largest river "
    "in the world, and its flow into the Pacific is a significant event in global geography.",
    "The draft is correct. Shakespeare would most likely have written in Spanish if he had been born in Spain.",
    "The draft is incorrect. Paris is the capital of France, not Italy.",
    "To convert degrees Celsius to Fahrenheit, you can use the formula: (Celsius * 9/5) + ",
    "If Shakespeare had been born in Spain, he would most likely have written in Spanish. Shakespeare was born in "
    "Stratford-up",
    "I think about it.\n\nUnited Kingdom\n",
]


@pytest.mark.parametrize(("text", "answer"), REAL_ANSWERED)
def test_short_answer_reads_real_final_answer_lines(text, answer):
    assert SA.extract(text, IFQA) == answer


@pytest.mark.parametrize("text", REAL_UNANSWERED)
def test_short_answer_without_an_answer_statement_is_unanswered(text):
    # Read as an answer, the last sentence would be scored as one and the pipeline would not re-ask.
    assert SA.extract(text, IFQA) is None


def test_short_answer_scoring():
    assert SA.extract("", IFQA) is None and SA.extract("  \n", IFQA) is None
    assert SA.score("the United Kingdom", IFQA) == 1.0
    assert SA.score("uk", IFQA) == 1.0
    assert SA.score("the kingdom", IFQA) == pytest.approx(2 / 3)  # vs "united kingdom": p=1, r=1/2
    assert SA.score(None, IFQA) == 0.0
    only_gold = Example(id="g", question="q", gold="Paris")
    assert SA.score("paris.", only_gold) == 1.0
    m = SA.metrics(["UK", "kingdom", None], [IFQA, IFQA, IFQA])
    assert list(m) == ["em", "f1", "answered"]
    assert m["em"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["answered"] == pytest.approx(2 / 3)


def test_short_answer_numbers_and_units():
    # Measured on a user's domain: "21 points" scored EM 0 against the gold "21".
    points = Example(id="n", question="How many points?", gold="21")
    assert SA.extract("The team scored 21 points. Final answer: 21 points.", points) == "21 points"
    assert SA.metrics(["21 points", "210", "21 or 22", "21.0"], [points] * 4)["em"] == pytest.approx(2 / 4)
    months = Example(id="w", question="Warranty?", gold="18 months", answers=["18 months"])
    assert SA.score("18-month", months) == 1.0 and SA.score("18 Months", months) == 1.0
    assert SA.score("18 weeks", months) < 1.0


# ---------------------------------------------------------------- placeholders

TF = Example(id="tf", question="Is the statement right?", options=["Correct", "Incorrect"], gold="A")
COUNT = Example(id="n", question="How many tumours?", options=["none", "one", "several"], gold="one")


@pytest.mark.parametrize(
    "text",
    [
        "Final answer: <a short answer>",
        "Final Answer: <A short answer>.",
        "**Final answer:** <a short answer>",
        "Final answer: a short answer",
        "Final answer: short answer",
        '"a short answer"',
        "The answer is <a short answer>.",
        "Answer: <answer>",
        "Final answer: [answer]",
        "Final answer: <your answer>",
        "Final answer: <the letter of the correct option>",
        "Final answer: <one label from the list>",
        "Final answer: ?!",
        "Final answer: ...",
        "Final answer: <a short answer>\nUK",  # the bare line after it is prose, not a statement
    ],
)
def test_short_answer_placeholder_is_unanswered(text):
    # Measured: a strong-model reply that was literally the prompt's placeholder was counted as answered.
    assert SA.extract(text, IFQA) is None


@pytest.mark.parametrize(
    "text",
    [
        "Final answer: <the letter of the correct option>",
        "Answer: the letter of the correct option",
        "<the letter of the correct option>",
        "Final answer: <answer>",
        "Final answer: <a short answer>",
    ],
)
def test_mc_placeholder_is_unanswered(text):
    # "correct" is an option's text: read as a mention, the placeholder chose A.
    assert MC.extract(text, TF) is None
    assert MC.extract(text, MED) is None


@pytest.mark.parametrize(
    "text",
    [
        "Final answer: <one label from the list>",
        "Final answer: one label from the list",
        "<one label from the list>",
        "Label: <answer>",
        "Final answer: <a short answer>",
    ],
)
def test_classification_placeholder_is_unanswered(text):
    # "one" is a label: read as a mention, the placeholder chose it.
    assert CLS.extract(text, COUNT) is None
    assert CLS.extract(text, ETHICS) is None


def test_every_answer_hint_is_a_placeholder_for_every_type():
    examples = {"multiple_choice": TF, "classification": COUNT, "short_answer": IFQA}
    for tt in TYPES.values():
        for hint in (t.answer_hint for t in TYPES.values()):
            for text in (f"Final answer: <{hint}>", f"Answer: {hint}", f"<{hint}>"):
                assert tt.extract(text, examples[tt.name]) is None, (tt.name, text)


def test_placeholder_does_not_hide_a_real_answer():
    assert SA.extract("Final answer: UK\nFinal answer: <a short answer>", IFQA) == "UK"
    echo = 'Think, then end with "Final answer: <a short answer>".\nLondon is in it.\nFinal answer: UK'
    assert SA.extract(echo, IFQA) == "UK"
    assert SA.score(SA.extract("Final answer: <UK>", IFQA), IFQA) == 1.0  # a real answer in the template's brackets
    assert MC.extract("Final answer: <C>", MED) == "C"
    assert MC.extract("Final answer: Correct", TF) == "A"
    assert CLS.extract("Final answer: <one>", COUNT) == "one"
    # A label that reads like a placeholder is still a label.
    dialogue = Example(id="d", question="Act?", options=["question", "answer"], gold="answer")
    assert CLS.extract("Label: <answer>", dialogue) == "answer"


def test_metrics_count_placeholders_as_unanswered():
    m = SA.metrics(["<a short answer>", "UK", "", "a short answer"], [IFQA] * 4)
    assert m["answered"] == pytest.approx(1 / 4) and m["em"] == pytest.approx(1 / 4)
    assert SA.score("<a short answer>", IFQA) == 0.0
    assert MC.metrics(["<the letter of the correct option>", "A"], [TF, TF])["answered"] == 0.5
    assert CLS.metrics(["<one label from the list>", "one"], [COUNT, COUNT])["answered"] == 0.5


# ---------------------------------------------------------------- properties

_KEYWORDS = ("answer", "option", "choice", "letter", "label", "boxed", "class", "category")
_word = st.text(alphabet=string.ascii_letters + string.digits, min_size=2, max_size=8)
_option = (
    st.lists(_word, min_size=1, max_size=4)
    .map(" ".join)
    .filter(lambda s: not any(k in s.lower() for k in _KEYWORDS))
)


def _key(s: str) -> str:
    return " ".join(s.lower().split())


@st.composite
def mc_case(draw):
    n = draw(st.integers(2, 10))
    options = draw(st.lists(_option, min_size=n, max_size=n, unique_by=_key))
    i = draw(st.integers(0, n - 1))
    letter = draw(st.sampled_from([LETTERS[i], LETTERS[i].lower()]))
    return Example(id="h", question="q", options=options, gold=LETTERS[i]), LETTERS[i], letter


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.lists(_option, max_size=6))
def test_extract_never_crashes(text, options):
    ex = Example(id="r", question="q", options=options or None, gold="A")
    got = MC.extract(text, ex)
    assert got is None or got in LETTERS[: len(options) or 4]
    labels = Example(id="r", question="q", options=options or ["x"], gold="x")
    assert CLS.extract(text, labels) in (labels.options + [None])
    sa = SA.extract(text, IFQA)
    assert sa is None or isinstance(sa, str)
    assert 0.0 <= SA.score(sa, IFQA) <= 1.0


@settings(max_examples=150, deadline=None)
@given(mc_case(), st.text(max_size=80))
def test_mc_round_trips(case, prefix):
    ex, gold, label = case
    assert MC.extract(f"{prefix}\nFinal answer: {label}", ex) == gold
    assert MC.extract(f"({label})", ex) == gold
    assert MC.extract(f"Answer: {label}.", ex) == gold
    text = ex.options[LETTERS.index(gold)]
    assert MC.extract(text, ex) == gold
    assert MC.extract(f"Final answer: {text}", ex) == gold
    assert MC.extract(f"Answer: {MC.format_answer(ex)}", ex) == gold


@settings(max_examples=100, deadline=None)
@given(st.lists(_option, min_size=2, max_size=8, unique_by=lambda s: _key(s)), st.data())
def test_classification_round_trips(labels, data):
    label = data.draw(st.sampled_from(labels))
    ex = Example(id="c", question="q", options=labels, gold=label)
    variant = data.draw(st.sampled_from([label, label.upper(), label.replace(" ", "_"), f"__{label}__"]))
    assert CLS.extract(f"Final answer: {variant}", ex) == label
    assert CLS.score(CLS.extract(f"Answer: {variant}.", ex), ex) == 1.0


@pytest.mark.parametrize("text", ["answer is " * 5000, "Final answer:" * 4000, "a" + " " * 50000 + "b", "(" * 50000])
def test_extraction_is_fast_on_degenerate_output(text):
    import time

    start = time.perf_counter()
    for tt, ex in ((MC, MED), (CLS, ETHICS), (SA, IFQA)):
        tt.extract(text, ex)
    assert time.perf_counter() - start < 2.0
