"""Task metrics (SQuAD EM/F1, macro-F1) and bootstrap confidence intervals.

Short answers are compared by `exact_match` and `token_f1` after `normalize_answer`: SQuAD normalisation (lower
case; punctuation and the articles a/an/the dropped; whitespace collapsed) with numbers written canonically first:

- thousands separators go: a comma, space, thin space or no-break space followed by exactly three digits, used
  consistently within the number ("1,250", "1 250", "12,345,678"); the first group must not start with 0;
- any other single comma inside a number is a decimal comma ("3,5" is 3.5, never 35; "0,250" is 0.25);
- a leading "+" goes, a leading "-" (or U+2212) stays; trailing zeros of a decimal part go ("21.0" and "21.00"
  are 21, "3.50" is 3.5); leading zeros stay ("007");
- punctuation between two digits that is not part of a number becomes a space ("21-22" and "1,2,3" are
  "21 22" and "1 2 3", not 2122 and 123).

A text is a quantity when, after stripping surrounding quotes, brackets, markdown and final punctuation, it is
one number with an optional currency sign before it ($ € £ ¥) and at most three unit words after it (no digits; a
hyphen counts as a space, "/" joins "mg/kg"). Unit words are lower-cased, singularised ("ies" -> "y"; "ches", "shes",
"sses", "xes", "zes" lose "es"; otherwise a final "s" after two or more letters goes, except "ss", "us", "is"),
and the signs % $ € £ ¥ ° read as percent, dollar, euro, pound, yen, degree. An article or a qualifier word
("or", "and", "to", "than", "more", "less", "about", "nearly", ...) makes a text not a quantity ("21 or 22",
"5a"), and so do words before the number ("about 21") and a second number.

`exact_match` is 1 when the normalised strings are equal, or when prediction and gold are both quantities with
the same canonical number and either
- the gold has no unit and the prediction's unit has no magnitude word (hundred, thousand, million, billion,
  trillion, dozen, k, m, b, bn, mn, mln, lakh, crore): "21 points", "$40", "40 USD", "3.5 mg/kg" match the golds
  "21", "40", "3.5", while "40 million" does not match "40" and "21 points" does not match "210"; or
- the gold has a unit and the prediction has the same unit words: "18-month" == "18 months", "14 Crowns" ==
  "14 crowns"; a bare "18" does not match "18 months" (list it among the accepted answers if it should), though
  "40" still equals "40%" as a normalised string, since signs are punctuation.
`token_f1` is 1 whenever `exact_match` is, and otherwise the SQuAD token overlap of the normalised strings, except
that against a gold that is a quantity a prediction without the gold's number scores 0: "1024 minutes" earns nothing
against "1016 minutes" for sharing its unit, while "1,016 minutes in all" keeps its overlap.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from .paired_tests import paired_test

# Bumped whenever a metric scores the same answer differently: every stage that scores re-runs on resume rather
# than keep scores made by the old rule (2: a wrong number earns no token F1 for its unit).
SCORING = 2

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Bounds the (n_boot x n) index matrix held in memory at once.
CHUNK_ELEMS = 2_000_000

# One number: thousands groups in one consistent style, or plain digits, with an optional decimal part; not
# glued to a word, and not followed by another digit group ("1,2,3" and "1.2.3" are not numbers).
_NUMBER = (
    r"(?<![\w.,])(?P<sign>[+\-\u2212])?"
    r"(?:(?P<int>[1-9]\d{0,2}(?P<sep>[, \u00a0\u2009\u202f])\d{3}(?:(?P=sep)\d{3})*|\d+)"
    r"(?:[.,](?P<frac>\d+))?|\.(?P<frac0>\d+))"
    r"(?!\d|[.,]\d)"
)
_NUMBER_RE = re.compile(_NUMBER)
_BETWEEN_DIGITS = re.compile(rf"(?<=\d)[{re.escape(string.punctuation)}]+(?=\d)")
# Private-use stand-ins for a canonical number's "." and "-", so that punctuation removal keeps them.
_DOT, _MINUS = "\ue000", "\ue001"

_QUANTITY_RE = re.compile(rf"(?P<cur>[$€£¥])?\s*{_NUMBER}(?:[\s\-\u2010-\u2015]*(?P<unit>[^\d\s\-][^\d]*))?")
_UNIT_SPLIT = re.compile(r"[\s\-\u2010-\u2015]+")  # spaces, hyphens and dashes
_UNIT_WORD = re.compile(r"[^\W\d_]+(?:[/.'’][^\W\d_]+)*\.?|[%°$€£¥]|°[^\W\d_]+")
_EDGE_CHARS = " \t\r\n*_`\"'“”‘’([{"
_UNIT_ALIASES = {"%": "percent", "$": "dollar", "€": "euro", "£": "pound", "¥": "yen", "°": "degree"}
# Words that make "number + words" something other than a quantity with a unit.
_QUALIFIERS = frozenset(
    "or and to than more less fewer least most over under about around approximately approx roughly nearly "
    "almost not no plus minus between from until a an the".split()
)
# Words that scale the number, so that the value is no longer the bare gold's (m and k may also be units).
_MAGNITUDES = frozenset("hundred thousand million billion trillion dozen k m b bn mn mln lakh crore".split())


# ---------------------------------------------------------------- point metrics


def squad_normalize(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles (a/an/the), collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _canonical_number(m: re.Match[str]) -> str:
    """A matched number without thousands separators, '+' or trailing decimal zeros ('1,250.50' -> '1250.5')."""
    whole = m["int"] or "0"
    if m["sep"]:
        whole = whole.replace(m["sep"], "")
    frac = (m["frac"] or m["frac0"] or "").rstrip("0")
    number = f"{whole}.{frac}" if frac else whole
    negative = m["sign"] in ("-", "\u2212") and number.strip("0.")  # "-0" is 0
    return f"-{number}" if negative else number


# Cached: the bootstrap re-scores the same strings for every resample.
@lru_cache(maxsize=1 << 16)
def normalize_answer(text: str) -> str:
    """SQuAD normalisation with numbers written canonically first (rules in the module docstring)."""
    text = text.lower().replace(_DOT, "").replace(_MINUS, "")
    text = _NUMBER_RE.sub(lambda m: _canonical_number(m).replace(".", _DOT).replace("-", _MINUS), text)
    text = _BETWEEN_DIGITS.sub(" ", text)
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = " ".join(_ARTICLES.sub(" ", text).split())
    return text.replace(_DOT, ".").replace(_MINUS, "-")


def _singular(word: str) -> str:
    """A unit word without its plural ending: 'months' -> 'month', 'inches' -> 'inch', 'centuries' -> 'century'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 16)
