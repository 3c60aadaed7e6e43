"""Evaluators E(response, x, gold) -> score in [0, 1]: the task's rule metric or an LLM judge."""

from __future__ import annotations

import re
from typing import Protocol, Sequence

from ..models.base import Backend, Sampling
from ..tasks.base import Example
from .pipeline import Prompter

_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*(10|[1-9])(?:\s*/\s*10)?\b", re.IGNORECASE)
_BARE = re.compile(r"^\s*\**\s*(10|[1-9])(?:\s*/\s*10)?\s*\**\s*$")


class Evaluator(Protocol):
    """Scores final answers against ground truth."""

    def score(self, responses: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """One score in [0, 1] per response."""
        ...


class RuleEvaluator:
    """The task metric on the extracted final answer."""

    def __init__(self, prompter: Prompter):
        self.task_type = prompter.task_type

    def score(self, responses: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """Task metric of each extracted answer."""
        tt = self.task_type
        return [tt.score(tt.extract(r, e), e) for r, e in zip(responses, examples, strict=True)]


def parse_judge_score(text: str) -> int | None:
    """Read a 1-10 rating from judge output ('Score: 7', 'score = 7/10', a bare '7'); None if absent."""
    m = _SCORE.findall(text)
    if m:
        return int(m[-1])
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines and (b := _BARE.match(lines[-1])):
        return int(b.group(1))
    return None


class JudgeEvaluator:
    """An LLM rates each response 1-10 against the ground truth; unparseable ratings are re-asked."""

    def __init__(self, judge: Backend, prompter: Prompter, retries: int = 3, max_tokens: int = 16):
        self.judge, self.prompter, self.retries, self.max_tokens = judge, prompter, retries, max_tokens
        self.unparsed = 0  # responses still unrated after all retries (scored 0)

    def score(self, responses: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """Judge ratings mapped from 1..10 to [0, 1]."""
        convs = [self.prompter.judge(e, r) for r, e in zip(responses, examples, strict=True)]
        ratings: list[int | None] = [None] * len(convs)
        todo = list(range(len(convs)))
        for attempt in range(self.retries + 1):
            # A new seed per attempt, so a retry is a new draw and not a cache hit.
            sampling = Sampling(temperature=0.0 if attempt == 0 else 0.7, max_tokens=self.max_tokens, seed=attempt)
            outs = self.judge.generate([convs[i] for i in todo], n=1, sampling=sampling)
            for i, out in zip(todo, outs):
                ratings[i] = parse_judge_score(out[0].text)
            todo = [i for i in todo if ratings[i] is None]
            if not todo:
                break
        self.unparsed += len(todo)
        return [0.0 if r is None else (r - 1) / 9 for r in ratings]
