"""Task metrics (SQuAD EM/F1, macro-F1) and bootstrap confidence intervals."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Hashable, Sequence

import numpy as np

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Bounds the (n_boot x n) index matrix held in memory at once.
_CHUNK_ELEMS = 2_000_000


# ---------------------------------------------------------------- point metrics


def squad_normalize(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles (a/an/the), collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, gold: str) -> float:
    """1.0 when the SQuAD-normalised strings are equal (a None prediction scores 0)."""
    if prediction is None:
        return 0.0
    return float(squad_normalize(prediction) == squad_normalize(gold))


def token_f1(prediction: str | None, gold: str) -> float:
    """SQuAD token-overlap F1 between normalised prediction and gold (None scores 0)."""
    if prediction is None:
        return 0.0
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
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
    rows = max(1, _CHUNK_ELEMS // max(n, 1))
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


def paired_bootstrap(
    a_scores: Sequence[float],
    b_scores: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap of mean(a) - mean(b) over the same examples.

    Returns diff, the percentile CI (lo, hi) and a one-sided p_value: the share of resamples whose
    difference is <= 0, i.e. evidence against "a beats b" (small p: a is reliably better).
    """
    a, b = np.asarray(a_scores, dtype=float), np.asarray(b_scores, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap: {a.size} scores vs {b.size}; they must be paired")
    if a.size == 0:
        nan = float("nan")
        return {"diff": nan, "lo": nan, "hi": nan, "p_value": nan}
    d = a - b
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([d[idx].mean(axis=1) for idx in _index_chunks(rng, d.size, n_boot)])
    lo, hi = _percentiles(diffs, confidence)
    return {"diff": float(d.mean()), "lo": lo, "hi": hi, "p_value": float(np.mean(diffs <= 0))}
