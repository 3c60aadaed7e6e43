"""ProsocialDialog: five safety labels of a dialogue context, its rules of thumb as the explanation."""

from __future__ import annotations

from typing import Any

from ...config import TaskConfig
from ..base import Example, TaskData
from ..fields import field_error, field_list, field_text, norm, short
from ..flow import SOURCE_KNOBS, load_source
from ..readers import Loc, Row
from ..registry import LoaderInfo, described
from ..types import TYPES

PROSOCIAL_LABELS = {
    "__casual__": "casual",
    "__possibly_needs_caution__": "possibly needs caution",
    "__probably_needs_caution__": "probably needs caution",
    "__needs_caution__": "needs caution",
    "__needs_intervention__": "needs intervention",
}
_PROSOCIAL_BY_NORM = {norm(k): v for k, v in PROSOCIAL_LABELS.items()}


def _prosocial_row(loc: Loc, row: Row) -> Example:
    raw = field_text(row, "safety_label", loc)
    label = _PROSOCIAL_BY_NORM.get(norm(raw))
    if label is None:
        raise field_error(loc, "safety_label", f"expected one of {', '.join(PROSOCIAL_LABELS)}, got {short(raw)}")
    rots = field_list(row, "rots", loc, required=False, drop_empty=True)
    meta: dict[str, Any] = {"source": str(loc)}
    for key in ("response", "dialogue_id", "response_id", "source"):
        if row.get(key) not in (None, ""):
            meta["dataset_source" if key == "source" else key] = row[key]
    if row.get("safety_annotations") is not None:
        meta["safety_annotations"] = field_list(row, "safety_annotations", loc, required=False, drop_empty=True)
    has_ids = row.get("dialogue_id") not in (None, "") and row.get("response_id") not in (None, "")
    return Example(
        id=f"{row['dialogue_id']}-{row['response_id']}" if has_ids else f"prosocial-{loc.line}",
        question=field_text(row, "context", loc),
        options=list(PROSOCIAL_LABELS.values()),
        gold=label,
        explanation=" ".join(rots) or None,
        metadata=meta,
    )


@described(LoaderInfo(
    summary="ProsocialDialog safety labels (5 classes) from task.path or task.hub (allenai/prosocial-dialog).",
    knobs=SOURCE_KNOBS,
    notes=("Columns: context (the question), safety_label (__casual__ ... __needs_intervention__), rots (rules of "
           "thumb: the explanation), response, dialogue_id, response_id.",),
))
def load_prosocial(cfg: TaskConfig) -> TaskData:
    """ProsocialDialog safety labels (5 classes) from task.path or task.hub (allenai/prosocial-dialog)."""
    return load_source(cfg, TYPES["classification"], _prosocial_row)
