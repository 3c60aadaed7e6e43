"""Does a draft state the fact its question needs? The measure behind the SFT check and the draft diagnostics.

A question's fact is the task's own (metadata `fact_value`, e.g. the formulary's "3.5 mg/kg"), else its reference
fact: the line of the task's fact file (`task.corpus_path`) that BM25 ranks best for the question and its gold answer,
the same line SFT teaches as the target's background (`collab.targets`). A draft states an own fact when it contains
it (normalised as short answers are, whole words). It states a reference fact when it carries what the fact adds to the question:
at least half of the fact's numbers (times and decimals as one number, thousands separators dropped) that the
question does not already hold, or, for a fact without such numbers, at least half of its content words that the
question does not hold (lower case, a plural 's' dropped, common words ignored). A fact that adds nothing to its
question cannot be checked (None).

A draft sentence reads as a line of the fact file (`FactSheet`) when at least 90% of their words are shared (numbers
aside, Jaccard) and no other line is closer. It states the line when its numbers are among the line's, and misstates
it when they are among none of the closest lines': "the journey from Zellbrook to Tollerby takes 71 minutes" where the
file says 98.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable, Sequence

from ..tasks.base import LETTERS, Example, TaskType
from ..tasks.metrics import normalize_answer

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TOKEN = re.compile(r"\d+(?:[.:]\d+)*|[a-z]+")
_STOP = frozenset((
    "a an the and or of to in on at for from by with as is are was were be been being it its this that these those "
    "which who whom what when where why how than then there their they them he she his her we our you your i not no "
    "do does did has have had may must can could should would will shall per each every any all only also so if but "
    "into over under up down out about after before more most less least other such own same very just").split())


def _tokens(text: str) -> list[str]:
    text = _THOUSANDS.sub("", text.lower())
    return [t[:-1] if t.isalpha() and len(t) > 3 and t.endswith("s") else t for t in _TOKEN.findall(text)]


def key_terms(fact: str, question: str) -> tuple[list[str], list[str]]:
    """(numbers, content words) of `fact` that `question` does not already hold, in order, without repeats."""
    asked = set(_tokens(question))
    new = [t for t in dict.fromkeys(_tokens(fact)) if t not in asked]
    numbers = [t for t in new if t[0].isdigit()]
    words = [t for t in new if t.isalpha() and t not in _STOP and len(t) > 1]
    return numbers, words


def states_reference(draft: str, fact: str, question: str) -> bool | None:
    """Whether `draft` carries what `fact` adds to `question` (module docstring); None when it adds nothing."""
    numbers, words = key_terms(fact, question)
    have = set(_tokens(draft))
    terms = numbers or words
    if not terms:
        return None
    return sum(t in have for t in terms) >= math.ceil(len(terms) / 2)


def mentions(text: str, phrases: Sequence[str]) -> bool:
    """Whether `text` contains one of `phrases` as whole words, both normalised as answers are ("1,250" = "1250")."""
    norm = f" {normalize_answer(text)} "
    return any(normalize_answer(p) and f" {normalize_answer(p)} " in norm for p in phrases)


_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_LABEL = re.compile(r"^\s*[A-Za-z][\w ]{0,24}:\s+")  # a draft section's name ("Background: ...")


def _words_numbers(text: str) -> tuple[frozenset[str], frozenset[str]]:
    tokens = _tokens(_LABEL.sub("", text))
    return frozenset(t for t in tokens if t.isalpha()), frozenset(t for t in tokens if t[0].isdigit())


class FactSheet:
    """The fact file's lines, to find those a draft states or misstates (module docstring)."""

    def __init__(self, facts: Sequence[str], overlap: float = 0.9, min_words: int = 4):
        self.lines = [(f, *_words_numbers(f)) for f in facts]
        self.overlap, self.min_words = overlap, min_words

    def read(self, text: str) -> tuple[set[str], str | None]:
        """The fact lines `text` states as the file has them, and the first one it misstates (None: none)."""
        stated, wrong = set(), None
        for sentence in _SENTENCE.split(text):
            words, numbers = _words_numbers(sentence)
            if not numbers or len(words) < self.min_words:
                continue
            near = [(len(words & w) / len(words | w), line, n) for line, w, n in self.lines]
            best = max((j for j, _, _ in near), default=0.0)
            closest = [(line, n) for j, line, n in near if j == best and best >= self.overlap]
            right = {line for line, n in closest if numbers <= n}
            stated |= right
            wrong = wrong or (closest[0][0] if closest and not right else None)
        return stated, wrong


def against_file(chosen: tuple[set[str], str | None], rejected: tuple[set[str], str | None]) -> tuple[bool, bool]:
    """How a pair whose drafts `FactSheet.read` gave `chosen` and `rejected` teaches against the fact file: (its chosen
    draft misstates a line, its rejected draft states a line the chosen one does not)."""
    return chosen[1] is not None, bool(rejected[0] - chosen[0])


def cap_per_line(pairs: Sequence[dict], sheet: FactSheet, shown: Callable[[str], str], cap: int) -> list[dict]:
    """`pairs` in order, less each whose chosen draft (as `shown` to the strong model) states a fact line that the
    chosen drafts of `cap` pairs kept before it state: so DPO does not carry one line's value to other questions."""
    kept, count = [], Counter[str]()
    for p in pairs:
        lines = sheet.read(shown(p["chosen"][-1]["content"]))[0]
        if not cap or all(count[line] < cap for line in lines):
            kept.append(p)
            count.update(lines)
    return kept


def states_fact(draft: str, example: Example) -> bool | None:
    """Whether a draft states its question's fact (own or reference); None when the question has no checkable fact."""
    if own := example.metadata.get("fact_value"):
        return mentions(draft, [str(own)])
    if ref := example.metadata.get("reference_fact"):
        return states_reference(draft, str(ref), example.question)
    return None


def attach_reference_facts(task_type: TaskType, examples: Sequence[Example], facts: Sequence[str]) -> None:
    """Give each example without an own fact its reference fact (metadata `reference_fact`), in place."""
    from .baselines import BM25Retriever

    todo = [e for e in examples if not e.metadata.get("fact_value") and "reference_fact" not in e.metadata]
    if not facts or not todo:
        return
    hits = BM25Retriever(facts).search([f"{e.question} {task_type.format_answer(e)}" for e in todo], 1)
    for e, row in zip(todo, hits):
        if row and row[0][1] > 0:
            e.metadata["reference_fact"] = row[0][0]


def states_gold(draft: str, example: Example) -> bool:
    """Whether a draft states the gold answer's text (the option text, label or an accepted answer)."""
    if example.options and example.gold in LETTERS[: len(example.options)]:  # multiple choice: the option text
        golds = [example.options[LETTERS.index(example.gold)]]
    else:
        golds = example.answers or [example.gold]
    return mentions(draft, golds)
