"""Task loaders by name: `@register("mmlu")` then `load_task(TaskConfig(name="mmlu", ...))`."""

from __future__ import annotations

from typing import Callable

from ..config import TaskConfig
from .base import TaskData

Loader = Callable[[TaskConfig], TaskData]
_LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Register a loader under `name`."""

    def deco(fn: Loader) -> Loader:
        if name in _LOADERS:
            raise ValueError(f"task loader {name!r} registered twice")
        _LOADERS[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names of every registered loader."""
    _import_builtin()
    return sorted(_LOADERS)


def load_task(cfg: TaskConfig) -> TaskData:
    """Load the task a config names."""
    _import_builtin()
    try:
        loader = _LOADERS[cfg.name]
    except KeyError:
        raise ValueError(f"unknown task {cfg.name!r}; known: {', '.join(sorted(_LOADERS))}") from None
    return loader(cfg)


def _import_builtin() -> None:
    # Loader modules register themselves on import.
    from . import loaders  # noqa: F401
