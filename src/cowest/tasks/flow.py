"""The load flow every file-based task shares: rows from a file, the hub or a packaged asset -> parsed examples ->
subjects -> splits -> retrieval corpus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..config import TaskConfig
from .base import Example, TaskData, TaskType
from .readers import Loc, Row, Rows, TaskDataError, iter_rows
from .splits import given_splits, split_examples

log = logging.getLogger(__name__)

RowParser = Callable[[Loc, Row], Example | None]  # None: a row to skip silently

# What `load_source` reads, for the descriptions of the loaders built on it (`cowest tasks --describe`).
SOURCE_KNOBS: dict[str, str] = {
    "task.path": "a local file (.jsonl, .json, .csv, .tsv, .parquet) in the source's schema; overrides the hub and "
                 "any packaged copy",
    "task.test_path": "a second local file: the test split (n_train / n_test become seeded samples)",
    "task.hub": "a Hugging Face dataset id (online users); options hub_config, hub_kwargs, train_split, test_split",
    "task.options.on_error": "raise (default) or skip: malformed rows are logged and dropped",
}


def parse_rows(rows: Rows, parse: RowParser, cfg: TaskConfig) -> list[Example]:
    """Parse rows; with `options.on_error: skip` malformed rows are logged and dropped instead of raising."""
    skip = cfg.options.get("on_error", "raise") == "skip"
    out: list[Example] = []
    bad: list[str] = []
    for loc, row in rows:
        try:
            ex = parse(loc, row)
        except TaskDataError as e:
            if not skip:
                raise
            bad.append(str(e))
            continue
        if ex is not None:
            out.append(ex)
    if bad:
        log.warning("skipped %d malformed rows, first: %s", len(bad), bad[0])
    return out


def _asset(name: str) -> Path:
    from .. import assets  # imported lazily: only the offline default paths need it

    return Path(assets.data_file(name))


def _hub_rows(cfg: TaskConfig, test_split: str) -> tuple[Rows, Rows | None]:
    """Train and test rows of a Hugging Face dataset (online users); test None when it has no test split."""
    import datasets  # only here: the offline paths never touch the hub

    from ..models.hub import offline, probe

    off = offline()  # the environment's switch, which datasets read once at import
    found = None if off else probe(cfg.hub, "dataset")
    if found and found[0] != "unreachable":
        raise TaskDataError(f"task.hub: {cfg.hub!r}{' ' if found[0] == 'gated' else ': '}{found[1]}")
    was = datasets.config.HF_HUB_OFFLINE
    # Unreachable: only a cached copy can load, so go straight to it rather than through datasets' retries (20 s)
    datasets.config.HF_HUB_OFFLINE = was or off or found is not None
    try:
        ds = datasets.load_dataset(cfg.hub, cfg.options.get("hub_config"), **cfg.options.get("hub_kwargs", {}))
    except (FileNotFoundError, ConnectionError) as e:
        why = found[1] if found else "the Hub is off (HF_HUB_OFFLINE)"
        raise TaskDataError(f"task.hub: {cfg.hub!r} is not cached here and {why}; run once where the Hub is "
                            "reachable (it is then cached), or give task.path") from e
    finally:
        datasets.config.HF_HUB_OFFLINE = was
    train_name = cfg.options.get("train_split", "train")
    if train_name not in ds:
        raise TaskDataError(f"{cfg.hub}: no split {train_name!r}; splits: {', '.join(ds)}")
    wanted = cfg.options.get("test_split")
    candidates = [wanted] if wanted else [test_split, "test", "validation", "dev"]
    test_name = next((s for s in candidates if s in ds and s != train_name), None)
    if wanted and test_name is None:
        raise TaskDataError(f"{cfg.hub}: no split {wanted!r}; splits: {', '.join(ds)}")

    def rows(split: str) -> Rows:
        return ((Loc(f"{cfg.hub}[{split}]", i), dict(r)) for i, r in enumerate(ds[split], 1))

    return rows(train_name), (rows(test_name) if test_name else None)


def load_source(
    cfg: TaskConfig,
    task_type: TaskType,
    parse: RowParser,
    default_asset: str | None = None,
    hub_test_split: str = "test",
    prepare: Callable[[list[Example]], None] | None = None,
) -> TaskData:
    """cfg.path (plus cfg.test_path), else cfg.hub, else the packaged asset; then subjects, splits, corpus.

    `prepare` sees every parsed example (train and any given test) before filtering and splitting.
    """
    test: list[Example] | None = None
    if cfg.path:
        delim = cfg.options.get("delimiter")
        train = parse_rows(iter_rows(cfg.path, delim), parse, cfg)
        if test_path := cfg.test_path:
            test = parse_rows(iter_rows(test_path, delim), parse, cfg)
    elif cfg.hub:
        train_rows, test_rows = _hub_rows(cfg, hub_test_split)
        train = parse_rows(train_rows, parse, cfg)
        test = parse_rows(test_rows, parse, cfg) if test_rows is not None else None
    elif default_asset:
        train = parse_rows(iter_rows(_asset(default_asset)), parse, cfg)
    else:
        raise TaskDataError(f"task {cfg.name!r} needs task.path (a local file) or task.hub (a Hugging Face dataset id)")
    if prepare:
        prepare(train + (test or []))
    if cfg.subjects:
        train = _filter_subjects(train, cfg)
        test = _filter_subjects(test, cfg) if test is not None else None
    if not train and not test:
        source = cfg.path or cfg.hub or default_asset
        why = " (every row was skipped as malformed, on_error: skip)" if cfg.options.get("on_error") == "skip" else ""
        raise TaskDataError(f"task {cfg.name!r}: {source}: no examples{why}" + (
            f" (subjects {cfg.subjects} matched none)" if cfg.subjects else ""))
    train, test = split_examples(train, cfg) if test is None else given_splits(train, test, cfg)
    return TaskData(name=cfg.name, type=task_type, train=train, test=test, corpus=build_corpus(train, task_type))


def _subject_key(s: str) -> str:
    return " ".join(s.casefold().replace("_", " ").split())


def _filter_subjects(examples: list[Example], cfg: TaskConfig) -> list[Example]:
    """Keep the examples whose metadata 'subject' is in cfg.subjects ('clinical_knowledge' = 'clinical knowledge')."""
    have = {_subject_key(s): s for e in examples if (s := e.metadata.get("subject"))}
    if not have:
        raise TaskDataError(f"task {cfg.name!r}: its data has no subjects, so task.subjects cannot be used")
    wanted = {_subject_key(s) for s in cfg.subjects or []}
    unknown = sorted(wanted - set(have))
    if unknown:
        valid = ", ".join(sorted(k.replace(" ", "_") for k in have))
        raise TaskDataError(f"task {cfg.name!r}: unknown subject(s) {', '.join(unknown)}; valid: {valid}")
    return [e for e in examples if _subject_key(e.metadata.get("subject") or "") in wanted]


def build_corpus(train: list[Example], task_type: TaskType) -> list[str]:
    """Retrieval passages: each training question with its answer, explanation and any context."""
    out = []
    for e in train:
        parts = [e.question]
        if opts := task_type.format_options(e):
            parts.append(opts)
        parts.append(f"Answer: {task_type.format_answer(e)}")
        if e.explanation:
            parts.append(e.explanation)
        ctx = e.metadata.get("context")
        if ctx:
            parts.extend(ctx if isinstance(ctx, list) else [str(ctx)])
        out.append("\n".join(parts))
    return out
