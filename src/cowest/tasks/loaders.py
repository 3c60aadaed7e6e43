"""Built-in task loaders: MMLU, MedMCQA, IfQA, ProsocialDialog, OpenAI-evals MCQ files, generic JSONL/CSV.

Every row error is a `TaskDataError` naming `file:line: field 'x': ...` (for parquet files and hub splits the
number is the 1-based row). Splits are deterministic given `TaskConfig.seed`; see `split_examples`.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..config import TaskConfig
from ..errors import CowestError
from . import formulary  # noqa: F401  # registers the synthetic "formulary" task
from .base import LETTERS, Example, TaskData, TaskType
from .registry import register
from .types import TYPES

log = logging.getLogger(__name__)


class TaskDataError(CowestError, ValueError):
    """A data file or row that cannot be used; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Loc:
    """Where a row came from: a file (or hub split) and its 1-based line (or row)."""

    source: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


Row = dict[str, Any]
Rows = Iterable[tuple[Loc, Row]]
RowParser = Callable[[Loc, Row], Example | None]  # None: a row to skip silently


def _field_error(loc: Loc, field: str, msg: str) -> TaskDataError:
    return TaskDataError(f"{loc}: field '{field}': {msg}")


# ---------------------------------------------------------------- reading files


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line), streamed; a UTF-8 error names its line."""
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TaskDataError(f"{path}:{no}: not valid UTF-8 (byte {e.start + 1} of the line)") from None
            yield no, (line.removeprefix("\ufeff") if no == 1 else line)


def _iter_jsonl(path: Path) -> Iterator[tuple[Loc, Row]]:
    for no, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskDataError(f"{path}:{no}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise TaskDataError(f"{path}:{no}: expected a JSON object, got {type(obj).__name__}")
        yield Loc(str(path), no), obj


def _iter_json(path: Path) -> Iterator[tuple[Loc, Row]]:
    """A JSON array of objects, with each object's line; a file starting with '{' is read as JSONL."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TaskDataError(f"{path}:{line}: not valid UTF-8") from None
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] != "[":
        yield from _iter_jsonl(path)
        return
    decoder, ws = json.JSONDecoder(), re.compile(r"\s*")
    pos, line, last = start + 1, 1, 0
    while True:
        pos = ws.match(text, pos).end()
        if text.startswith("]", pos):
            return
        line += text.count("\n", last, pos)
        last = pos
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise TaskDataError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise TaskDataError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}")
        yield Loc(str(path), line), obj
        pos = ws.match(text, pos).end()
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            bad = text.count("\n", 0, pos) + 1
            raise TaskDataError(f"{path}:{bad}: invalid JSON: expected ',' or ']' after an array item")


