"""One progress bar for all of a backend's calls, across batches: calls done of those sent, and how many are in flight.

Overlapped mining and evaluation send each question's strong calls as a batch of its own, so a bar per batch would
show nothing; this one counts every call the backend was given until it is closed.
"""

from __future__ import annotations

import sys
import threading

from tqdm.auto import tqdm


class CallProgress:
    """`sent(k)` when calls go out, `done(k)` when they end (answered or failed); a bar on a terminal only."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._lock = threading.Lock()
        self._bar: tqdm | None = None
        self.n_sent = self.n_done = 0

    def sent(self, k: int = 1) -> None:
        """`k` more calls went out."""
        with self._lock:
            if self._bar is None:  # disable=None: drawn on a terminal, silent in logs and tests
                self._bar = tqdm(total=0, desc=self.desc, unit="call", leave=False, file=sys.stderr, disable=None)
            self.n_sent += k
            self._bar.total = self.n_sent
            self._show()

    def done(self, k: int = 1) -> None:
        """`k` calls ended."""
        with self._lock:
            self.n_done += k
            if self._bar is not None:
                self._bar.update(k)
                self._show()

    def _show(self) -> None:
        assert self._bar is not None
        self._bar.set_postfix_str(f"{self.n_sent - self.n_done} in flight", refresh=True)

    def close(self) -> None:
        """Take the bar off the screen."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
