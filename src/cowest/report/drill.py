"""Per-question drill-down data for report.html: each question's draft, answers, who was right, filter groups."""

from __future__ import annotations

import re
from typing import Sequence

# Drill-down filters: key -> label; `{ref}` is the collaborative system compared with strong alone.
FILTERS = {
    "all": "all",
    "cowest_only": "{ref} right, strong alone wrong",
    "strong_only": "strong alone right, {ref} wrong",
    "both_wrong": "both wrong",
}


MAX_VALUES = 12  # a metadata key with more distinct values (ids, free text) gets no filter buttons


def _reference(systems: Sequence[str]) -> str | None:
    """The collaborative system compared with strong alone: cowest, else the last cowest_round_K, else refine."""
    if "cowest" in systems:
        return "cowest"
    rounds = sorted((s for s in systems if re.fullmatch(r"cowest_round_\d+", s)),
                    key=lambda s: int(s.rsplit("_", 1)[1]))
    return rounds[-1] if rounds else ("refine" if "refine" in systems else None)


def drill_data(predictions: list[dict]) -> dict:
    """One row per question (draft, strong-alone and CoWest answers, who was right) and the filter counts."""
    systems = list(dict.fromkeys(p["system"] for p in predictions))
    ref = _reference(systems)
    by_q: dict[str, dict[str, dict]] = {}
    for p in predictions:
        by_q.setdefault(str(p.get("question_id")), {})[p["system"]] = p
    rows = []
    for qid, preds in by_q.items():
        any_p = next(iter(preds.values()))
        draft_src = preds.get(ref or "") or preds.get("refine") or {}
        right = {s: _right(p) for s, p in preds.items()}
        groups = []
        if ref in right and "strong" in right:
            r, s = right[ref], right["strong"]
            groups = [g for g, ok in (("cowest_only", r and not s), ("strong_only", s and not r),
                                      ("both_wrong", not r and not s)) if ok]
        rows.append(dict(
            id=qid, question=any_p.get("question"), gold=any_p.get("gold"), draft=draft_src.get("draft"),
            strong=_answer(preds.get("strong")), ref=_answer(preds.get(ref or "")),
            systems=[dict(name=s, right=right[s], answer=preds[s].get("answer"), score=preds[s].get("score"))
                     for s in systems if s in preds],
            groups=groups,
        ))
    meta = _metadata_filters([next(iter(preds.values())).get("metadata") or {} for preds in by_q.values()])
    for row, groups in zip(rows, meta["groups"]):
        row["groups"] += groups
    counts = {f: (len(rows) if f == "all" else sum(f in r["groups"] for r in rows)) for f in [*FILTERS, *meta["labels"]]}
    return dict(ref=ref, systems=systems, counts=counts, rows=rows, metadata_filters=meta["labels"])


def _metadata_filters(metas: list[dict]) -> dict:
    """Filter groups from the questions' own metadata (`kind: reasoning` -> group `m-kind-reasoning`).

    Keys whose values are all alike or too many to click through give none."""
    values: dict[str, list[str]] = {}
    for m in metas:
        for k, v in m.items():
            values.setdefault(k, [])
            if str(v) not in values[k]:
                values[k].append(str(v))
    keep = {k: sorted(vs) for k, vs in values.items() if 2 <= len(vs) <= MAX_VALUES}
    labels = {_group(k, v): f"{k}: {v}" for k, vs in keep.items() for v in vs}
    groups = [[_group(k, str(v)) for k, v in m.items() if k in keep] for m in metas]
    return dict(labels=labels, groups=groups)


def _group(key: str, value: str) -> str:
    """A filter key that survives the page's `#filter=` link (word characters and dashes only)."""
    return "m-" + re.sub(r"[^\w-]+", "_", f"{key}-{value}")


def _right(p: dict) -> bool:
    s = p.get("score")
    return isinstance(s, (int, float)) and s > 0.5


def _answer(p: dict | None) -> dict | None:
    return None if p is None else dict(text=p.get("text"), answer=p.get("answer"), right=_right(p))

