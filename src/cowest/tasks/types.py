"""The three task types: multiple choice, classification and short answer (extraction + scoring)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from .base import LETTERS, Example, TaskType
from .metrics import best_over, exact_match, macro_f1, token_f1
from .statements import BARE_LETTER, LABEL_RE, MD, SEP, last_line, norm, statements, summary

# A short answer that is the whole reply, set off by emphasis or quotes: '**Paris**', '"Paris"'.
_DELIMITED = re.compile(r"^\s*(\*\*|__|[\"“`])([^\n*\"“”`]{1,200})(?:\*\*|__|[\"”`])\.?\s*$")

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
_NEXT_WORD = re.compile(r"\s+([a-z]+)\b")
# Words that may follow an option letter ("A is correct", "A because ..."); other lower-case words after
# 'A' or 'I' mean the article or the pronoun ("A patient ...", "I think ...").
_AFTER_LETTER = frozenset("is because since as and or was which for seems appears".split())
_AFTER_LETTER_I = frozenset("is because since".split())


# ---------------------------------------------------------------- placeholders
# A reply may copy the prompt's 'Final answer: <a short answer>' instead of answering. The placeholders are every
# type's `answer_hint` and a few generic words (`_PLACEHOLDERS`, below TYPES), compared after `norm` with a
# leading article dropped; an option or label that reads like one stays an answer.

_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_GENERIC_PLACEHOLDERS = ("answer", "your answer", "final answer")
# What may introduce an answer right before a placeholder, so that both go together.
_INTRO = (
    r"(?:(?:final[\s_]+)?answer\b(?:\s*\(s\))?|(?:correct|right|best)\s+(?:option|choice)\b"
    r"|(?:label|classification|category|class)\b)"
)
_INTRO_BEFORE = re.compile(rf"\b{_INTRO}{MD}(?:{SEP})?{MD}$", re.IGNORECASE)
_LINE_INTRO = re.compile(rf"^[\s*_#`\"'“”]*(?:(?:the\s+)?{_INTRO}{MD}(?:{SEP})?)?", re.IGNORECASE)
_INTRO_WINDOW = 60  # characters before a placeholder searched for its introduction


def _placeholder_key(text: str) -> str:
    return _LEADING_ARTICLE.sub("", norm(text))


def _is_placeholder(text: str, allowed: Sequence[str] | None = ()) -> bool:
    """Whether `text` carries no answer: empty, punctuation only, or a prompt placeholder not among `allowed`."""
    key = _placeholder_key(text)
    return not key or (key in _PLACEHOLDERS and key not in {_placeholder_key(a) for a in allowed or ()})


@lru_cache(maxsize=64)
def _bracketed(excluded: frozenset[str]) -> re.Pattern[str]:
    """A placeholder in <>, [] or {}, anywhere in a reply."""
    keys = sorted(_PLACEHOLDERS - excluded, key=len, reverse=True)
    alts = "|".join(r"[\s_]+".join(map(re.escape, k.split())) for k in keys) or r"(?!)"
    return re.compile(rf"[<\[{{]\s*(?:(?:a|an|the)\s+)?(?:{alts})\s*[>\]}}]", re.IGNORECASE)


def _readable(text: object, allowed: Sequence[str] | None = ()) -> str | None:
    """A reply as extraction reads it (`_without_placeholders`); None for anything that is not text."""
    return _without_placeholders(text, allowed) if isinstance(text, str) else None


def _without_placeholders(text: str, allowed: Sequence[str] | None = ()) -> str:
    """`text` without bracketed placeholders (with the 'Final answer:' before them) and without lines that only
    state a placeholder, so that extraction reads the reply as if the model had not written them."""
    excluded = frozenset(_placeholder_key(a) for a in allowed or ()) & _PLACEHOLDERS
    parts, pos = [], 0
    for m in _bracketed(excluded).finditer(text):
        start = m.start()
        window = max(pos, start - _INTRO_WINDOW)
        if intro := _INTRO_BEFORE.search(text, window, start):
            start = intro.start()
        parts += [text[pos:start], " "]
        pos = m.end()
    text = "".join(parts) + text[pos:]
    lines = text.split("\n")
    rests = (ln[_LINE_INTRO.match(ln).end():] for ln in lines)
    kept = [ln for ln, rest in zip(lines, rests) if not (norm(rest) and _is_placeholder(rest, allowed))]
    return text if len(kept) == len(lines) else "\n".join(kept)


class MultipleChoice(TaskType):
    """Options A, B, C, ...; the answer is a letter.

    Conventions: `format_options` gives "A. text" lines; `format_answer` gives "C) text" (the letter, then the
    option text, so drafts carry the content too); `extract` returns the upper-case letter or None;
    `score` is 1.0 when the letter equals the gold letter. A reply whose only answer is the prompt's placeholder
    ("<the letter of the correct option>", any type's `answer_hint`, "<answer>") gives None; `metrics` does not
    count a placeholder as answered.
    """

    name = "multiple_choice"
    answer_hint = "the letter of the correct option"

    def extract(self, text: str, example: Example) -> str | None:
        """The chosen option's letter, from answer statements first, then the text's shape; None if unclear."""
        options = list(example.options or [])
        n = len(options) or 4  # no options given: assume the usual four
        if (text := _readable(text, options)) is None:
            return None
        if not BARE_LETTER.match(text) and (whole := norm(text)):
            # The reply is exactly one option's text, even if that text reads like a statement.
            for i, opt in enumerate(options[:n]):
                if norm(opt) == whole:
                    return LETTERS[i]
        for seg in statements(text):
            if _is_placeholder(seg, options):
                continue
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
        last = last_line(text)
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
        preds = [p.strip().upper() if _given(p, e.options) else None for p, e in zip(predictions, examples)]
        golds = [e.gold.strip().upper() for e in examples]
        return {
            "accuracy": summary([float(p == g) for p, g in zip(preds, golds)]),
            "macro_f1": macro_f1(preds, golds),
            "answered": summary([float(p is not None) for p in preds]),
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

    if m := BARE_LETTER.match(seg):
        return ok(m.group(1))
    nseg = norm(seg)
    if not nseg:
        return None
    normed = [(norm(o), LETTERS[i]) for i, o in enumerate(options[:n])]
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
    returns the label exactly as in `example.options`; `score` is 1.0 on a match (normalised). A reply whose only
    answer is the prompt's placeholder ("<one label from the list>", any type's `answer_hint`, "<answer>") gives
    None unless a label reads the same; `metrics` does not count a placeholder as answered.
    """

    name = "classification"
    answer_hint = "one label from the list"

    def extract(self, text: str, example: Example) -> str | None:
        """The label named after the last 'Final answer:'/'Answer:', else the last label mentioned; None if none."""
        labels = list(example.options or [])
        if (text := _readable(text, labels)) is None:
            return None
        for seg in statements(text, LABEL_RE):
            if _is_placeholder(seg, labels):
                continue
            if found := _find_labels(seg, labels):
                return found[0][1]  # the first label the statement names
        if found := _find_labels(last_line(text), labels) or _find_labels(text, labels):
            return found[-1][1]
        return None

    def score(self, prediction: str | None, example: Example) -> float:
        """1.0 when the label equals the gold label (case/space/underscore-insensitive)."""
        return float(prediction is not None and norm(prediction) == norm(example.gold))

    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """accuracy, macro_f1 (over gold labels; None is wrong) and answered."""
        _check_lengths(predictions, examples)
        preds = [norm(p) if _given(p, e.options) else None for p, e in zip(predictions, examples)]
        golds = [norm(e.gold) for e in examples]
        return {
            "accuracy": summary([float(p == g) for p, g in zip(preds, golds)]),
            "macro_f1": macro_f1(preds, golds),
            "answered": summary([float(p is not None) for p in preds]),
        }

    def format_options(self, example: Example) -> str:
        """'Labels: a; b; c'."""
        return f"Labels: {'; '.join(example.options)}" if example.options else ""


def _find_labels(text: str, labels: list[str]) -> list[tuple[int, str]]:
    """(position, label) of every label mention, longest label first so 'needs caution' beats 'caution'."""
    padded = f" {norm(text)} "
    taken = [False] * len(padded)
    hits: list[tuple[int, str]] = []
    for label in sorted(labels, key=lambda lb: -len(norm(lb))):
        key = f" {norm(label)} "
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

    Normalisation (`metrics.normalize_answer`): lower case, punctuation and the articles a/an/the dropped,
    whitespace collapsed, and numbers written canonically first: no thousands separators ("1,250" and "1 250" are
    1250; only a comma or space followed by exactly three digits is one), a decimal comma read as a point ("3,5" is
    3.5, never 35), no leading "+", no trailing decimal zeros ("21.0" is 21).
    EM is 1 when the normalised texts are equal, or when both are one number with an optional unit (at most three
    unit words, compared lower-cased and singular: "18-month" == "18 months") with the same number, and either the
    gold has no unit and the prediction's is no magnitude word ("21 points", "$40", "3.5 mg/kg" match "21", "40",
    "3.5"; "40 million" does not match "40") or both have the same unit. "21 points" does not match "210", nor
    "21 or 22" "21" (an article or a word like "or", "to", "about" makes a text not a quantity); token F1 is 1
    whenever EM is 1 and gives partial credit otherwise.
    Unanswered: an answer that is empty, punctuation only, or the prompt's placeholder ("<a short answer>",
    "a short answer", "<answer>", any type's `answer_hint`) is None from `extract` (so the pipeline re-asks),
    scores 0 and does not count as answered in `metrics`.
    """

    name = "short_answer"
    answer_hint = "a short answer"

    def extract(self, text: str, example: Example) -> str | None:
        """The answer after the last 'Final answer:' / 'Answer:' / 'the answer is', or a reply that is one delimited
        span ('**Paris**', '\\boxed{Paris}'); None otherwise, so that the pipeline re-asks."""
        if (text := _readable(text)) is None:
            return None
        for seg in statements(text):
            if _given(ans := _clean_answer(seg)):
                return ans
        # Prose without an answer statement is not an answer: read as one, a whole sentence would be scored and
        # the re-ask would never fire.
        if (m := _DELIMITED.match(text)) and _given(ans := _clean_answer(m.group(2))):
            return ans
        return None

    def score(self, prediction: str | None, example: Example) -> float:
        """Max token F1 over the accepted answers (0 for no answer or a placeholder)."""
        return best_over(token_f1, prediction if _given(prediction) else None, _accepted(example))

    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """em, f1 (max over accepted answers) and answered (a placeholder or blank answer is not an answer)."""
        _check_lengths(predictions, examples)
        preds = [p if _given(p) else None for p in predictions]
        return {
            "em": summary([best_over(exact_match, p, _accepted(e)) for p, e in zip(preds, examples)]),
            "f1": summary([best_over(token_f1, p, _accepted(e)) for p, e in zip(preds, examples)]),
            "answered": summary([float(p is not None) for p in preds]),
        }


def _accepted(example: Example) -> list[str]:
    return list(example.answers) or [example.gold]


def _clean_answer(seg: str) -> str | None:
    """Strip markdown emphasis, quotes and a trailing full stop around an answer."""
    s = seg.lstrip(_WRAP).rstrip(_WRAP + ".")
    return s or None


def _given(prediction: str | None, allowed: Sequence[str] | None = ()) -> bool:
    """Whether a prediction is an answer: not None, not blank and not a prompt placeholder."""
    return prediction is not None and not _is_placeholder(prediction, allowed)


def _check_lengths(predictions: Sequence, examples: Sequence) -> None:
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")


# Stateless, so one shared instance each: `TYPES["multiple_choice"].extract(...)`.
TYPES: dict[str, TaskType] = {
    "multiple_choice": MultipleChoice(),
    "short_answer": ShortAnswer(),
    "classification": Classification(),
}
_PLACEHOLDERS = frozenset(
    _placeholder_key(h) for h in (*(t.answer_hint for t in TYPES.values()), *_GENERIC_PLACEHOLDERS)
)


def get_type(name: str) -> TaskType:
    """A task type instance by name."""
    try:
        return TYPES[name]
    except KeyError:
        raise ValueError(f"unknown task type {name!r}; known: {', '.join(TYPES)}") from None
