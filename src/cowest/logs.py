"""One logging style for the whole package: the `cowest` logger on stderr, `[cowest HH:MM:SS] message`."""

from __future__ import annotations

import logging
import sys

LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners and notebooks swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup(verbosity: int = 0) -> None:
    """Send the package's log records to stderr; -2 errors only, -1 quiet (warnings too), 0 progress, 1 debug."""
    logger = logging.getLogger("cowest")
    logger.setLevel(LEVELS[max(-2, min(1, verbosity))])
    if not any(getattr(h, "_cowest", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("[cowest %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        handler._cowest = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
