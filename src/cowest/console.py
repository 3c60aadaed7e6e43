"""What reaches the console: cowest's own lines; third-party progress bars, advisory logs and warnings only with -v.

Each library is quietened with its own switch (the environment variables it reads at import, and its functions for
one imported already), never by redirecting streams. A variable the user set wins: `setdefault`.
"""

from __future__ import annotations

import logging
import os
import re
import sys

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # the Hub's downloads, and transformers' bars ("Loading weights") follow it
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets' "Map", "Flattening the indices", ...
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
# warnings raised in the libraries cowest drives (deprecations, advice): about their code, not the user's run
_LIBRARY_FILE = re.compile(r"[/\\](transformers|trl|peft|datasets|accelerate|torch|huggingface_hub)[/\\]")
_state = {"verbose": True}  # library defaults until the CLI says otherwise
_set_here: set[str] = set()  # the variables this process set (not the user's), undone by a later -v in-process


def verbose() -> bool:
    """Whether third-party progress and warnings are shown (the CLI's -v; always, outside the CLI)."""
    return _state["verbose"]


def quiet_libraries(verbose: bool) -> None:
    """Show third-party progress bars, logs and warnings only when `verbose`; cowest's own lines are unaffected."""
    _state["verbose"] = verbose
    if verbose:
        for key in _set_here:
            os.environ.pop(key, None)
        _set_here.clear()
        logging.captureWarnings(False)
        return
    for key, value in QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            _set_here.add(key)
    if "transformers" in sys.modules:  # imported already: the variables were read, so use its functions
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.utils.logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    _route_warnings()


class _NotLibrary(logging.Filter):
    """Keeps a captured warning off the console when a library raised it (the run's log file still has it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _LIBRARY_FILE.search(record.getMessage().split(": ", 1)[0])


def _route_warnings() -> None:
    """Python warnings through logging (py.warnings): cowest's own on the console, every one in the run's log."""
    from .logs import _Stderr

    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    logger.propagate = False
    if not any(getattr(h, "_cowest", False) for h in logger.handlers):
        handler = _Stderr()
        handler.addFilter(_NotLibrary())
        handler._cowest = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def quiet_trainer(trainer: object) -> None:
    """Without -v, drop the Trainer's console echo of each metrics dict (the stage's train log keeps every one)."""
    if verbose():
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)  # type: ignore[attr-defined]
