"""Examples and task types: what a question is and how an answer is read and scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

from pydantic import BaseModel, Field

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
    extra: dict[str, list[Example]] = field(default_factory=dict)  # e.g. a held-out recall probe
