"""What each stage of a run did and what its check found, one row a stage, from the stages' manifests."""

from __future__ import annotations

from typing import Mapping

from .artifacts import Artifacts
from .tables import Cell, Table, pct


def stage_outcome(name: str, counts: Mapping) -> str:
    """One line on what a stage did, from its manifest's counts (the figures its check looked at)."""
    c = counts
    if name == "sft":
        parts = [f"{c.get('examples')} rows"]
        if "recall" in c:  # runs from before the SFT check have none
            parts.append("recall not measured (no validation questions)" if c["recall"] is None else
                         f"drafts state the {c.get('recall_measure', 'fact')} on {pct(c['recall'])}% of "
                         f"{c.get('valid_questions')} validation questions")
        return "; ".join([*parts, f"{c.get('extensions', 0)} extension(s)"])
    if name.endswith("/mine"):
        parts = [f"{c.get('pairs')} pairs ({c.get('train_pairs')} to train, {c.get('heldout_pairs')} held out) from "
                 f"{c.get('questions')} questions"]
        if "strong_requests" in c:
            parts.append(f"{c['strong_requests']} strong requests, {c.get('pairs_per_100_requests', 0):.1f} pairs "
                         f"per 100")
        if c.get("redraws"):
            parts.append(f"{c.get('questions_redrawn')} questions with one shown draft drew again, "
                         f"{c.get('questions_redrawn_differ')} then differed")
        if "pairs_against_fact" in c:  # runs from before the count have none
            dropped = c.get("pairs_dropped_against_fact")
            parts.append(f"drafts split on the fact: {c.get('pairs_for_fact')} pairs for it, "
                         f"{c['pairs_against_fact']} against" + (f" ({dropped} more dropped)" if dropped else ""))
        if c.get("pairs_dropped_against_file"):
            parts.append(f"{c['pairs_dropped_against_file']} pairs left out for teaching against the fact file")
        if c.get("pairs_capped_per_fact"):
            parts.append(f"{c['pairs_capped_per_fact']} training pairs over the cap of pairs per fact line left out")
        return "; ".join([*parts, f"evaluator {c.get('evaluator', 'rule')}"])
    if name.endswith("/dpo"):
        if c.get("skipped_because") == "heldout_margin":
            return (f"undone: {c.get('pairs')} pairs, {c.get('steps')} steps, but no epoch preferred the chosen drafts "
                    f"of the {(c.get('recall') or {}).get('heldout_pairs')} held-out pairs; the round keeps its start "
                    "model")
        if c.get("skipped_because") == "fact_recall":
            return (f"undone: {c.get('pairs')} pairs, {c.get('steps')} steps, but every epoch's drafts stated their "
                    "facts less often than the start model's on questions it did not train on; the round keeps its "
                    "start model")
        if c.get("skipped"):
            return f"skipped: {c.get('pairs')} pairs are too few to learn from; the round keeps its start model"
        if c.get("method") == "grpo":
            return f"on-policy (GRPO) on {c.get('questions')} questions, {c.get('strong_calls')} strong calls"
        margin, recall = c.get("final_margin"), c.get("recall") or {}
        kept = (f"; epoch {recall['kept_epoch']:g} kept: its drafts state facts on {100 * _kept(recall):.1f}% of "
                f"{recall['questions']} unseen mining questions, {100 * recall['start']:.1f}% before"
                if recall.get("measured") else "")
        return f"{c.get('pairs')} pairs, {c.get('steps')} steps" + (
            f", last reward margin {margin:.3f}" if margin is not None else "") + kept
    if name.startswith("eval"):
        served = f"; served default: {c['served_default']}" if c.get("served_default") else ""
        return f"{c.get('questions')} questions, {c.get('systems')} systems{served}"
    return ""


def _kept(recall: Mapping) -> float:
    """The kept epoch's recall in a DPO check's block."""
    return next(e["recall"] for e in recall["epochs"] if e["epoch"] == recall["kept_epoch"])


def stage_rows(a: Artifacts) -> Table:
    """Each stage's wall time, what it did and its check's warnings (codes), in run order, and the total time."""
    rows: list[list[Cell]] = []
    for name, m in a.manifests.items():
        counts = m.get("counts") or {}
        warns = ", ".join(sorted({w.get("code", "?") for w in counts.get("warnings") or [] if isinstance(w, dict)}))
        rows.append([name, f"{float(m.get('wall_s') or 0):.1f}", stage_outcome(name, counts), warns or "none"])
    if rows:
        total = sum(float(m.get("wall_s") or 0) for m in a.manifests.values())
        rows.append([("total", "total"), (f"{total:.1f}", "total"), "", ""])
    return ["stage", "wall s", "what it did", "check warnings"], rows