def _iter_csv(path: Path, delimiter: str) -> Iterator[tuple[Loc, Row]]:
    """CSV rows as dicts; the line is where the record starts (records may span lines)."""
    reader = csv.reader((line for _, line in _lines(path)), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise TaskDataError(f"{path}:1: invalid CSV header: {e}") from None
    header = [h.strip() for h in header]
    while True:
        start = reader.line_num + 1
        try:
            rec = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise TaskDataError(f"{path}:{start}: invalid CSV: {e}") from None
        if not rec or not any(c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise TaskDataError(f"{path}:{start}: expected {len(header)} columns, got {len(rec)}")
        yield Loc(str(path), start), dict(zip(header, rec))


def _iter_parquet(path: Path) -> Iterator[tuple[Loc, Row]]:
    import pyarrow.parquet as pq  # comes with datasets; only needed for parquet files

    no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            no += 1
            yield Loc(str(path), no), row


def iter_rows(path: str | Path, delimiter: str | None = None) -> Iterator[tuple[Loc, Row]]:
    """Stream (location, row) from a .jsonl/.json/.csv/.tsv/.parquet file."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _iter_jsonl(path)
    if suffix == ".json":
        return _iter_json(path)
    if suffix in (".csv", ".tsv"):
        return _iter_csv(path, delimiter or ("\t" if suffix == ".tsv" else ","))
    if suffix == ".parquet":
        return _iter_parquet(path)
    raise TaskDataError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .csv, .tsv or .parquet)")


# ---------------------------------------------------------------- field helpers


def _text(row: Row, key: str, loc: Loc, required: bool = True) -> str | None:
    """A non-empty string field (numbers are accepted as text)."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _field_error(loc, key, "missing" if key not in row else "empty")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _field_error(loc, key, f"expected text, got {type(value).__name__} {_short(value)}")
    return str(value).strip()


def _text_list(
    row: Row, key: str, loc: Loc, sep: str | None = None, required: bool = True, drop_empty: bool = False
) -> list[str]:
    """A list of strings: a list, a JSON/Python list literal (CSV cells), or text split on `sep`.

    Empty items are an error unless `drop_empty`.
    """
    value = row.get(key)
    if isinstance(value, str):
        s = value.strip()
        value = _list_literal(s) if s.startswith("[") else None
        if value is None and s:
            value = s.split(sep) if sep else [s]
    if value is None or value == [] or value == "":
        if required:
            raise _field_error(loc, key, "missing" if key not in row else "empty")
        return []
    if not isinstance(value, (list, tuple)):
        raise _field_error(loc, key, f"expected a list of strings, got {type(value).__name__} {_short(value)}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise _field_error(loc, key, f"item {i + 1}: expected text, got {type(item).__name__}")
        text = str(item).strip()
        if not text and not drop_empty:
            raise _field_error(loc, key, f"item {i + 1} is empty")
        if text:
            out.append(text)
    if required and not out:
        raise _field_error(loc, key, "empty")
    return out


def _list_literal(s: str) -> list | None:
    """A list serialised into a text cell (JSON or Python repr); None when `s` is not one."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(s)
        except (ValueError, SyntaxError):  # JSONDecodeError is a ValueError
            continue
        return value if isinstance(value, list) else None
    return None


def _short(value: Any, n: int = 40) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _norm(text: str) -> str:
    """Comparison form: case-, punctuation-, underscore- and whitespace-insensitive."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _qkey(question: str) -> str:
    return " ".join(question.casefold().split())


def _resolve_mc_gold(value: Any, options: list[str], loc: Loc, field: str, index_base: int = 0) -> str:
    """A gold given as a letter, a 0-based (or `index_base`) index, or the option text -> the letter."""
    n = len(options)
    desc = f"a letter A-{LETTERS[n - 1]}, an index {index_base}-{index_base + n - 1} or an option text"
    if isinstance(value, bool) or value is None:
        raise _field_error(loc, field, f"expected {desc}, got {_short(value)}")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        i = int(value) - index_base
        if 0 <= i < n:
            return LETTERS[i]
        raise _field_error(loc, field, f"expected {desc}, got {_short(value)}")
    if not isinstance(value, str):
        raise _field_error(loc, field, f"expected {desc}, got {type(value).__name__}")
    s = value.strip()
    m = re.fullmatch(r"\(?([A-Za-z])[).]?", s)
    if m and m.group(1).upper() in LETTERS[:n]:
        return m.group(1).upper()
    normed = [_norm(o) for o in options]
    if _norm(s) in normed:
        return LETTERS[normed.index(_norm(s))]
    m = re.match(r"\(?([A-Za-z])[).:]\s+(.+)$", s, re.DOTALL)  # "c) Atrophy"
    if m and m.group(1).upper() in LETTERS[:n]:
        i = LETTERS.index(m.group(1).upper())
        if _norm(m.group(2)) != normed[i]:
            raise _field_error(loc, field, f"{_short(s)} does not match option {LETTERS[i]} {_short(options[i])}")
        return LETTERS[i]
    if re.fullmatch(r"-?\d+", s):
        i = int(s) - index_base
        if 0 <= i < n:
            return LETTERS[i]
    raise _field_error(loc, field, f"expected {desc}, got {_short(s)}")


# ---------------------------------------------------------------- splitting


def dedupe(examples: Iterable[Example]) -> list[Example]:
    """Drop exact repeats (same normalised question, options and gold), keeping the first."""
    seen: set[tuple] = set()
    out = []
    for e in examples:
        key = (_qkey(e.question), tuple(_norm(o) for o in e.options or ()), _norm(e.gold))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def split_examples(examples: list[Example], cfg: TaskConfig) -> tuple[list[Example], list[Example]]:
    """Seeded train/test split that never puts one question in both, then the n_train / n_test caps.

    Exact repeats are dropped first; rows sharing a question text but not their options (MMLU has many
    "Which of the following is true?") are kept and always land in the same split.
    """
    if not 0.0 <= cfg.test_fraction <= 1.0:
        raise TaskDataError(f"task.test_fraction must be in [0, 1], got {cfg.test_fraction}")
    examples = dedupe(examples)
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(_qkey(e.question), []).append(e)
    order = list(groups.values())
    random.Random(cfg.seed).shuffle(order)
    target = round(cfg.test_fraction * len(examples))
    train: list[Example] = []
    test: list[Example] = []
    for group in order:
        (test if len(test) < target else train).extend(group)
    return _cap(train, cfg.n_train), _cap(test, cfg.n_test)


def _cap(examples: list[Example], n: int | None) -> list[Example]:
    return examples if n is None else examples[: max(n, 0)]


def _given_splits(
    train: list[Example], test: list[Example], cfg: TaskConfig
) -> tuple[list[Example], list[Example]]:
    """Source-provided splits: dedupe, drop train questions that are in test, seeded samples for the caps."""
    test = dedupe(test)
    test_q = {_qkey(e.question) for e in test}
    train = [e for e in dedupe(train) if _qkey(e.question) not in test_q]
    return _sample(train, cfg.n_train, cfg.seed), _sample(test, cfg.n_test, cfg.seed)


def _sample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """The first n of a seeded shuffle (each split its own generator, so one cap never moves the other)."""
    if n is None:
        return examples
    order = list(examples)
    random.Random(seed).shuffle(order)
    return order[: max(n, 0)]


# ---------------------------------------------------------------- shared loading flow


def _parse_rows(rows: Rows, parse: RowParser, cfg: TaskConfig) -> list[Example]:
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

    ds = datasets.load_dataset(cfg.hub, cfg.options.get("hub_config"), **cfg.options.get("hub_kwargs", {}))
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


def _load(
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
        train = _parse_rows(iter_rows(cfg.path, delim), parse, cfg)
        if test_path := cfg.test_path:
            test = _parse_rows(iter_rows(test_path, delim), parse, cfg)
    elif cfg.hub:
        train_rows, test_rows = _hub_rows(cfg, hub_test_split)
        train = _parse_rows(train_rows, parse, cfg)
        test = _parse_rows(test_rows, parse, cfg) if test_rows is not None else None
    elif default_asset:
        train = _parse_rows(iter_rows(_asset(default_asset)), parse, cfg)
    else:
        raise TaskDataError(f"task {cfg.name!r} needs task.path (a local file) or task.hub (a Hugging Face dataset id)")
    if prepare:
        prepare(train + (test or []))
    if cfg.subjects:
        train = _filter_subjects(train, cfg)
        test = _filter_subjects(test, cfg) if test is not None else None
    if not train and not test:
        raise TaskDataError(f"task {cfg.name!r}: no examples loaded")
    train, test = split_examples(train, cfg) if test is None else _given_splits(train, test, cfg)
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


def _row_id(row: Row, loc: Loc, prefix: str, key: str = "id") -> str:
    value = row.get(key)
    return str(value) if value not in (None, "") else f"{prefix}-{loc.line}"


# ---------------------------------------------------------------- MMLU


def _mmlu_row(loc: Loc, row: Row) -> Example | None:
    if row.get("question") == "question" and row.get("answer_a") == "answer_a":
        return None  # stray CSV header rows inside the packaged file (2 of its 14,044 lines)
    options = [_text(row, f"answer_{k}", loc) for k in "abcd"]
    gold = _text(row, "correct_answer", loc)
    if len(gold) != 1 or gold.upper() not in "ABCD":
        raise _field_error(loc, "correct_answer", f"expected a letter A-D, got {_short(gold)}")
    topic = _text(row, "topic", loc)
    return Example(
        id=f"mmlu-{loc.line}",
        question=_text(row, "question", loc),
        options=options,
        gold=gold.upper(),
        metadata={"subject": topic, "source": str(loc)},
    )


@register("mmlu")
def load_mmlu(cfg: TaskConfig) -> TaskData:
    """MMLU (the packaged test split, split here into train/test); `subjects` filters its `topic`."""
    return _load(cfg, TYPES["multiple_choice"], _mmlu_row, default_asset="mmlu")


# ---------------------------------------------------------------- OpenAI evals MCQ samples

_OPTION_LINE = re.compile(r"^\s*\(?([A-Za-z])\s*[).:]\s*(.*)$")
_SUBJECT = re.compile(r"^Subject:\s*(.+?)\s*$")


def parse_mcq_prompt(content: str, unlettered: bool = False) -> tuple[str | None, str, list[str]] | None:
    """(subject, question, options) from an evals user message ending in lettered options; None if it has none.

    With `unlettered`, a message without lettered options may end in short bare option lines instead
    (MoralExceptQA: "...acceptable?\nYes\nNo\nAnswer:").
    """
    lines = content.strip().split("\n")
    while lines and (not lines[-1].strip() or lines[-1].strip().lower() in ("answer:", "answer")):
        lines.pop()
    if unlettered and not (lines and _OPTION_LINE.match(lines[-1])):
        return _parse_unlettered(lines)
    options: list[str] = []
    i = len(lines) - 1
    # Walk up the trailing block of option lines; it must read A, B, C, ... top-down.
    while i >= 0 and (m := _OPTION_LINE.match(lines[i])):
        options.insert(0, m.group(2).strip())
        letter = m.group(1).upper()
        i -= 1
        if letter == "A":
            break
    expected = [_OPTION_LINE.match(ln).group(1).upper() for ln in lines[i + 1:]] if options else []
    if len(options) < 2 or expected != list(LETTERS[: len(options)]):
        return None
    for j, (letter, opt) in enumerate(zip(LETTERS, options)):  # LogiQA repeats the label: "A. A.Zhao ..."
        options[j] = re.sub(rf"^{letter}\.\s*", "", opt) if opt.startswith(f"{letter}.") else opt
    body = lines[: i + 1]
    subject = None
    if body and (m := _SUBJECT.match(body[0])):
        subject, body = m.group(1), body[1:]
    question = "\n".join(body).strip()
    if not question or not all(options):
        return None
    return subject, question, options


def _parse_unlettered(lines: list[str]) -> tuple[str | None, str, list[str]] | None:
    """Trailing run of 2-10 short lines as the options, the rest as the question."""
    i = len(lines)
    while i > 1 and 0 < len(lines[i - 1].strip()) <= _UNLETTERED_MAX and len(lines) - i < 10:
        i -= 1
    options = [ln.strip() for ln in lines[i:]]
    question = "\n".join(lines[:i]).strip()
    if len(options) < 2 or not question or len({o.casefold() for o in options}) != len(options):
        return None
    return None, question, options


_UNLETTERED_MAX = 40  # characters: longer trailing lines are question text, not bare options


def _evals_row(prefix: str) -> RowParser:
    def parse(loc: Loc, row: Row) -> Example:
        messages = row.get("input")
        if isinstance(messages, str):
            content, system = messages, None
        elif isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            users = [m for m in messages if m.get("role") == "user"]
            if not users or not isinstance(users[-1].get("content"), str):
                raise _field_error(loc, "input", "no user message with text")
            content = users[-1]["content"]
            system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        else:
            raise _field_error(loc, "input", f"expected a list of chat messages, got {_short(messages)}")
        parsed = parse_mcq_prompt(content, unlettered=isinstance(row.get("ideal"), str) and len(row["ideal"]) > 1)
        if parsed is None:
            raise _field_error(loc, "input", "no lettered options (a) ..., b) ... or A. ..., B. ...) at its end")
        subject, question, options = parsed
        ideal = row.get("ideal")
        if isinstance(ideal, list) and ideal:
            ideal = ideal[0]
        gold = _resolve_mc_gold(ideal, options, loc, "ideal")
        meta: dict[str, Any] = {"source": str(loc)}
        if subject:
            meta["subject"] = subject
        if system:
            meta["system"] = system
        return Example(id=f"{prefix}-{loc.line}", question=question, options=options, gold=gold, metadata=meta)

    return parse


@register("evals_mcq")
def load_evals_mcq(cfg: TaskConfig) -> TaskData:
    """An OpenAI-evals samples file of lettered MCQs (us_tort_law, medmcqa, quartz, logiqa): task.path or options.asset."""
    prefix = cfg.options.get("asset") or (Path(cfg.path).parent.name if cfg.path else "evals")
    return _load(cfg, TYPES["multiple_choice"], _evals_row(prefix), default_asset=cfg.options.get("asset"))


# ---------------------------------------------------------------- MedMCQA


def _medmcqa_row(cfg: TaskConfig) -> RowParser:
    evals = _evals_row("medmcqa")
    base = int(cfg.options.get("cop_base", 0))  # the original GitHub release numbers options 1-4

    def parse(loc: Loc, row: Row) -> Example:
        if "input" in row:  # the OpenAI evals sample format
            return evals(loc, row)
        options = [_text(row, k, loc) for k in ("opa", "opb", "opc", "opd")]
        cop = row.get("cop")
        if isinstance(cop, str) and re.fullmatch(r"\s*\d+\s*", cop):
            cop = int(cop)
        if isinstance(cop, bool) or not isinstance(cop, int) or not base <= cop <= base + 3:
            raise _field_error(loc, "cop", f"expected an integer {base}-{base + 3}, got {_short(cop)}")
        meta: dict[str, Any] = {"source": str(loc)}
        for key, name in (("subject_name", "subject"), ("topic_name", "topic"), ("choice_type", "choice_type")):
            if value := _text(row, key, loc, required=False):
                meta[name] = value
        return Example(
            id=_row_id(row, loc, "medmcqa"),
            question=_text(row, "question", loc),
            options=options,
            gold=LETTERS[cop - base],
            explanation=_text(row, "exp", loc, required=False),
            metadata=meta,
        )

    return parse


@register("medmcqa")
def load_medmcqa(cfg: TaskConfig) -> TaskData:
    """MedMCQA: the packaged evals sample, a local file in either schema, or the hub (test = its validation split)."""
    # The hub's test split has no answers (cop = -1), so its validation split serves as test.
    return _load(cfg, TYPES["multiple_choice"], _medmcqa_row(cfg), default_asset="medmcqa", hub_test_split="validation")


# ---------------------------------------------------------------- IfQA


def _ifqa_row(loc: Loc, row: Row) -> Example:
    key = "answers" if "answers" in row or "answer" not in row else "answer"
    answers = _text_list(row, key, loc)
    context = row.get("context")
    if isinstance(context, str):
        context = [context]
    elif context is not None and not (isinstance(context, list) and all(isinstance(c, str) for c in context)):
        raise _field_error(loc, "context", f"expected a list of strings, got {_short(context)}")
    meta: dict[str, Any] = {"source": str(loc)}
    if context:
        meta["context"] = context
    return Example(
        id=_row_id(row, loc, "ifqa", key="idx"),
        question=_text(row, "question", loc),
        gold=answers[0],
        answers=answers,
        explanation=_text(row, "explanation", loc, required=False),
        metadata=meta,
    )


@register("ifqa")
def load_ifqa(cfg: TaskConfig) -> TaskData:
    """IfQA counterfactual QA: the original JSON list (or JSONL) from task.path, or task.hub."""
    return _load(cfg, TYPES["short_answer"], _ifqa_row)


# ---------------------------------------------------------------- ProsocialDialog

PROSOCIAL_LABELS = {
    "__casual__": "casual",
    "__possibly_needs_caution__": "possibly needs caution",
    "__probably_needs_caution__": "probably needs caution",
    "__needs_caution__": "needs caution",
    "__needs_intervention__": "needs intervention",
}
_PROSOCIAL_BY_NORM = {_norm(k): v for k, v in PROSOCIAL_LABELS.items()}


def _prosocial_row(loc: Loc, row: Row) -> Example:
    raw = _text(row, "safety_label", loc)
    label = _PROSOCIAL_BY_NORM.get(_norm(raw))
    if label is None:
        raise _field_error(loc, "safety_label", f"expected one of {', '.join(PROSOCIAL_LABELS)}, got {_short(raw)}")
    rots = _text_list(row, "rots", loc, required=False, drop_empty=True)
    meta: dict[str, Any] = {"source": str(loc)}
    for key in ("response", "dialogue_id", "response_id", "source"):
        if row.get(key) not in (None, ""):
            meta["dataset_source" if key == "source" else key] = row[key]
    if row.get("safety_annotations") is not None:
        meta["safety_annotations"] = _text_list(row, "safety_annotations", loc, required=False, drop_empty=True)
    has_ids = row.get("dialogue_id") not in (None, "") and row.get("response_id") not in (None, "")
    return Example(
        id=f"{row['dialogue_id']}-{row['response_id']}" if has_ids else f"prosocial-{loc.line}",
        question=_text(row, "context", loc),
        options=list(PROSOCIAL_LABELS.values()),
        gold=label,
        explanation=" ".join(rots) or None,
        metadata=meta,
    )


@register("prosocial")
def load_prosocial(cfg: TaskConfig) -> TaskData:
    """ProsocialDialog safety labels (5 classes) from task.path or task.hub (allenai/prosocial-dialog)."""
    return _load(cfg, TYPES["classification"], _prosocial_row)


# ---------------------------------------------------------------- generic JSONL / CSV


def _generic_row(cfg: TaskConfig, prefix: str, labels: list[str] | None) -> RowParser:
    if cfg.type is None:
        raise TaskDataError(f"task {cfg.name!r}: task.type is required (multiple_choice, short_answer, classification)")
    col = {k: cfg.fields.get(k, k) for k in ("id", "question", "options", "gold", "answers", "explanation")}
    unknown = set(cfg.fields) - set(col)
    if unknown:
        raise TaskDataError(f"task.fields: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(col)}")
    opt_cols = [c.strip() for c in col["options"].split(",")] if "," in col["options"] else None
    sep = cfg.options.get("options_sep", "|")
    answers_sep = cfg.options.get("answers_sep", "|")
    index_base = int(cfg.options.get("index_base", 0))
    kind = cfg.type

    def parse(loc: Loc, row: Row) -> Example:
        question = _text(row, col["question"], loc)
        if opt_cols:
            options: list[str] | None = [_text(row, c, loc) for c in opt_cols]
        else:
            options = _text_list(row, col["options"], loc, sep=sep, required=kind == "multiple_choice") or None
        answers = _text_list(row, col["answers"], loc, sep=answers_sep, required=False)
        gold_value = row.get(col["gold"])
        if kind == "short_answer":
            gold = _text(row, col["gold"], loc, required=not answers) or answers[0]
            answers = answers or [gold]
        elif kind == "multiple_choice":
            assert options is not None
            if len(options) > len(LETTERS):
                raise _field_error(loc, col["options"], f"at most {len(LETTERS)} options, got {len(options)}")
            if gold_value is None or gold_value == "":
                raise _field_error(loc, col["gold"], "missing" if col["gold"] not in row else "empty")
            gold = _resolve_mc_gold(gold_value, options, loc, col["gold"], index_base)
        else:
            label_set = options or labels
            raw = _text(row, col["gold"], loc)
            if label_set:
                match = [lb for lb in label_set if _norm(lb) == _norm(raw)]
                if not match:
                    raise _field_error(loc, col["gold"], f"{_short(raw)} is not one of the labels {label_set}")
                raw = match[0]
            gold, options = raw, label_set
        return Example(
            id=_row_id(row, loc, prefix, key=col["id"]),
            question=question,
            options=options,
            gold=gold,
            answers=answers if kind == "short_answer" else [],
            explanation=_text(row, col["explanation"], loc, required=False),
            metadata={"source": str(loc)},
        )

    return parse


def _load_generic(cfg: TaskConfig) -> TaskData:
    if not cfg.path:
        raise TaskDataError(f"task {cfg.name!r}: task.path is required")
    labels = cfg.options.get("labels")
    parse = _generic_row(cfg, Path(cfg.path).stem, labels)

    def fill_labels(examples: list[Example]) -> None:
        # No label set given: every gold label in the file (first spelling of each, sorted) becomes the
        # options of rows without any, and golds take that spelling.
        canon: dict[str, str] = {}
        for e in examples:
            canon.setdefault(_norm(e.gold), e.gold)
        found = sorted(canon.values(), key=_norm)
        for e in examples:
            if not e.options:
                e.options, e.gold = found, canon[_norm(e.gold)]

    prepare = fill_labels if cfg.type == "classification" and not labels else None
    return _load(cfg, TYPES[cfg.type], parse, prepare=prepare)  # type: ignore[index]  # type checked above


@register("jsonl")
def load_jsonl(cfg: TaskConfig) -> TaskData:
    """A generic JSONL (or JSON array) file; task.fields maps id/question/options/gold/answers/explanation."""
    return _load_generic(cfg)


@register("csv")
def load_csv(cfg: TaskConfig) -> TaskData:
    """A generic CSV/TSV file; options may be one delimited column or several ('opa,opb,opc,opd')."""
    return _load_generic(cfg)


# ---------------------------------------------------------------- several sources pooled


@register("mix")
def load_mix(cfg: TaskConfig) -> TaskData:
    """Several sources of one task type (task.options.sources: task blocks) pooled, then split here by question."""
    from pydantic import ValidationError

    from .registry import load_task

    sources = cfg.options.get("sources")
    if not isinstance(sources, list) or not sources:
        raise TaskDataError(
            "task mix: task.options.sources must be a list of task blocks, "
            "e.g. [{name: medmcqa}, {name: mmlu, subjects: [anatomy]}]"
        )
    pooled: list[Example] = []
    kinds: dict[str, TaskType] = {}
    for i, src in enumerate(sources):
        where = f"task.options.sources[{i}]"
        if not isinstance(src, dict) or src.get("name") == "mix":
            raise TaskDataError(f"{where}: expected a task block such as {{name: medmcqa}} (not another mix)")
        try:
            # Each source whole (no split of its own): the split below keeps every question on one side.
            scfg = TaskConfig.model_validate({**src, "test_fraction": 0.0, "n_train": None, "n_test": None})
        except ValidationError as e:
            err = e.errors()[0]
            raise TaskDataError(f"{where}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        data = load_task(scfg)
        kinds[data.type.name] = data.type
        pooled += [
            e.model_copy(update={"metadata": {**e.metadata, "source_task": scfg.name}}) for e in data.train + data.test
        ]
    if len(kinds) > 1:
        raise TaskDataError(f"task mix: sources have different task types ({', '.join(sorted(kinds))})")
    task_type = next(iter(kinds.values()))
    train, test = split_examples(pooled, cfg)
    return TaskData(name="mix", type=task_type, train=train, test=test, corpus=build_corpus(train, task_type))
