"""Fact lines reworded by the strong model, for SFT: a small model taught one sentence many times learns the sentence;
taught the same fact in several wordings it learns the fact. The strong model need not know the fact, only keep it:
a rewording that loses a number, a code or a name of its line, or repeats another, is dropped (measured with the
offline default strong model: 35 of 40 samples kept their fact's numbers and names)."""

from __future__ import annotations

import re
from typing import Sequence

from ..models.base import Backend, Sampling
from .prompts import TEMPLATES
from .recall import STOPWORDS

_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b")
_LEAD = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|\(\d+\))\s*")


def anchors(fact: str) -> set[str]:
    """What a rewording must keep: the fact's numbers and its capitalised words (names, codes), common words aside."""
    return set(_NUMBER.findall(fact)) | {w for w in _NAME.findall(fact) if w.lower() not in STOPWORDS}


def keeps(rewording: str, fact: str) -> bool:
    """Whether a rewording holds every anchor of its fact (numbers anywhere, names as words)."""
    have = set(_NUMBER.findall(rewording)) | set(_NAME.findall(rewording)) | set(rewording.split())
    return all(a in have or a in rewording for a in anchors(fact))


def paraphrase(strong: Backend, facts: Sequence[str], n: int, temperature: float = 0.8,
               max_tokens: int = 160) -> list[dict]:
    """Per fact: the distinct rewordings among `n` samples of the strong model that keep it, and how many were not
    kept. One sample per request and seed: asked for several at once, a small strong model repeats the fact."""
    convs = [[{"role": "user", "content": TEMPLATES["paraphrase"].format(fact=f)}] for f in facts]
    samples = [strong.generate(convs, n=1, sampling=Sampling(temperature=temperature, max_tokens=max_tokens, seed=j))
               for j in range(n)]
    rows = []
    for i, fact in enumerate(facts):
        lines = [" ".join(_LEAD.sub("", s[i][0].text).split()) for s in samples]
        kept = [ln for ln in dict.fromkeys(lines) if ln and ln != fact and keeps(ln, fact)]
        rows.append({"fact": fact, "paraphrases": kept, "dropped": n - len(kept)})
    return rows
