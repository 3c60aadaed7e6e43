"""The one interface every model backend implements, and a base class with what they all share."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

from ..errors import CowestError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
Conversation = list[Message]
# Called once per conversation as soon as its completions are ready: (index in the batch, its completions).
OnDone = Callable[[int, "list[Completion]"], None]


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> dict:
        """Fields that change the output, for cache keys."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass
class Completion:
    """One generated text with its token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False


@dataclass
class Usage:
    """Running totals for one backend."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, c: Completion) -> None:
        """Count one completion (cache hits count tokens but not calls)."""
        if c.cached:
            self.cache_hits += 1
        else:
            self.calls += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """Plain dict for manifests."""
        return dict(
            calls=self.calls,
            cache_hits=self.cache_hits,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )


@runtime_checkable
class Backend(Protocol):
    """Generates `n` completions for each chat conversation in a batch."""

    identity: str  # stable description of backend + model (+ adapter hash): part of every cache key
    usage: Usage

    def generate(
        self, conversations: Sequence[Conversation], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        """Return, for each conversation, a list of `n` completions (BaseBackend adds an `on_done` callback)."""
        ...

    def close(self) -> None:
        """Release processes, sockets and memory."""
        ...


_USAGE_LOCK = threading.Lock()


class BaseBackend(ABC):
    """The checks and usage counting every backend shares: a subclass implements `_generate` and `close`."""

    identity: str

    def __init__(self) -> None:
        self.usage = Usage()

    # True where `_generate` takes an `on_done` argument and calls it as each conversation finishes
    streams_results = False

    def generate(
        self,
        conversations: Sequence[Conversation],
        n: int = 1,
        sampling: Sampling = Sampling(),
        on_done: OnDone | None = None,
    ) -> list[list[Completion]]:
        """Return, for each conversation, a list of `n` completions, each counted in `usage`.

        `on_done(i, completions)` is called once per conversation as it finishes (before the return, and even when
        another conversation then fails), so a caller can keep finished work.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not conversations:
            return []
        if not self.streams_results:
            results = self._generate(conversations, n, sampling)
            for i, comps in enumerate(results):
                self._finished(i, comps, on_done)
            return results
        return self._generate(conversations, n, sampling, lambda i, comps: self._finished(i, comps, on_done))

    def _finished(self, i: int, comps: list[Completion], on_done: OnDone | None) -> None:
        with _USAGE_LOCK:  # generate may be called from several threads at once (overlapped strong requests)
            for c in comps:
                self.usage.add(c)
        if on_done is not None:
            on_done(i, comps)

    @abstractmethod
    def _generate(self, conversations: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        """`n` completions for each of a non-empty batch of conversations, in input order (`streams_results`
        subclasses take a fourth argument, the `on_done` callback)."""

    @abstractmethod
    def close(self) -> None:
        """Release processes, sockets and memory."""


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string (OpenAI semantics: the stop string is dropped); say if one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class BackendError(CowestError, RuntimeError):
    """A backend failed for good (retries exhausted, server died, bad configuration)."""
