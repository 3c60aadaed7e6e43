"""A model that only the main process opens and calls, its answers shared with every other process."""

from __future__ import annotations

from typing import Callable, Sequence

from cowest import dist
from cowest.models.base import Backend, BaseBackend, Completion, Conversation, Sampling


class SharedBackend(BaseBackend):
    """The strong model or judge under several processes: one server and one set of calls, not one per process.

    Every process must make the same calls in the same order (the run does: overlap is off under several processes).
    An error opening or calling the model on the main process is raised on every process.
    """

    def __init__(self, build: Callable[[], Backend]) -> None:
        super().__init__()
        self.inner: Backend | None = None

        def open_inner() -> str:
            self.inner = build()
            return self.inner.identity

        self.identity = dist.share(open_inner)

    def _generate(self, conversations: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        """The main process's answers, on every process."""
        return dist.share(lambda: self.inner.generate(conversations, n, sampling))  # type: ignore[union-attr]

    def close(self) -> None:
        """Close the model on the main process."""
        if self.inner is not None:
            self.inner.close()
            self.inner = None
