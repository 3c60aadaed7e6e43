"""One-sided paired tests of "a scores higher than b" on the same questions, each with a real null hypothesis.

- 0/1 scores (accuracy): the exact McNemar test. Under the null each discordant question (one system right, the other
  wrong) is a fair coin, so p = P(Binomial(discordant, 1/2) >= questions only `a` got right).
- Other scores (token F1, ...): the sign-flip permutation test. Under the null each per-question difference is as
  likely negative as positive, so p is the share of sign flips whose sum is at least the observed one: enumerated
  exactly up to EXACT_MAX nonzero differences, else drawn (N_PERM flips, the observed one counted).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MCNEMAR = "exact McNemar"
SIGN_FLIP = "sign-flip permutation"
EXACT_MAX = 16  # 2^16 sign patterns: enumerated; more are drawn
N_PERM = 10_000
_CHUNK = 1_000


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided exact McNemar p for 0/1 scores: P(Binomial(n01 + n10, 1/2) >= n10), n10 = a right and b wrong."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    wins, losses = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    n = wins + losses
    if n == 0:
        return 1.0
    return math.fsum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def sign_flip(a: Sequence[float], b: Sequence[float], n_perm: int = N_PERM, seed: int = 0) -> float:
    """One-sided sign-flip permutation p of the per-question differences a - b (exact for few nonzero ones)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[d != 0]  # a zero difference is the same whichever its sign
    if d.size == 0:
        return 1.0
    observed = d.sum() - 1e-9 * max(1.0, abs(d.sum()))  # ties with the observed sum count against `a`
    if d.size <= EXACT_MAX:
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(signs @ d >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, _CHUNK):
        signs = rng.choice((-1.0, 1.0), size=(min(_CHUNK, n_perm - start), d.size))
        hits += int(np.sum(signs @ d >= observed))
    return (hits + 1) / (n_perm + 1)


def paired_test(a: Sequence[float], b: Sequence[float], seed: int = 0) -> tuple[float, str]:
    """The one-sided p of "a beats b" and the test's name: exact McNemar for 0/1 scores, else sign-flip."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.all(np.isin(x, (0.0, 1.0))) and np.all(np.isin(y, (0.0, 1.0))):
        return mcnemar_exact(x, y), MCNEMAR
    return sign_flip(x, y, seed=seed), SIGN_FLIP
