"""Collaborative inference: the weak model drafts, the strong model refines, y* = strong(x, weak(x))."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..config import CollabConfig
from ..models.base import Backend, BaseBackend, Completion, Conversation, Sampling
from ..tasks.base import Example, TaskType
from .prompts import DRAFT_INSTRUCTIONS, SECTIONS, TEMPLATES


@dataclass
class Prompter:
    """Renders every prompt of the method from the templates, for one task type and draft format."""

    task_type: TaskType
    draft_format: str = "cot"
    overrides: Mapping[str, str] | None = None
    draft_sections: Sequence[str] | None = None  # what the strong model sees of a draft (None: all of it)

    def template(self, name: str) -> str:
        """A template by name, recipe overrides first."""
        if self.overrides and name in self.overrides:
            return self.overrides[name]
        if name.startswith("instruction_"):
            return DRAFT_INSTRUCTIONS[name.removeprefix("instruction_")]
        return TEMPLATES[name]

    def render(self, name: str, example: Example, **extra: str) -> str:
        """Fill one template for an example."""
        fields = dict(
            question=example.question,
            options=self.task_type.format_options(example),
            answer_hint=self.task_type.answer_hint,
        )
        fields.update(extra)
        template = self.template(name)
        if not fields["options"]:  # drop the options line for tasks without options
            template = "\n".join(ln for ln in template.split("\n") if ln.strip() != "{options}")
        return template.format(**fields)

    def draft_prompt(self, example: Example) -> Conversation:
        """The weak model's input; SFT, mining, DPO and inference all use this exact conversation."""
        instruction = self.template(f"instruction_{self.draft_format}").format(answer_hint=self.task_type.answer_hint)
        return [{"role": "user", "content": self.render("weak_draft", example, instruction=instruction)}]

    def draft_target(self, example: Example, background: str | None = None) -> str:
        """The SFT target: the gold answer in the draft format; its background is the example's own (metadata
        'background', else its explanation), else `background` (evidence or retrieved facts), else a template."""
        meta = example.metadata
        background = (meta.get("background") or example.explanation or background
                      or templated_background(self.task_type, example))
        reasoning = meta.get("reasoning") or (
            f"The facts above point to {self.task_type.format_answer(example)}."
        )
        parts = {"Background": background, "Reasoning": reasoning, "Answer": self.task_type.format_answer(example)}
        return "\n".join(f"{s}: {' '.join(str(parts[s]).split())}" for s in SECTIONS[self.draft_format])

    def sft_row(self, example: Example, background: str | None = None) -> dict:
        """An SFT row (TRL prompt-completion): the draft prompt and the gold draft (see `draft_target`)."""
        return {"prompt": self.draft_prompt(example),
                "completion": [{"role": "assistant", "content": self.draft_target(example, background)}]}

    def corpus_row(self, passage: str) -> dict:
        """An SFT row (TRL prompt-completion) that teaches one corpus passage."""
        return {"prompt": [{"role": "user", "content": self.template("corpus")}],
                "completion": [{"role": "assistant", "content": passage}]}

    def strong_alone(self, example: Example) -> Conversation:
        """Strong model alone with chain of thought."""
        return [{"role": "user", "content": self.render("strong_alone", example)}]

    def shown_draft(self, draft: str) -> str:
        """What the strong model sees of a draft."""
        return select_sections(draft, self.draft_sections) if self.draft_sections else draft.strip()

    def strong_refine(self, example: Example, draft: str) -> Conversation:
        """Strong model given the question and the weak model's draft (its shown sections)."""
        return [{"role": "user", "content": self.render("strong_refine", example, draft=self.shown_draft(draft))}]

    def supericl(self, example: Example, prediction: str, confidence: float) -> Conversation:
        """Strong model given the weak model's predicted answer and its probability (SuperICL-style)."""
        text = self.render("supericl", example, prediction=prediction, confidence=f"{confidence:.2f}")
        return [{"role": "user", "content": text}]

    def retrieval(self, example: Example, passages: Sequence[str]) -> Conversation:
        """Strong model given the top retrieved corpus passages."""
        shown = "\n".join(f"[{i + 1}] {' '.join(p.split())}" for i, p in enumerate(passages))
        return [{"role": "user", "content": self.render("retrieval", example, passages=shown)}]

    def judge(self, example: Example, response: str) -> Conversation:
        """Judge prompt rating a response against the ground truth."""
        gold = self.task_type.format_answer(example)
        return [{"role": "user", "content": self.render("judge", example, gold=gold, response=response.strip())}]

    def answer_only(self, conversation: Conversation, reply: str) -> Conversation:
        """Follow-up turn asking for the answer alone."""
        ask = self.template("answer_only").format(answer_hint=self.task_type.answer_hint)
        return [*conversation, {"role": "assistant", "content": reply}, {"role": "user", "content": ask}]


def templated_background(task_type: TaskType, example: Example) -> str:
    """Short rationale when the data holds no knowledge for the example: it teaches the answer, not a fact."""
    return f"The relevant fact is that the answer to this question is {task_type.format_answer(example)}."


def select_sections(draft: str, sections: Sequence[str]) -> str:
    """The draft's lines that start with one of `sections` ("Background: ..."); the whole draft if none do."""
    wanted = tuple(f"{s.lower()}:" for s in sections)
    kept = [ln.strip() for ln in draft.splitlines() if ln.strip().lower().startswith(wanted)]
    return "\n".join(kept) if kept else draft.strip()


