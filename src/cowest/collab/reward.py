"""Collaborative feedback as an on-policy reward: a draft's reward is how much the strong model's refinement of it
beats the strong model alone on the same question (delta_k of stage 2), computed when the weak model samples it."""

from __future__ import annotations

from typing import Any, Sequence

from ..tasks.base import Example
from .evaluators import Evaluator
from .feedback import requests
from .pipeline import Collaborator


class CollabReward:
    """Called by the trainer with sampled drafts; asks the strong model alone once per question and once per distinct
    shown draft (repeats are the call cache's), and counts those calls against a budget."""

    __name__ = "collab_feedback"  # what the trainer logs the reward as

    def __init__(self, collab: Collaborator, evaluator: Evaluator, examples: Sequence[Example]):
        self.collab, self.evaluator = collab, evaluator
        self.by_id = {e.id: e for e in examples}
        self.alone: dict[str, float] = {}
        self.sent: set[tuple[str, str]] = set()  # (question, shown draft) refined so far
        self.requests = 0  # strong requests for them, re-asks included, as mining counts them
        self.rows: list[dict] = []  # every scored draft, for the stage's record

    @property
    def calls(self) -> int:
        """Strong requests so far: the strong model alone once per question and each distinct shown draft of a
        question refined once (repeats are the call cache's), re-asks and a judge's requests included."""
        return self.requests + getattr(self.evaluator, "requests", 0)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], question_id: Sequence[str],
                 **_: Any) -> list[float]:
        """Rewards of the sampled drafts (completions are assistant messages, as the prompts are conversations)."""
        drafts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        examples = [self.by_id[q] for q in question_id]
        new = [e for e in {e.id: e for e in examples}.values() if e.id not in self.alone]
        if new:
            alone = self.collab.strong_alone(new)
            self.requests += requests(alone)
            for e, s in zip(new, self.evaluator.score([a.text for a in alone], new)):
                self.alone[e.id] = s
        answers = self.collab.refine(examples, drafts)
        scores = self.evaluator.score([a.text for a in answers], examples)
        shown = self.collab.prompter.shown_draft
        out = []
        for e, d, a, s in zip(examples, drafts, answers, scores):
            if (e.id, shown(d)) not in self.sent:
                self.sent.add((e.id, shown(d)))
                self.requests += requests([a])
            out.append(s - self.alone[e.id])
            self.rows.append(dict(question_id=e.id, draft=d, refined=a.text, score=s, alone=self.alone[e.id],
                                  delta=out[-1]))
        return out
