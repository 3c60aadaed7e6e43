"""Task loaders by name: `load_task(TaskConfig(name="mmlu", ...))`.

The built-in loaders are declared as data in `BUILTIN` (name -> "module:function", relative to this package) and
imported when first asked for, so importing `cowest.tasks` imports no loader and no loader imports back into
this table. `register` adds a loader from outside this package.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..config import TaskConfig
from .base import TaskData

Loader = Callable[[TaskConfig], TaskData]

BUILTIN: dict[str, str] = {
    "csv": ".families.generic:load_csv",
    "evals_mcq": ".families.evals:load_evals_mcq",
    "formulary": ".formulary:load_formulary",
    "ifqa": ".families.ifqa:load_ifqa",
    "jsonl": ".families.generic:load_jsonl",
    "medmcqa": ".families.medmcqa:load_medmcqa",
    "mix": ".families.mix:load_mix",
    "mmlu": ".families.mmlu:load_mmlu",
    "prosocial": ".families.prosocial:load_prosocial",
}
_ADDED: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Register a loader under `name` (for loaders outside this package)."""

    def deco(fn: Loader) -> Loader:
        if name in BUILTIN or name in _ADDED:
            raise ValueError(f"task loader {name!r} registered twice")
        _ADDED[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names of every registered loader."""
    return sorted({*BUILTIN, *_ADDED})


def get_loader(name: str) -> Loader:
    """The loader registered under `name`."""
    if name in _ADDED:
        return _ADDED[name]
    try:
        target = BUILTIN[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(available())}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module, __package__), func)


def load_task(cfg: TaskConfig) -> TaskData:
    """Load the task a config names."""
    return get_loader(cfg.name)(cfg)
