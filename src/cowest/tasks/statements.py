"""Where a reply states its answer: 'Final answer: ...', 'the answer is ...', '\\boxed{...}', 'Label: ...'.

`statements` yields the text after each such statement, most authoritative first; the task types (`types`) read
an answer from them. `norm` is the comparison form of option and label texts.
"""

from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np

# "Final answer: ...", "the answer is ...", "**Answer:** ...". A plain "answer" needs a separator so that
# prose ("the answer depends on ...") is not read as a statement; "final answer" may stand alone.
MD = r"[\s*_#`]*"
SEP = r"(?:(?:is|would\s+be|should\s+be|will\s+be)\b[\s*_:]*|[:：=][\s*_]*|[-–—]\s+)"
_FINAL_RE = re.compile(rf"\bfinal[\s_]+answer\b{MD}(?:{SEP})?", re.IGNORECASE)
_ANSWER_RE = re.compile(
    rf"\b(?:answer|(?:correct|right|best)\s+(?:option|choice))\b(?:\s*\(s\))?{MD}{SEP}", re.IGNORECASE
)
LABEL_RE = re.compile(rf"\b(?:label|classification|category|class)\b{MD}{SEP}", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
BARE_LETTER = re.compile(r"^[\W_]*([A-Za-z])[\W_]*$")
_SEGMENT_MAX = 400  # characters of an answer statement that are read
_MAX_STATEMENTS = 32  # per kind, from the end: more only happens in degenerate output
_WORDS = re.compile(r"[^\w]+|_+")


def norm(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form used to compare option and label texts."""
    return " ".join(_WORDS.sub(" ", text.casefold()).split())


def statements(text: str, *extra: re.Pattern[str]) -> Iterator[str]:
    """Answer segments, most authoritative first: boxed and 'final answer' (last first), then 'answer'."""
    yield from [m.group(1) for m in _BOXED_RE.finditer(text)][::-1][:_MAX_STATEMENTS]
    for pattern in (_FINAL_RE, _ANSWER_RE, *extra):
        ends = [m.end() for m in pattern.finditer(text)]
        for end in ends[::-1][:_MAX_STATEMENTS]:
            yield _segment_after(text, end)


def _segment_after(text: str, pos: int) -> str:
    """The rest of the line after `pos`, or the next non-empty line when the rest is blank ('Answer:\\n C')."""
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end
        # An answer is short: capping the segment keeps extraction linear on degenerate output.
        line = text[pos:min(end, pos + _SEGMENT_MAX)].strip()
        if norm(line) or BARE_LETTER.match(line):
            return line
        pos = end + 1
    return ""


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def summary(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
