"""Overlap: strong-model requests sent from background threads while the weak model drafts (`strong.overlap`).

`background(enabled)` gives `later(fn, *args)`: fn's result as a future, computed on a background thread when
overlapping, else at once. `draft_then_refine` sends each question's refinements as soon as the weak model's batch
holding its drafts is done. Off, the same calls are made in the old order (all drafts, then all strong calls); the
answers are the same either way.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..models.base import Backend, BaseBackend, Completion, Conversation, Sampling
from ..tasks.base import Example

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


def draft_then_refine(weak: Backend, convs: Sequence[Conversation], n: int, sampling: Sampling,
                      refine: Callable[[list[Example], list[str]], list[Any]], examples: Sequence[Example],
                      later: Later, overlap: bool) -> tuple[list[list[Completion]], Gathered]:
    """`n` drafts of each conversation and, through `later`, `refine` of each question's drafts (example-major).

    Overlapping, each example's drafts go to the strong model as soon as the weak model's batch holding them is
    done; otherwise every draft is written first and all refinements are sent together, as one batch.
    """
    t0 = time.perf_counter()
    if overlap and isinstance(weak, BaseBackend):
        parts: list[Future[list[Any]] | None] = [None] * len(examples)

        def send(i: int, comps: list[Completion]) -> None:
            parts[i] = later(refine, [examples[i]] * len(comps), [c.text for c in comps])

        drafts = weak.generate(convs, n=n, sampling=sampling, on_done=send)
        sent = [p for p in parts if p is not None]
        if len(sent) != len(examples):
            raise RuntimeError(f"weak model reported {len(sent)} of {len(examples)} conversations as done")
        refined = Gathered(sent, started=t0)
        refined.draft_s = time.perf_counter() - t0
    else:
        drafts = weak.generate(convs, n=n, sampling=sampling)
        flat = [e for e, ds in zip(examples, drafts) for _ in ds]
        refined = Gathered.send(later, refine, flat, [c.text for ds in drafts for c in ds])
        refined.draft_s = refined.started - t0
    return drafts, refined
