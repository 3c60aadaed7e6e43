"""MedMCQA in either schema: the hub's (question, opa-opd, cop, exp) or the OpenAI-evals samples'."""

from __future__ import annotations

import re
from typing import Any

from ...config import TaskConfig
from ..base import LETTERS, Example, TaskData
from ..fields import field_error, field_text, row_id, short
from ..flow import SOURCE_KNOBS, RowParser, load_source
from ..readers import Loc, Row
from ..registry import LoaderInfo, described
from ..types import TYPES
from .evals import evals_row


def _medmcqa_row(cfg: TaskConfig) -> RowParser:
    evals = evals_row("medmcqa")
    base = int(cfg.options.get("cop_base", 0))  # the original GitHub release numbers options 1-4

    def parse(loc: Loc, row: Row) -> Example:
        if "input" in row:  # the OpenAI evals sample format
            return evals(loc, row)
        options = [field_text(row, k, loc) for k in ("opa", "opb", "opc", "opd")]
        cop = row.get("cop")
        if isinstance(cop, str) and re.fullmatch(r"\s*\d+\s*", cop):
            cop = int(cop)
        if isinstance(cop, bool) or not isinstance(cop, int) or not base <= cop <= base + 3:
            raise field_error(loc, "cop", f"expected an integer {base}-{base + 3}, got {short(cop)}")
        meta: dict[str, Any] = {"source": str(loc)}
        for key, name in (("subject_name", "subject"), ("topic_name", "topic"), ("choice_type", "choice_type")):
            if value := field_text(row, key, loc, required=False):
                meta[name] = value
        return Example(
            id=row_id(row, loc, "medmcqa"),
            question=field_text(row, "question", loc),
            options=options,
            gold=LETTERS[cop - base],
            explanation=field_text(row, "exp", loc, required=False),
            metadata=meta,
        )

    return parse


@described(LoaderInfo(
    summary="MedMCQA multiple choice: the packaged evals sample (300), a local file in either schema, or the hub.",
    knobs={**SOURCE_KNOBS, "task.options.cop_base": "what the hub schema's cop counts from (default 0; the "
                                                    "original release counts from 1)",
           "task.subjects": "keep these subject_name values"},
    notes=("Hub schema: question, opa-opd, cop, exp (the explanation); the hub's validation split is the test.",
           "Evals schema: input (chat messages ending in lettered options), ideal like 'c) Atrophy'."),
))
def load_medmcqa(cfg: TaskConfig) -> TaskData:
    """MedMCQA: the packaged evals sample, a local file in either schema, or the hub (test = its validation split)."""
    # The hub's test split has no answers (cop = -1), so its validation split serves as test.
    return load_source(cfg, TYPES["multiple_choice"], _medmcqa_row(cfg), default_asset="medmcqa",
                       hub_test_split="validation")
