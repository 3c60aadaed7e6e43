"""Data files as streams of (location, row): JSONL, JSON arrays, CSV/TSV and parquet.

Every error is a `TaskDataError` naming `file:line` (for parquet files and hub splits the number is the 1-based row).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import CowestError


# Keys under which a whole-file JSON object holds its rows beside other keys ({"version": ..., "data": [...]}).
WRAPPER_KEYS = ("data", "rows", "examples", "questions", "items", "records", "instances", "train", "test")


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
    """A JSON array of objects, with each object's line; an object holding one such array ({"data": [...]}) is
    read as that array, any other file starting with '{' as JSONL."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TaskDataError(f"{path}:{line}: not valid UTF-8") from None
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] != "[":
        start = _wrapped_array(text, start)
        if start is None:
            yield from _iter_jsonl(path)
            return
    yield from _iter_array(path, text, start)


def _wrapped_array(text: str, start: int) -> int | None:
    """Where the one list of row objects starts in a whole-file object ({"data": [{...}, ...]}); None otherwise."""
    if text[start:start + 1] != "{":
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None  # JSONL: one object a line
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) != 1 or (len(obj) > 1 and lists[0].lower() not in WRAPPER_KEYS):
        return None  # a row of its own that happens to hold a list
    m = re.search(rf"{re.escape(json.dumps(lists[0]))}\s*:\s*\[", text)
    return m.end() - 1 if m else None


def _iter_array(path: Path, text: str, start: int) -> Iterator[tuple[Loc, Row]]:
    """The objects of the JSON array opening at `start`, each with the line it starts on."""
    decoder, ws = json.JSONDecoder(), re.compile(r"\s*")
    pos, line, last = start + 1, text.count("\n", 0, start) + 1, start
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
    header = _next_record(reader, f"{path}:1: invalid CSV header")
    if header is None:
        return
    header = [h.strip() for h in header]
    while True:
        start = reader.line_num + 1
        rec = _next_record(reader, f"{path}:{start}: invalid CSV")
        if rec is None:
            return
        if not rec or not any(c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise TaskDataError(f"{path}:{start}: expected {len(header)} columns, got {len(rec)}")
        yield Loc(str(path), start), dict(zip(header, rec))


def _next_record(reader: Iterator[list[str]], error: str) -> list[str] | None:
    """The reader's next record, None at the end; a CSV error is raised as `error: <reason>`."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise TaskDataError(f"{error}: {e}") from None


def _iter_parquet(path: Path) -> Iterator[tuple[Loc, Row]]:
    import pyarrow.parquet as pq  # comes with datasets; only needed for parquet files

    no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            no += 1
            yield Loc(str(path), no), row


def iter_text_lines(path: str | Path) -> Iterator[tuple[Loc, str]]:
    """Stream (location, stripped line) of a plain-text file's non-blank lines."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    return ((Loc(str(path), no), line.strip()) for no, line in _lines(path) if line.strip())


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
