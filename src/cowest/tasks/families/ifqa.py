"""IfQA counterfactual QA: short answers with aliases and optional context passages."""

from __future__ import annotations

from typing import Any

from ...config import TaskConfig
from ..base import Example, TaskData
from ..fields import field_error, field_list, field_text, row_id, short
from ..flow import SOURCE_KNOBS, load_source
from ..readers import Loc, Row
from ..registry import LoaderInfo, described
from ..types import TYPES


def _ifqa_row(loc: Loc, row: Row) -> Example:
    key = "answers" if "answers" in row or "answer" not in row else "answer"
    answers = field_list(row, key, loc)
    context = row.get("context")
    if isinstance(context, str):
        context = [context]
    elif context is not None and not (isinstance(context, list) and all(isinstance(c, str) for c in context)):
        raise field_error(loc, "context", f"expected a list of strings, got {short(context)}")
    meta: dict[str, Any] = {"source": str(loc)}
    if context:
        meta["context"] = context
    return Example(
        id=row_id(row, loc, "ifqa", key="idx"),
        question=field_text(row, "question", loc),
        gold=answers[0],
        answers=answers,
        explanation=field_text(row, "explanation", loc, required=False),
        metadata=meta,
    )


@described(LoaderInfo(
    summary="IfQA counterfactual short answers: the original JSON list (or JSONL) from task.path, or task.hub.",
    knobs=SOURCE_KNOBS,
    notes=("Columns: idx, question, answers (every accepted answer), context (evidence passages, optional), "
           "explanation (optional).",
           "The context passages are the Background of SFT targets and part of the retrieval corpus."),
))
def load_ifqa(cfg: TaskConfig) -> TaskData:
    """IfQA counterfactual QA: the original JSON list (or JSONL) from task.path, or task.hub."""
    return load_source(cfg, TYPES["short_answer"], _ifqa_row)
