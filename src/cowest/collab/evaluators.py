"""Evaluators E(response, x, gold) -> score in [0, 1]: the task's rule metric or an LLM judge, and the judge's
calibration: before it scores mining, it must tell gold answers from wrong ones on questions whose gold is known."""

from __future__ import annotations

import random
import re
from typing import Protocol, Sequence

from ..models.base import Backend, Sampling
from ..tasks.base import LETTERS, Example
from .prompter import Prompter

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
        self.requests = 0  # judge requests sent (re-asks included), cached or not

    def score(self, responses: Sequence[str], examples: Sequence[Example]) -> list[float]:
        """Judge ratings mapped from 1..10 to [0, 1]."""
        convs = [self.prompter.judge(e, r) for r, e in zip(responses, examples, strict=True)]
        ratings: list[int | None] = [None] * len(convs)
        todo = list(range(len(convs)))
        for attempt in range(self.retries + 1):
            # A new seed per attempt, so a retry is a new draw and not a cache hit.
            sampling = Sampling(temperature=0.0 if attempt == 0 else 0.7, max_tokens=self.max_tokens, seed=attempt)
            outs = self.judge.generate([convs[i] for i in todo], n=1, sampling=sampling)
            self.requests += len(todo)
            for i, out in zip(todo, outs):
                ratings[i] = parse_judge_score(out[0].text)
            todo = [i for i in todo if ratings[i] is None]
            if not todo:
                break
        self.unparsed += len(todo)
        return [0.0 if r is None else (r - 1) / 9 for r in ratings]


def calibrate_judge(judge: JudgeEvaluator, examples: Sequence[Example], seed: int = 0) -> dict:
    """The judge's scores of a right and a wrong answer to each question (same reasoning, only the final answer
    differs) and how well they separate: ROC AUC (1: every right answer above every wrong one; 0.5: chance)."""
    tt = judge.prompter.task_type
    rng = random.Random(f"judge-calibration:{seed}")
    cases = [(e, w) for e in examples if (w := wrong_answer(e, examples, rng)) is not None]
    if len(cases) < 2:
        raise ValueError("judge calibration needs at least 2 questions with a known wrong answer")

    def response(e: Example, answer: str) -> str:
        why = e.metadata.get("reference_fact") or e.explanation or "Working from the facts in the question."
        return f"{' '.join(str(why).split())}\nFinal answer: {answer}"

    right = judge.score([response(e, tt.format_answer(e)) for e, _ in cases], [e for e, _ in cases])
    wrong = judge.score([response(e, w) for e, w in cases], [e for e, _ in cases])
    above = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return {"auc": above / (len(right) * len(wrong)), "questions": len(cases), "right_mean": sum(right) / len(right),
            "wrong_mean": sum(wrong) / len(wrong), "wrong_rated_high": sum(w >= 0.9 for w in wrong) / len(wrong)}


def wrong_answer(example: Example, pool: Sequence[Example], rng: random.Random) -> str | None:
    """A wrong answer to `example` as the model would write it: another option or label, or another question's
    short answer of the same kind (a number for a number); None when there is none."""
    if example.options:
        others = [i for i, _ in enumerate(example.options) if LETTERS[i] != example.gold and example.options[i] != example.gold]
        if not others:
            return None
        i = rng.choice(others)
        return f"{LETTERS[i]}) {example.options[i]}" if example.gold in LETTERS[: len(example.options)] else example.options[i]
    accepted = {a.strip().lower() for a in (example.answers or [example.gold])}
    numeric = _NUMBER.fullmatch(example.gold.strip()) is not None
    others = sorted({e.gold for e in pool if e.gold.strip().lower() not in accepted
                     and (_NUMBER.fullmatch(e.gold.strip()) is not None) == numeric})
    return rng.choice(others) if others else None


_NUMBER = re.compile(r"[-+]?[\d.,:]*\d(?:\s*\S+)?")