def parse_quantity(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(canonical number, unit words) when `text` is one number with an optional unit, else None."""
    s = text.lower().strip(_EDGE_CHARS).rstrip(_EDGE_CHARS + ".!?,;:)]}").strip()
    m = _QUANTITY_RE.fullmatch(s)
    if not m:
        return None
    words = [m["cur"]] if m["cur"] else []
    if m["unit"]:
        parts = _UNIT_SPLIT.split(re.sub(r"\s*/\s*", "/", m["unit"]).strip())
        if len(parts) > 3 or not all(_UNIT_WORD.fullmatch(w) for w in parts):
            return None
        words += parts
    unit = tuple(_singular(_UNIT_ALIASES.get(w, w)) for w in (w.rstrip(".") for w in words))
    if any(w in _QUALIFIERS for w in unit):
        return None
    return _canonical_number(m), unit


def _same_quantity(prediction: str, gold: str) -> bool:
    """Whether both texts are quantities that agree (number, and unit as the module docstring says)."""
    g = parse_quantity(gold)
    p = parse_quantity(prediction) if g else None
    if not g or not p or p[0] != g[0]:
        return False
    if not g[1]:
        return not any(w in _MAGNITUDES for w in p[1])
    return p[1] == g[1]


def exact_match(prediction: str | None, gold: str) -> float:
    """1.0 when the normalised strings are equal or both are agreeing quantities (a None prediction scores 0)."""
    if prediction is None:
        return 0.0
    return float(normalize_answer(prediction) == normalize_answer(gold) or _same_quantity(prediction, gold))


def token_f1(prediction: str | None, gold: str) -> float:
    """SQuAD token-overlap F1 of the normalised texts; 1.0 for agreeing quantities (None scores 0)."""
    if prediction is None:
        return 0.0
    if _same_quantity(prediction, gold):
        return 1.0
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if (g := parse_quantity(gold)) and g[0] not in pred:
        return 0.0  # a wrong number is wrong, whatever unit it shares with the gold
    if not pred or not ref:  # SQuAD convention: both empty is a match, one empty is not
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over(fn: Callable[[str | None, str], float], prediction: str | None, answers: Sequence[str]) -> float:
    """Max of a metric over every accepted answer (0 when there are none)."""
    return max((fn(prediction, a) for a in answers), default=0.0)


def macro_f1(preds: Sequence[Hashable | None], golds: Sequence[Hashable]) -> float:
    """Mean F1 over the classes present in `golds`; a prediction outside them (or None) is simply wrong."""
    if len(preds) != len(golds):
        raise ValueError(f"macro_f1: {len(preds)} predictions for {len(golds)} golds")
    if not golds:
        return float("nan")
    tp: Counter = Counter()
    pred_n: Counter = Counter(p for p in preds if p is not None)
    gold_n: Counter = Counter(golds)
    for p, g in zip(preds, golds):
        if p == g:
            tp[g] += 1
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (#predicted c + #gold c); #gold c > 0 for every class averaged.
    return float(np.mean([2 * tp[c] / (pred_n[c] + gold_n[c]) for c in gold_n]))


# ---------------------------------------------------------------- bootstrap


def _index_chunks(rng: np.random.Generator, n: int, n_boot: int):
    """Yield resampling index matrices (rows = bootstrap replicates) in memory-bounded chunks."""
    rows = max(1, CHUNK_ELEMS // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of per-example values with a percentile-bootstrap confidence interval."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = np.concatenate([arr[idx].mean(axis=1) for idx in _index_chunks(rng, arr.size, n_boot)])
    return (float(arr.mean()), *_percentiles(means, confidence))


def bootstrap_metric(
    fn: Callable[[Sequence, Sequence], float],
    preds: Sequence,
    golds: Sequence,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(value, lo, hi) for a non-decomposable metric `fn(preds, golds)`, resampling example indices."""
    if len(preds) != len(golds):
        raise ValueError(f"bootstrap_metric: {len(preds)} predictions for {len(golds)} golds")
    n = len(golds)
    if n == 0:
        return (float("nan"),) * 3
    value = float(fn(preds, golds))
    rng = np.random.default_rng(seed)
    if fn is macro_f1:  # same resamples, computed with counts instead of a Python loop
        stats = np.concatenate([_macro_f1_resampled(preds, golds, idx) for idx in _index_chunks(rng, n, n_boot)])
    else:
        p, g = list(preds), list(golds)
        stats = np.array(
            [fn([p[i] for i in row], [g[i] for i in row]) for idx in _index_chunks(rng, n, n_boot) for row in idx]
        )
    return (value, *_percentiles(stats, confidence))


def _macro_f1_resampled(preds: Sequence, golds: Sequence, idx: np.ndarray) -> np.ndarray:
    """macro_f1 of each resample (row of `idx`), vectorised over replicates."""
    classes = {c: i for i, c in enumerate(dict.fromkeys(golds))}
    k = len(classes)
    g = np.array([classes[x] for x in golds])
    p = np.array([classes.get(x, k) if x is not None else k for x in preds])  # k = outside the gold classes
    gi, pi = g[idx], p[idx]  # (boot, n)
    b = idx.shape[0]
    offs = (np.arange(b) * (k + 1))[:, None]
    count = lambda a: np.bincount((a + offs).ravel(), minlength=b * (k + 1)).reshape(b, k + 1)[:, :k]  # noqa: E731
    tp = count(np.where(gi == pi, gi, k))
    denom = count(pi) + count(gi)
    present = count(gi) > 0  # a class absent from the resample's golds is not averaged
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return (f1 * present).sum(axis=1) / present.sum(axis=1)


def paired_comparison(
    a_scores: Sequence[float],
    b_scores: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """mean(a) - mean(b) over the same examples: its paired-bootstrap percentile CI (lo, hi), and the one-sided p of a
    paired test of "a beats b" with a real null (`test`: exact McNemar for 0/1 scores, else sign-flip permutation)."""
    a, b = np.asarray(a_scores, dtype=float), np.asarray(b_scores, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_comparison: {a.size} scores vs {b.size}; they must be paired")
    if a.size == 0:
        nan = float("nan")
        return {"diff": nan, "lo": nan, "hi": nan, "p_value": nan, "test": None}
    d = a - b
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([d[idx].mean(axis=1) for idx in _index_chunks(rng, d.size, n_boot)])
    lo, hi = _percentiles(diffs, confidence)
    p, test = paired_test(a, b, seed=seed)
    return {"diff": float(d.mean()), "lo": lo, "hi": hi, "p_value": p, "test": test}
