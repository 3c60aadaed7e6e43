"""One logging style for the whole package: the `cowest` logger on stderr, `[cowest HH:MM:SS] message`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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


def to_file(path: Path) -> None:
    """Also write the package's lines and the Python warnings (py.warnings) to `path`, the run's log; one at a time."""
    for name in ("cowest", "py.warnings"):
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if getattr(h, "_cowest_file", None)]:
            if h._cowest_file == path:  # type: ignore[attr-defined]
                continue
            logger.removeHandler(h)
            h.close()
        if not any(getattr(h, "_cowest_file", None) == path for h in logger.handlers):
            handler = logging.FileHandler(path, delay=True)
            handler.setFormatter(logging.Formatter("[%(name)s %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
            handler._cowest_file = path  # type: ignore[attr-defined]
            logger.addHandler(handler)
