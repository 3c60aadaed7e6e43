"""Metrics and bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowest.tasks.metrics import (
    best_over,
    bootstrap_ci,
    bootstrap_metric,
    exact_match,
    macro_f1,
    normalize_answer,
    paired_comparison,
    parse_quantity,
    squad_normalize,
    token_f1,
)
from cowest.tasks.paired_tests import MCNEMAR, N_PERM, SIGN_FLIP, mcnemar_exact, paired_test, sign_flip


def test_macro_f1_by_hand():
    golds = ["A", "A", "A", "B", "B", "C"]
    preds = ["A", "A", "B", "B", None, "A"]
    # A: tp 2, fp 1, fn 1 -> 4/6; B: tp 1, fp 1, fn 1 -> 2/4; C: tp 0 -> 0
    assert macro_f1(preds, golds) == pytest.approx((4 / 6 + 1 / 2 + 0) / 3)
    assert macro_f1(golds, golds) == 1.0
    # A class that only appears in predictions is not averaged, it just makes those predictions wrong.
    assert macro_f1(["D", "B"], ["A", "B"]) == pytest.approx((0 + 1) / 2)
    with pytest.raises(ValueError):
        macro_f1(["A"], ["A", "B"])


def test_squad_normalize_and_em():
    assert squad_normalize("The  Quick, brown FOX!") == "quick brown fox"
    assert squad_normalize("an apple a day") == "apple day"
    assert exact_match("The United Kingdom.", "united kingdom") == 1.0
    assert exact_match("United Kingdom of GB", "United Kingdom") == 0.0
    assert exact_match(None, "x") == 0.0


def test_token_f1_examples():
    assert token_f1("united kingdom", "the United Kingdom") == 1.0
    # pred "the kingdom of britain" -> [kingdom, of, britain]; gold [united, kingdom]; common 1
    p, r = 1 / 3, 1 / 2
    assert token_f1("the kingdom of britain", "United Kingdom") == pytest.approx(2 * p * r / (p + r))
    assert token_f1("paris", "london") == 0.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing
    assert token_f1("the", "paris") == 0.0
    assert token_f1(None, "paris") == 0.0
    assert best_over(exact_match, "UK", ["United Kingdom", "UK"]) == 1.0
    assert best_over(token_f1, "x", []) == 0.0


# ---------------------------------------------------------------- short-answer numbers and units


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("1,250", "1250"),
        ("1 250", "1250"),
        ("1\u2009250", "1250"),  # thin space
        ("1\u00a0250 000", "1250 000"),  # one style per number: the plain space starts a new number
        ("12,345,678.50", "12345678.5"),
        ("21.0", "21"),
        ("21.00 points", "21 points"),
        ("+21", "21"),
        ("-21", "-21"),
        ("\u221221", "-21"),
        ("3,5", "3.5"),  # a decimal comma, not a thousands separator
        ("0,250", "0.25"),  # a group of three after a leading 0 is decimal
        (".5", "0.5"),
        ("1,2,3", "1 2 3"),
        ("21-22", "21 22"),
        ("007", "007"),
        ("The  Quick, brown FOX!", "quick brown fox"),
    ],
)
def test_normalize_answer_numbers(text, normalised):
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("1,250", "1250"),
        ("1 250", "1,250"),
        ("21.0", "21"),
        ("+21", "21"),
        ("3,5", "3.5"),
        ("21 points", "21"),
        ("**21 points**.", "21"),
        ("14 crowns", "14"),
        ("18 months", "18"),
        ("$40", "40"),
        ("40 USD", "40"),
        ("3.5 mg/kg", "3.5"),
        ("3.50 mg / kg", "3.5 mg/kg"),
        ("18-month", "18 months"),
        ("14 Crowns", "14 crowns"),
        ("2 centuries", "2 century"),
        ("6 inches", "6 inch"),
        ("40 dollars", "$40"),
        ("40 percent", "40%"),
        ("1,250 points", "1250"),
        ("40 Million", "40 million"),
    ],
)
def test_exact_match_numbers_and_units(prediction, gold):
    assert exact_match(prediction, gold) == 1.0
    assert token_f1(prediction, gold) == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("21 points", "210"),  # a different number, whatever the unit
        ("21 or 22", "21"),  # two numbers: not a quantity
        ("21 or so", "21"),  # a qualifier: not a quantity
        ("about 21", "21"),
        ("3,5", "35"),
        ("35", "3,5"),
        ("21.0", "210"),
        ("-21", "21"),
        ("40 million", "40"),  # a magnitude word changes the value
        ("40k", "40"),
        ("18", "18 months"),  # the gold's unit is part of the answer
        ("18 weeks", "18 months"),
        ("5a", "5"),
        ("1,2,3", "123"),
    ],
)
def test_exact_match_number_negatives(prediction, gold):
    assert exact_match(prediction, gold) == 0.0


def test_token_f1_on_numbers():
    assert token_f1("21 or 22", "21") == pytest.approx(0.5)  # partial credit as usual: p=1/3, r=1
    assert token_f1("21 points", "210") == 0.0
    assert token_f1("3,5", "35") == 0.0
    assert token_f1("40 million", "40") == pytest.approx(2 / 3)
    assert best_over(exact_match, "21 points", ["twenty-one", "21"]) == 1.0


def test_token_f1_gives_a_wrong_number_nothing_for_its_unit():
    assert token_f1("1024 minutes", "1016 minutes") == 0.0
    assert token_f1("73 crowns", "684") == 0.0
    assert token_f1("$90", "$684") == 0.0
    assert token_f1("1,016 minutes in all", "1016 minutes") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert token_f1("1016 minutes", "1016") == 1.0
    assert token_f1("the kingdom", "united kingdom") == pytest.approx(2 / 3)  # not a quantity: overlap as usual


def test_parse_quantity():
    assert parse_quantity("21 points") == ("21", ("point",))
    assert parse_quantity("$1,250.00") == ("1250", ("dollar",))
    assert parse_quantity("18-Month") == ("18", ("month",))
    assert parse_quantity("3.5 mg/kg") == ("3.5", ("mg/kg",))
    assert parse_quantity("21") == ("21", ())
    for text in ["21 or 22", "21-22", "about 21", "twenty-one", "21 points in the first half", "", "points"]:
        assert parse_quantity(text) is None


_ANSWERISH = st.text(alphabet="0123456789 ,.+-$%abmpst", max_size=12)


@settings(max_examples=300, deadline=None)
@given(_ANSWERISH, _ANSWERISH)
def test_token_f1_is_one_whenever_exact_match_is(prediction, gold):
    em, f1 = exact_match(prediction, gold), token_f1(prediction, gold)
    assert em in (0.0, 1.0) and 0.0 <= f1 <= 1.0
    assert f1 >= em


def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 2, 50).astype(float)
    large = rng.integers(0, 2, 2000).astype(float)
    m1, lo1, hi1 = bootstrap_ci(small, n_boot=500, seed=0)
    m2, lo2, hi2 = bootstrap_ci(large, n_boot=500, seed=0)
    assert m1 == pytest.approx(small.mean()) and lo1 <= m1 <= hi1
    assert lo2 <= m2 <= hi2
    assert hi2 - lo2 < (hi1 - lo1) / 3  # width ~ 1/sqrt(n)
    assert bootstrap_ci(small, n_boot=500, seed=0) == (m1, lo1, hi1)  # deterministic
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))
    m, lo, hi = bootstrap_ci(small, n_boot=500, confidence=0.5)
    assert hi - lo < hi1 - lo1
    with pytest.raises(ValueError):
        bootstrap_ci(small, confidence=1.5)


def test_bootstrap_ci_chunking_is_invisible(monkeypatch):
    import cowest.tasks.metrics as metrics

    values = np.linspace(0, 1, 37)
    whole = bootstrap_ci(values, n_boot=300, seed=3)
    monkeypatch.setattr(metrics, "CHUNK_ELEMS", 100)  # forces many small chunks
    assert bootstrap_ci(values, n_boot=300, seed=3) == pytest.approx(whole)


def test_bootstrap_metric_macro_f1_fast_path_matches_generic():
    rng = np.random.default_rng(2)
    golds = list(rng.choice(list("ABCD"), 120))
    preds = [g if rng.random() < 0.6 else (None if rng.random() < 0.2 else str(rng.choice(list("ABCDE")))) for g in golds]
    fast = bootstrap_metric(macro_f1, preds, golds, n_boot=200, seed=5)
    slow = bootstrap_metric(lambda p, g: macro_f1(p, g), preds, golds, n_boot=200, seed=5)
    assert fast == pytest.approx(slow)
    value, lo, hi = fast
    assert value == pytest.approx(macro_f1(preds, golds)) and lo <= value <= hi


def test_bootstrap_metric_generic_objects():
    # Any sequences work: here golds are dicts, as when a caller passes examples.
    golds = [{"gold": i % 2} for i in range(40)]
    preds = [i % 2 if i < 30 else 1 - i % 2 for i in range(40)]
    acc = lambda p, g: float(np.mean([a == b["gold"] for a, b in zip(p, g)]))  # noqa: E731
    value, lo, hi = bootstrap_metric(acc, preds, golds, n_boot=200)
    assert value == 0.75 and lo <= 0.75 <= hi < 1.0
    with pytest.raises(ValueError):
        bootstrap_metric(acc, preds[:3], golds)


def test_paired_comparison_cis_are_bootstrap_and_p_values_a_paired_test():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2, 400).astype(float)
    better = np.where(rng.random(400) < 0.3, 1.0, b)  # a = b plus extra successes
    res = paired_comparison(better, b, n_boot=1000, seed=0)
    assert set(res) == {"diff", "lo", "hi", "p_value", "test"} and res["test"] == MCNEMAR
    assert res["diff"] == pytest.approx(better.mean() - b.mean())
    assert res["lo"] <= res["diff"] <= res["hi"] and res["lo"] > 0
    assert res["p_value"] < 1e-6
    # Reversed, "a beats b" has no support; identical systems give p = 1 (no discordant question).
    assert paired_comparison(b, better, n_boot=1000)["p_value"] == 1.0
    assert paired_comparison(b, b, n_boot=200)["p_value"] == 1.0
    assert paired_comparison(better, b, n_boot=1000, seed=0) == res
    f1 = paired_comparison((better + b) / 2, b, n_boot=200)  # half points: the sign-flip test
    assert f1["test"] == SIGN_FLIP and f1["p_value"] < 0.001
    with pytest.raises(ValueError):
        paired_comparison([1.0], [1.0, 0.0])


def test_exact_mcnemar_by_hand():
    # 5 discordant questions, 4 won by a: P(Bin(5, 1/2) >= 4) = (5 + 1) / 32
    a, b = [1, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 1, 1, 0]
    assert mcnemar_exact(a, b) == pytest.approx(6 / 32)
    assert mcnemar_exact(b, a) == pytest.approx(31 / 32)  # P(Bin(5, 1/2) >= 1)
    assert paired_test(a, b) == (pytest.approx(6 / 32), MCNEMAR)


def test_sign_flip_is_exact_for_few_differences_and_drawn_for_many():
    # differences 0.5, 0.25, -0.125 (and a zero): of the 8 sign patterns, sums >= 0.625 are 0.625 and 0.875
    a, b = [0.5, 0.75, 0.0, 0.3], [0.0, 0.5, 0.125, 0.3]
    assert sign_flip(a, b) == pytest.approx(2 / 8)
    assert paired_test(a, b) == (pytest.approx(2 / 8), SIGN_FLIP)
    assert sign_flip([0.4] * 3, [0.4] * 3) == 1.0
    # 0/1 differences: the sign-flip test is the McNemar test
    x, y = [1, 1, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0]
    assert sign_flip(x, y) == pytest.approx(mcnemar_exact(x, y))
    # many differences: drawn, never exactly 0; a difference of pure noise gives a large p
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, 300)
    assert sign_flip(0.5 + noise, np.full(300, 0.5)) > 0.05
    assert sign_flip(0.55 + noise, np.full(300, 0.5)) == pytest.approx(1 / (N_PERM + 1))
