"""Task loaders by name: `load_task(TaskConfig(name="mmlu", ...))`.

The built-in loaders are declared as data in `BUILTIN` (name -> "module:function", relative to this package) and
imported when first asked for, so importing `cowest.tasks` imports no loader and no loader imports back into
this table. `register` adds a loader from outside this package.

Each loader describes what it reads next to its code (`@described(LoaderInfo(...))`); `cowest tasks --describe`
prints those descriptions and `COMMON`, the task fields every loader honours.
"""

from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from ..config import TaskConfig
from .base import TaskData

Loader = Callable[[TaskConfig], TaskData]


@dataclass(frozen=True)
class LoaderInfo:
    """What a loader reads and which recipe fields steer it (shown by `cowest tasks --describe`)."""

    summary: str
    fields: dict[str, str] = field(default_factory=dict)  # task.fields keys: our field -> what the column holds
    knobs: dict[str, str] = field(default_factory=dict)  # recipe fields (task.x, task.options.y) -> what they do
    notes: tuple[str, ...] = ()

    def text(self, name: str) -> str:
        """This description of loader `name` as indented text wrapped at 120 columns."""

        def items(title: str, entries: dict[str, str]) -> list[str]:
            if not entries:
                return []
            width = min(max(map(len, entries)), 28)
            out = [f"  {title}"]
            for key, text in entries.items():
                head = f"    {key:<{width}}  "
                out += textwrap.wrap(text, 116, initial_indent=head, subsequent_indent=" " * len(head)) or [head]
            return out

        lines = [f"{name}: {self.summary}"]
        lines += items("task.fields (our field: what your column holds; unmapped: the column of the same name)",
                       self.fields)
        lines += items("recipe fields", self.knobs)
        if self.notes:
            lines.append("  notes")
            for note in self.notes:
                lines += textwrap.wrap(note, 116, initial_indent="    - ", subsequent_indent="      ")
        return "\n".join(lines)


# Task fields of every loader: the splits are the shared load flow's (formulary makes its own), the corpus `load_task`'s.
COMMON = LoaderInfo(
    summary="Fields of the task block for every loader (the formulary makes its own splits: see its options).",
    knobs={
        "task.n_train / task.n_test": "cap the splits; with a separate test file (task.test_path) or a hub test "
                                      "split they are seeded samples (task.seed), otherwise the first N of each side",
        "task.test_fraction": "share of the questions held out for the test when the source has no test split "
                              "(default 0.3; a question is never on both sides)",
        "task.seed": "the seed of the split and of the samples",
        "task.corpus_path": "your own fact corpus: plain text, one fact per line, or JSONL with a 'text' field. It "
                            "replaces the corpus built from the training rows (retrieval baseline, task.sft_corpus) "
                            "and gives a background to SFT targets of rows without explanation or evidence",
        "task.sft_corpus": "also SFT the weak model on every corpus passage: true, or how many times per epoch",
    },
)

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


def described(info: LoaderInfo) -> Callable[[Loader], Loader]:
    """Attach a loader's description (read by `describe`)."""

    def deco(fn: Loader) -> Loader:
        fn.info = info  # type: ignore[attr-defined]
        return fn

    return deco


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


def describe(name: str) -> LoaderInfo:
    """The description of the loader registered under `name` (its docstring's first line if it has none)."""
    loader = get_loader(name)
    info = getattr(loader, "info", None)
    if isinstance(info, LoaderInfo):
        return info
    return LoaderInfo(summary=((loader.__doc__ or "").strip().splitlines() or ["(no description)"])[0])


def load_task(cfg: TaskConfig) -> TaskData:
    """Load the task a config names; `task.corpus_path` replaces its corpus with the file's facts."""
    data = get_loader(cfg.name)(cfg)
    if cfg.corpus_path:
        from .corpus import read_corpus

        data.facts = read_corpus(cfg.corpus_path)
        data.corpus = list(data.facts)
    return data
