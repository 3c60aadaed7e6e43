"""Row fields coerced to what an `Example` needs; every error names `file:line: field 'x': ...`."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from .base import LETTERS
from .readers import Loc, Row, TaskDataError


def field_error(loc: Loc, field: str, msg: str) -> TaskDataError:
    """The error for one field of one row."""
    return TaskDataError(f"{loc}: field '{field}': {msg}")


def short(value: Any, n: int = 40) -> str:
    """`repr(value)` cut to `n` characters, for error messages."""
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def norm(text: str) -> str:
    """Comparison form: case-, punctuation-, underscore- and whitespace-insensitive."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def question_key(question: str) -> str:
    """A question's identity for dedupe and splits: case- and whitespace-insensitive."""
    return " ".join(question.casefold().split())


def field_text(row: Row, key: str, loc: Loc, required: bool = True) -> str | None:
    """A non-empty string field (numbers are accepted as text)."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise field_error(loc, key, "missing" if key not in row else "empty")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise field_error(loc, key, f"expected text, got {type(value).__name__} {short(value)}")
    return str(value).strip()


def field_list(
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
            raise field_error(loc, key, "missing" if key not in row else "empty")
        return []
    if not isinstance(value, (list, tuple)):
        raise field_error(loc, key, f"expected a list of strings, got {type(value).__name__} {short(value)}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise field_error(loc, key, f"item {i + 1}: expected text, got {type(item).__name__}")
        text = str(item).strip()
        if not text and not drop_empty:
            raise field_error(loc, key, f"item {i + 1} is empty")
        if text:
            out.append(text)
    if required and not out:
        raise field_error(loc, key, "empty")
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


def mc_gold(value: Any, options: list[str], loc: Loc, field: str, index_base: int = 0) -> str:
    """A gold given as a letter, a 0-based (or `index_base`) index, or the option text -> the letter."""
    n = len(options)
    desc = f"a letter A-{LETTERS[n - 1]}, an index {index_base}-{index_base + n - 1} or an option text"
    if isinstance(value, bool) or value is None:
        raise field_error(loc, field, f"expected {desc}, got {short(value)}")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        i = int(value) - index_base
        if 0 <= i < n:
            return LETTERS[i]
        raise field_error(loc, field, f"expected {desc}, got {short(value)}")
    if not isinstance(value, str):
        raise field_error(loc, field, f"expected {desc}, got {type(value).__name__}")
    s = value.strip()
    m = re.fullmatch(r"\(?([A-Za-z])[).]?", s)
    if m and m.group(1).upper() in LETTERS[:n]:
        return m.group(1).upper()
    normed = [norm(o) for o in options]
    if norm(s) in normed:
        return LETTERS[normed.index(norm(s))]
    m = re.match(r"\(?([A-Za-z])[).:]\s+(.+)$", s, re.DOTALL)  # "c) Atrophy"
    if m and m.group(1).upper() in LETTERS[:n]:
        i = LETTERS.index(m.group(1).upper())
        if norm(m.group(2)) != normed[i]:
            raise field_error(loc, field, f"{short(s)} does not match option {LETTERS[i]} {short(options[i])}")
        return LETTERS[i]
    if re.fullmatch(r"-?\d+", s):
        i = int(s) - index_base
        if 0 <= i < n:
            return LETTERS[i]
    raise field_error(loc, field, f"expected {desc}, got {short(s)}")


def row_id(row: Row, loc: Loc, prefix: str, key: str = "id") -> str:
    """The row's own id, else `prefix-line`."""
    value = row.get(key)
    return str(value) if value not in (None, "") else f"{prefix}-{loc.line}"
