"""Examples and task types: what a question is and how an answer is read and scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, Field

from .readers import TaskDataError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Example(BaseModel):
    """One question with its ground truth.

    Multiple choice: `options` holds the option texts and `gold` the letter ("A", "B", ...).
    Classification: `options` holds the label set and `gold` one label.
    Short answer: `options` is None, `gold` the main answer, `answers` every accepted answer.
    """

    id: str
    question: str
    options: list[str] | None = None
    gold: str
    answers: list[str] = Field(default_factory=list)
    explanation: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _same(value: Any, wanted: Any) -> bool:
    """Metadata equality; scalars also compare as text, since a CSV cell is always text ('12' == 12)."""
    if value == wanted:
        return True
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) and isinstance(wanted, scalar) and str(value).strip() == str(wanted).strip()


def select_where(examples: Sequence[Example], where: Mapping[str, Any], field: str = "mining.where") -> list[Example]:
    """The examples whose metadata match every `key: value` of `where`; matching none is an error naming `field`."""
    if not where:
        return list(examples)
    out = [e for e in examples if all(k in e.metadata and _same(e.metadata[k], v) for k, v in where.items())]
    if examples and not out:
        seen = {k: sorted({str(e.metadata[k]) for e in examples if k in e.metadata})[:10] for k in where}
        have = "; ".join(f"{k}: {', '.join(v) if v else 'no example has this key'}" for k, v in seen.items())
        raise TaskDataError(f"{field} {dict(where)} matches none of the {len(examples)} questions ({have})")
    return out


class TaskType(ABC):
    """Answer extraction and scoring for one kind of task."""

    name: str
    answer_hint: str  # how the model should write the answer, used in prompts

    @abstractmethod
    def extract(self, text: str, example: Example) -> str | None:
        """Read the model's final answer from free text; None when none can be found."""

    @abstractmethod
    def score(self, prediction: str | None, example: Example) -> float:
        """Per-example score in [0, 1] (the rule evaluator's metric)."""

    @abstractmethod
    def metrics(self, predictions: Sequence[str | None], examples: Sequence[Example]) -> dict[str, float]:
        """Aggregate metrics; the first key is the primary metric."""

    def format_options(self, example: Example) -> str:
        """Options as they appear in prompts ('' when there are none)."""
        return ""

    def format_answer(self, example: Example) -> str:
        """The gold answer as the model should write it (for SFT targets)."""
        return example.gold


@dataclass
class TaskData:
    """A loaded task: type, splits and the retrieval corpus."""

    name: str
    type: TaskType
    train: list[Example]
    test: list[Example]
    corpus: list[str] = field(default_factory=list)  # domain text for retrieval and SFT extras
    # Fact statements that are not derived from the questions (task.corpus_path): SFT targets of rows without an
    # explanation or evidence retrieve their background from these.
    facts: list[str] = field(default_factory=list)
    extra: dict[str, list[Example]] = field(default_factory=dict)  # e.g. a held-out recall probe