def draft_answer_section(draft: str) -> str:
    """The draft's last 'Answer:' line (weak-alone prediction text)."""
    lines = [ln for ln in draft.splitlines() if ln.strip().lower().startswith("answer")]
    return lines[-1] if lines else draft


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


Later = Callable[..., "Future[Any]"]  # later(fn, *args): fn's result, computed now or in the background


@contextmanager
def background(enabled: bool, workers: int = 64) -> Iterator[Later]:
    """`later(fn, *args)` for strong-model work: on a background thread when `enabled` (so the caller can go on
    drafting while requests are in flight), else run at once; the block waits for all of it before it ends."""
    if not enabled:
        def now(fn: Callable[..., Any], *args: Any) -> Future[Any]:
            fut: Future[Any] = Future()
            try:
                fut.set_result(fn(*args))
            except Exception as e:  # raised where the result is read, as from a background thread
                fut.set_exception(e)
            return fut

        yield now
        return
    # The threads only wait on the backend, whose own pool caps the requests in flight.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cowest-collab")
    try:
        yield pool.submit
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # a failure or Ctrl-C: send nothing more
        raise
    pool.shutdown(wait=True)


class Gathered:
    """Futures of strong answers read back as one flat list, in order, and the span from `started` to the last."""

    def __init__(self, parts: Sequence[Future[list[Any]]], started: float | None = None) -> None:
        self.parts = parts
        self.started = self.finished = time.perf_counter() if started is None else started
        self.draft_s = 0.0  # seconds the weak model took to write the drafts these answers refine
        for part in parts:
            part.add_done_callback(self._done)

    def _done(self, _: Future[list[Any]]) -> None:
        self.finished = max(self.finished, time.perf_counter())

    def result(self) -> list[Any]:
        """Wait for every part; the first failure is raised."""
        return [x for part in self.parts for x in part.result()]

    @property
    def seconds(self) -> float:
        """From the first request sent to the last answer (read after `result`)."""
        return self.finished - self.started

    @classmethod
    def send(cls, later: Later, fn: Callable[..., list[Any]], *args: Any) -> Gathered:
        """`later(fn, *args)` timed from now."""
        started = time.perf_counter()
        return cls([later(fn, *args)], started=started)


class Collaborator:
    """Runs the method's model calls in batches: weak drafts, strong alone, strong refinement."""

    def __init__(self, weak: Backend | None, strong: Backend, prompter: Prompter, cfg: CollabConfig,
                 overlap: bool = False):
        self.weak, self.strong, self.prompter, self.cfg = weak, strong, prompter, cfg
        # send strong requests while the weak model drafts (worth it when the strong model is not on this machine)
        self.overlap = overlap

    def background(self) -> AbstractContextManager[Later]:
        """The `later` of this collaborator: background strong work when it overlaps, else at once."""
        return background(self.overlap)

    def drafts(self, examples: Sequence[Example], n: int = 1, sampling: Sampling | None = None) -> list[list[Completion]]:
        """n weak drafts per example (greedy by default)."""
        if self.weak is None:
            raise ValueError("no weak model configured")
        sampling = sampling or Sampling(max_tokens=self.cfg.draft_max_tokens)
        return self.weak.generate([self.prompter.draft_prompt(e) for e in examples], n=n, sampling=sampling)

    def draft_and_refine(self, examples: Sequence[Example], later: Later, n: int = 1,
                         sampling: Sampling | None = None) -> tuple[list[list[Completion]], Gathered]:
        """n drafts per example and, through `later`, the strong model's refinement of each (example-major).

        Overlapping, each example's drafts go to the strong model as soon as the weak model's batch holding them is
        done; otherwise every draft is written first and all refinements are sent together, as one batch.
        """
        if self.weak is None:
            raise ValueError("no weak model configured")
        sampling = sampling or Sampling(max_tokens=self.cfg.draft_max_tokens)
        convs = [self.prompter.draft_prompt(e) for e in examples]
        t0 = time.perf_counter()
        if self.overlap and isinstance(self.weak, BaseBackend):
            parts: list[Future[list[Answered]] | None] = [None] * len(examples)

            def send(i: int, comps: list[Completion]) -> None:
                parts[i] = later(self.refine, [examples[i]] * len(comps), [c.text for c in comps])

            drafts = self.weak.generate(convs, n=n, sampling=sampling, on_done=send)
            sent = [p for p in parts if p is not None]
            if len(sent) != len(examples):
                raise RuntimeError(f"weak model reported {len(sent)} of {len(examples)} conversations as done")
            refined = Gathered(sent, started=t0)
            refined.draft_s = time.perf_counter() - t0
        else:
            drafts = self.weak.generate(convs, n=n, sampling=sampling)
            flat = [e for e, ds in zip(examples, drafts) for _ in ds]
            refined = Gathered.send(later, self.refine, flat, [c.text for ds in drafts for c in ds])
            refined.draft_s = refined.started - t0
        return drafts, refined

    def strong_alone(self, examples: Sequence[Example]) -> list[Answered]:
        """The strong model answering alone with chain of thought."""
        return self.ask_strong(examples, [self.prompter.strong_alone(e) for e in examples])

    def refine(self, examples: Sequence[Example], drafts: Sequence[str]) -> list[Answered]:
        """The strong model's final answer given each example's draft (same order)."""
        convs = [self.prompter.strong_refine(e, d) for e, d in zip(examples, drafts, strict=True)]
        return self.ask_strong(examples, convs)

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
