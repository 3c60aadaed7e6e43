"""A task's own fact corpus (`task.corpus_path`): plain text, one fact per line, or JSONL with a `text` field."""

from __future__ import annotations

from pathlib import Path

from .fields import field_text
from .readers import TaskDataError, iter_rows, iter_text_lines

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".text", ".md", "")


def read_corpus(path: str | Path) -> list[str]:
    """The facts of a corpus file, in file order; a bad line names the file, the line and the field."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        facts = [field_text(row, "text", loc) for loc, row in iter_rows(path)]
    elif suffix in TEXT_SUFFIXES:
        facts = [line for _, line in iter_text_lines(path)]
    else:
        raise TaskDataError(f"{path}: task.corpus_path: unsupported file type {suffix!r} (use .txt, one fact per "
                            "line, or .jsonl with a 'text' field)")
    if not facts:
        raise TaskDataError(f"{path}: task.corpus_path: the file holds no facts")
    return [str(f) for f in facts]
