"""The three task types: multiple choice, classification and short answer (extraction + scoring)."""

from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np

from .base import LETTERS, Example, TaskType
from .metrics import best_over, exact_match, macro_f1, token_f1

# "Final answer: ...", "the answer is ...", "**Answer:** ...". A plain "answer" needs a separator so that
# prose ("the answer depends on ...") is not read as a statement; "final answer" may stand alone.
_MD = r"[\s*_#`]*"
_SEP = r"(?:(?:is|would\s+be|should\s+be|will\s+be)\b[\s*_:]*|[:：=][\s*_]*|[-–—]\s+)"
_FINAL_RE = re.compile(rf"\bfinal[\s_]+answer\b{_MD}(?:{_SEP})?", re.IGNORECASE)
_ANSWER_RE = re.compile(
    rf"\b(?:answer|(?:correct|right|best)\s+(?:option|choice))\b(?:\s*\(s\))?{_MD}{_SEP}", re.IGNORECASE
)
_LABEL_RE = re.compile(rf"\b(?:label|classification|category|class)\b{_MD}{_SEP}", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
# A short answer that is the whole reply, set off by emphasis or quotes: '**Paris**', '"Paris"'.
_DELIMITED = re.compile(r"^\s*(\*\*|__|[\"“`])([^\n*\"“”`]{1,200})(?:\*\*|__|[\"”`])\.?\s*$")

_BARE_LETTER = re.compile(r"^[\W_]*([A-Za-z])[\W_]*$")
_PREFIX = r"^[\s*_\"'`\[(]*(?:(?:option|choice|letter)\s*[:#]?\s*)?"
# "c) text", "(C) text", "C. text", "C: text", "[C]"; a letter needs a real delimiter after it.
_LEAD_STRICT = re.compile(_PREFIX + r"\(?([A-Za-z])(?:[)\]]|\.(?=\s|$|\*)|:)", re.IGNORECASE)
# In an answer statement an upper-case letter followed by a space also counts ("Answer: C because ...").
_LEAD_LOOSE = re.compile(_PREFIX + r"([A-Z])(?=[\s*,;!?\"']|$)")
_PAREN_LETTER = re.compile(r"\(([A-Za-z])\)")
_NAMED_LETTER = re.compile(r"\b(?:option|choice|letter)\s+(?:is\s+)?\(?([A-Z])\b", re.IGNORECASE)
_LONE_UPPER = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
_WRAP = " \t\r\n*_`\"'“”‘’"  # markdown emphasis and quotes around a short answer
_LISTED = re.compile(r"(?m)^[\s*]*\(?([A-Za-z])[.)]\s")
_SEGMENT_MAX = 400  # characters of an answer statement that are read
_MAX_STATEMENTS = 32  # per kind, from the end: more only happens in degenerate output
_WORDS = re.compile(r"[^\w]+|_+")
_NEXT_WORD = re.compile(r"\s+([a-z]+)\b")
# Words that may follow an option letter ("A is correct", "A because ..."); other lower-case words after
# 'A' or 'I' mean the article or the pronoun ("A patient ...", "I think ...").
_AFTER_LETTER = frozenset("is because since as and or was which for seems appears".split())
_AFTER_LETTER_I = frozenset("is because since".split())


def _norm(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form used to compare option and label texts."""
    return " ".join(_WORDS.sub(" ", text.casefold()).split())


def _statements(text: str, *extra: re.Pattern[str]) -> Iterator[str]:
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
        if _norm(line) or _BARE_LETTER.match(line):
            return line
        pos = end + 1
    return ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _summary(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


class MultipleChoice(TaskType):
    """Options A, B, C, ...; the answer is a letter.

    Conventions: `format_options` gives "A. text" lines; `format_answer` gives "C) text" (the letter, then the
    option text, so drafts carry the content too); `extract` returns the upper-case letter or None;
    `score` is 1.0 when the letter equals the gold letter.
    """

    name = "multiple_choice"
    answer_hint = "the letter of the correct option"

    def extract(self, text: str, example: Example) -> str | None:
        """The chosen option's letter, from answer statements first, then the text's shape; None if unclear."""
        if not isinstance(text, str):
            return None
        options = list(example.options or [])
        n = len(options) or 4  # no options given: assume the usual four
        if not _BARE_LETTER.match(text) and (whole := _norm(text)):
            # The reply is exactly one option's text, even if that text reads like a statement.
            for i, opt in enumerate(options[:n]):
                if _norm(opt) == whole:
                    return LETTERS[i]
        for seg in _statements(text):
            letter = _parse_choice(seg, options, n, strict=False, loose=True)
            if letter:
                return letter
        # No parsable statement: the whole reply, its last line, then its first line; but a reply that
        # lists several lettered options is an echo of the prompt, not a choice.
        if len(set(_LISTED.findall(text))) >= 2:
            return None
        whole = text.strip()
        letter = _parse_choice(whole, options, n, strict=True, loose=False)
        if letter:
            return letter
        last = _last_line(text)
        # A one-line reply may name its letter anywhere ("I choose C.", "C is correct").
        one_line = "\n" not in whole and len(whole) <= 80
        letter = _parse_choice(last, options, n, strict=not one_line, loose=True) if last else None
        if letter:
            return letter
        first = whole.split("\n", 1)[0].strip()
        return _parse_choice(first, options, n, strict=True, loose=False) if first else None

    def score(self, prediction: str | None, example: Example) -> float:
        """1.0 when the predicted letter is the gold letter."""
        return float(prediction is not None and prediction.strip().upper() == example.gold.strip().upper())

    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """accuracy, macro_f1 (over gold letters; None is wrong) and answered (share with a parsed letter)."""
        _check_lengths(predictions, examples)
        preds = [p.strip().upper() if p else None for p in predictions]
        golds = [e.gold.strip().upper() for e in examples]
        return {
            "accuracy": _summary([float(p == g) for p, g in zip(preds, golds)]),
            "macro_f1": macro_f1(preds, golds),
            "answered": _summary([float(p is not None) for p in preds]),
        }

    def format_options(self, example: Example) -> str:
        """'A. text' per line."""
        return "\n".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(example.options or []))

    def format_answer(self, example: Example) -> str:
        """'C) option text' (just the letter when the gold is out of range)."""
        options = example.options or []
        gold = example.gold.strip().upper()
        i = LETTERS.find(gold) if len(gold) == 1 else -1
        return f"{LETTERS[i]}) {options[i]}" if 0 <= i < len(options) else example.gold


def _parse_choice(seg: str, options: list[str], n: int, strict: bool, loose: bool) -> str | None:
    """A valid letter read from one answer segment; `strict` needs delimiters, `loose` allows searching inside."""
    valid = LETTERS[:n]

    def ok(ch: str | None) -> str | None:
        ch = (ch or "").upper()
        return ch if len(ch) == 1 and ch in valid else None

    if m := _BARE_LETTER.match(seg):
        return ok(m.group(1))
    nseg = _norm(seg)
    if not nseg:
        return None
    normed = [(_norm(o), LETTERS[i]) for i, o in enumerate(options[:n])]
    for no, letter in normed:  # the option text itself
        if no and nseg == no:
            return letter
    if m := _LEAD_STRICT.match(seg):
        if letter := ok(m.group(1)):
            return letter
    if not strict and (m := _LEAD_LOOSE.match(seg)) and not _is_word(seg, m.end(1)):
        if letter := ok(m.group(1)):
            return letter
    # The option text leading the segment ("Atrophy, because ..."), longest first.
    for no, letter in sorted(normed, key=lambda t: -len(t[0])):
        if no and (nseg + " ").startswith(no + " "):
            return letter
    if not loose:
        return None
    for pattern in (_PAREN_LETTER, _NAMED_LETTER):
        for m in pattern.finditer(seg):
            if letter := ok(m.group(1)):
                return letter
    # Exactly one option text mentioned (texts inside a longer mentioned text do not count).
    found = [(no, letter) for no, letter in normed if no and f" {no} " in f" {nseg} "]
    found = [(no, lt) for no, lt in found if not any(no != o2 and f" {no} " in f" {o2} " for o2, _ in found)]
    if len({lt for _, lt in found}) == 1:
        return found[0][1]
    if not strict:
        # One lone capital letter; 'A' and 'I' before a lower-case word are the article and the pronoun.
        lone = {ok(m.group(1)) for m in _LONE_UPPER.finditer(seg) if not _is_word(seg, m.end(1))}
        if len(lone) == 1 and None not in lone:
            return lone.pop()
    return None


def _is_word(seg: str, end: int) -> bool:
    """Whether the capital before `end` is the article 'A' or the pronoun 'I' rather than an option letter."""
    if seg[end - 1] not in "AI":
        return False
    m = _NEXT_WORD.match(seg, end)
    if not m:
        return False
    return m.group(1) not in (_AFTER_LETTER if seg[end - 1] == "A" else _AFTER_LETTER_I)


class Classification(TaskType):
    """A fixed label set in `example.options`; the answer is one label, written out in words.

    Conventions: `format_options` gives "Labels: a; b; c"; `format_answer` gives the gold label; `extract`
    returns the label exactly as in `example.options`; `score` is 1.0 on a match (normalised).
    """

    name = "classification"
    answer_hint = "one label from the list"

    def extract(self, text: str, example: Example) -> str | None:
        """The label named after the last 'Final answer:'/'Answer:', else the last label mentioned; None if none."""
        if not isinstance(text, str):
            return None
        labels = list(example.options or [])
        for seg in _statements(text, _LABEL_RE):
            if found := _find_labels(seg, labels):
                return found[0][1]  # the first label the statement names
        if found := _find_labels(_last_line(text), labels) or _find_labels(text, labels):
            return found[-1][1]
        return None

    def score(self, prediction: str | None, example: Example) -> float:
        """1.0 when the label equals the gold label (case/space/underscore-insensitive)."""
        return float(prediction is not None and _norm(prediction) == _norm(example.gold))

    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """accuracy, macro_f1 (over gold labels; None is wrong) and answered."""
        _check_lengths(predictions, examples)
        preds = [_norm(p) if p is not None else None for p in predictions]
        golds = [_norm(e.gold) for e in examples]
        return {
            "accuracy": _summary([float(p == g) for p, g in zip(preds, golds)]),
            "macro_f1": macro_f1(preds, golds),
            "answered": _summary([float(p is not None) for p in preds]),
        }

    def format_options(self, example: Example) -> str:
        """'Labels: a; b; c'."""
        return f"Labels: {'; '.join(example.options)}" if example.options else ""


def _find_labels(text: str, labels: list[str]) -> list[tuple[int, str]]:
    """(position, label) of every label mention, longest label first so 'needs caution' beats 'caution'."""
    padded = f" {_norm(text)} "
    taken = [False] * len(padded)
    hits: list[tuple[int, str]] = []
    for label in sorted(labels, key=lambda lb: -len(_norm(lb))):
        key = f" {_norm(label)} "
        if key.strip() == "":
            continue
        start = padded.find(key)
        while start != -1:
            span = range(start + 1, start + len(key) - 1)
            if not any(taken[i] for i in span):
                for i in span:
                    taken[i] = True
                hits.append((start, label))
            start = padded.find(key, start + 1)
    return sorted(hits)


class ShortAnswer(TaskType):
    """Free-text answers scored SQuAD-style against every accepted answer.

    Conventions: `format_answer` gives the gold text; `extract` returns the raw answer text (or None);
    `score` is the max token F1 over `example.answers or [gold]` (a finer signal than EM for pair mining);
    `metrics` reports em and f1 (each the max over accepted answers) and answered.
    """

    name = "short_answer"
    answer_hint = "a short answer"

    def extract(self, text: str, example: Example) -> str | None:
        """The answer after the last 'Final answer:' / 'Answer:' / 'the answer is', or a reply that is one delimited
        span ('**Paris**', '\\boxed{Paris}'); None otherwise, so that the pipeline re-asks."""
        if not isinstance(text, str):
            return None
        for seg in _statements(text):
            if ans := _clean_answer(seg):
                return ans
        # Prose without an answer statement is not an answer: read as one, a whole sentence would be scored and
        # the re-ask would never fire.
        if m := _DELIMITED.match(text):
            return _clean_answer(m.group(2))
        return None

    def score(self, prediction: str | None, example: Example) -> float:
        """Max token F1 over the accepted answers."""
        return best_over(token_f1, prediction, _accepted(example))

    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """em, f1 (max over accepted answers) and answered."""
        _check_lengths(predictions, examples)
        return {
            "em": _summary([best_over(exact_match, p, _accepted(e)) for p, e in zip(predictions, examples)]),
            "f1": _summary([best_over(token_f1, p, _accepted(e)) for p, e in zip(predictions, examples)]),
            "answered": _summary([float(p is not None) for p in predictions]),
        }


def _accepted(example: Example) -> list[str]:
    return list(example.answers) or [example.gold]


def _clean_answer(seg: str) -> str | None:
    """Strip markdown emphasis, quotes and a trailing full stop around an answer."""
    s = seg.lstrip(_WRAP).rstrip(_WRAP + ".")
    return s or None


def _check_lengths(predictions: Sequence, examples: Sequence) -> None:
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")


# Stateless, so one shared instance each: `TYPES["multiple_choice"].extract(...)`.
TYPES: dict[str, TaskType] = {
    "multiple_choice": MultipleChoice(),
    "short_answer": ShortAnswer(),
    "classification": Classification(),
}


def get_type(name: str) -> TaskType:
    """A task type instance by name."""
    try:
        return TYPES[name]
    except KeyError:
        raise ValueError(f"unknown task type {name!r}; known: {', '.join(TYPES)}") from None
