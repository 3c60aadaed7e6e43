"""Collaborative inference, the method's core (docs/method.md):

    y  ~ weak(x)           the weak model drafts                         Collaborator.drafts
    y* = strong(x, y)      the strong model answers, shown the draft     Collaborator.refine
    z  = strong(x)         the strong model alone, the bar to beat       Collaborator.strong_alone

so the collaboration's answer is y* = strong(x, weak(x)): `collab.refine(xs, [d[0].text for d in collab.drafts(xs)])`,
which `draft_and_refine` does for many questions at once. How the calls are made is beside it, not in it: the
prompts (`prompter.Prompter`), strong requests sent while the weak model drafts (`overlap`), the call cache and
several processes (the backends, `cowest.models`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Sequence

from ..config import CollabConfig
from ..models.base import Backend, Completion, Conversation, Sampling
from ..tasks.base import Example
from .overlap import Gathered, Later, background, draft_then_refine
from .prompter import Prompter


class Collaborator:
    """The method's model calls, in batches: weak drafts, strong refinement, strong alone."""

    def __init__(self, weak: Backend | None, strong: Backend, prompter: Prompter, cfg: CollabConfig,
                 overlap: bool = False):
        self.weak, self.strong, self.prompter, self.cfg = weak, strong, prompter, cfg
        # send strong requests while the weak model drafts (worth it when the strong model is not on this machine)
        self.overlap = overlap

    def drafts(self, examples: Sequence[Example], n: int = 1,
               sampling: Sampling | None = None) -> list[list[Completion]]:
        """y ~ weak(x): n weak drafts per example (greedy by default)."""
        if self.weak is None:
            raise ValueError("no weak model configured")
        sampling = sampling or Sampling(max_tokens=self.cfg.draft_max_tokens)
        return self.weak.generate([self.prompter.draft_prompt(e) for e in examples], n=n, sampling=sampling)

    def refine(self, examples: Sequence[Example], drafts: Sequence[str]) -> list[Answered]:
        """y* = strong(x, y): the strong model's final answer given each example's draft (same order)."""
        convs = [self.prompter.strong_refine(e, d) for e, d in zip(examples, drafts, strict=True)]
        return self.ask_strong(examples, convs)

    def strong_alone(self, examples: Sequence[Example]) -> list[Answered]:
        """z = strong(x): the strong model answering alone with chain of thought."""
        return self.ask_strong(examples, [self.prompter.strong_alone(e) for e in examples])

    def draft_and_refine(self, examples: Sequence[Example], later: Later, n: int = 1,
                         sampling: Sampling | None = None) -> tuple[list[list[Completion]], Gathered]:
        """n drafts per example and, through `later`, the strong model's refinement of each (example-major); with
        overlap on, a question's refinements are sent as soon as its drafts are written (`overlap`)."""
        if self.weak is None:
            raise ValueError("no weak model configured")
        sampling = sampling or Sampling(max_tokens=self.cfg.draft_max_tokens)
        convs = [self.prompter.draft_prompt(e) for e in examples]
        return draft_then_refine(self.weak, convs, n, sampling, self.refine, examples, later, self.overlap)

    def background(self) -> AbstractContextManager[Later]:
        """The `later` of this collaborator: background strong work when it overlaps, else at once."""
        return background(self.overlap)

    def ask_strong(self, examples: Sequence[Example], convs: Sequence[Conversation],
                   sampling: Sampling | None = None) -> list[Answered]:
        """One strong call per conversation (greedy at `collab.strong_max_tokens` unless `sampling`), plus a short
        re-ask with the same sampling where no answer could be read."""
        tt = self.prompter.task_type
        sampling = sampling or Sampling(max_tokens=self.cfg.strong_max_tokens)
        first = [c[0] for c in self.strong.generate(convs, n=1, sampling=sampling)]
        out = [
            Answered(c.text, tt.extract(c.text, e), c.prompt_tokens, c.completion_tokens, c.finish_reason == "length",
                     calls=int(not c.cached), cache_hits=int(c.cached))
            for c, e in zip(first, examples)
        ]
        retry = [i for i, a in enumerate(out) if a.answer is None]
        if retry:
            follow = [self.prompter.answer_only(convs[i], first[i].text) for i in retry]
            short = replace(sampling, max_tokens=self.cfg.reask_max_tokens)
            for i, c in zip(retry, self.strong.generate(follow, n=1, sampling=short)):
                a = out[i]
                a.text = f"{a.text}\n{c[0].text}"
                a.answer = tt.extract(c[0].text, examples[i])
                a.prompt_tokens += c[0].prompt_tokens
                a.completion_tokens += c[0].completion_tokens
                a.calls += int(not c[0].cached)
                a.cache_hits += int(c[0].cached)
        return out


@dataclass
class Answered:
    """A strong-model answer: the full text (with any re-ask), the extracted answer and token usage."""

    text: str
    answer: str | None
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # the first reply hit the token cap (its reasoning may be cut short)
    calls: int = 0  # model calls made for it (a re-ask included)
    cache_hits: int = 0  # replies read from the call cache instead
