"""What mining keeps besides the pairs: its rows as one result, the figures the report reads, and which questions'
pairs are held out of training."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from statistics import fmean
from typing import Sequence

from .prompter import cut_in_shown


@dataclass
class MiningResult:
    """Everything mining produced, as JSON-ready rows."""

    drafts: list[dict] = field(default_factory=list)
    refinements: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    dropped_against_fact: int = 0  # pairs left out by `mining.drop_against_fact`
    dropped_against_file: int = 0  # pairs left out by `mining.drop_against_file`


def heldout_questions(question_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded share of the mined questions kept out of DPO (for held-out figures), in their original order."""
    n = round(fraction * len(question_ids))
    if fraction > 0 and len(question_ids) > 1:
        n = min(max(n, 1), len(question_ids) - 1)  # keep at least one question on each side
    picked = set(random.Random(f"heldout:{seed}").sample(list(question_ids), n))
    return [q for q in question_ids if q in picked]


def mining_stats(res: MiningResult, n_questions: int, k: int, sections: Sequence[str] | None = None) -> dict:
    """Questions mined, share with a pair, pairs, mean delta, share of drafts that helped or hurt (deltas and scores
    over the questions the strong model alone answered); with `collab.draft_sections`, also the share of drafts cut
    inside them (`drafts_cut_shown`)."""
    draft_scores = [s for s in res.scores if s["k"] is not None]
    labelled = [s for s in draft_scores if s["delta"] is not None]  # None: strong alone not asked (alone: last)
    deltas = [s["delta"] for s in labelled]
    with_pair = {p["question_id"] for p in res.pairs}
    baseline = [s["score"] for s in res.scores if s["k"] is None and s["score"] is not None]
    alone = [r for r in res.refinements if r["k"] is None]
    refined = [r for r in res.refinements if r["k"] is not None]
    return dict(
        questions=n_questions,
        drafts=len(draft_scores),
        drafts_sampled=len(res.drafts),
        k=k,
        pairs=len(res.pairs),
        questions_with_pair=len(with_pair),
        questions_without_pair=n_questions - len(with_pair),
        share_with_pair=len(with_pair) / n_questions if n_questions else 0.0,
        mean_delta=fmean(deltas) if deltas else 0.0,
        share_helped=sum(d > 0 for d in deltas) / len(deltas) if deltas else 0.0,
        share_hurt=sum(d < 0 for d in deltas) / len(deltas) if deltas else 0.0,
        strong_alone_score=fmean(baseline) if baseline else 0.0,
        refined_score=fmean(s["score"] for s in labelled) if labelled else 0.0,
        strong_alone_truncated=fmean(r.get("truncated", False) for r in alone) if alone else 0.0,
        refined_truncated=fmean(r.get("truncated", False) for r in refined) if refined else 0.0,
        drafts_truncated=fmean(d.get("truncated", False) for d in res.drafts) if res.drafts else 0.0,
        **fact_split(res),
        **({"drafts_cut_shown": fmean(bool(d.get("truncated")) and cut_in_shown(d["draft"], sections)
                                      for d in res.drafts) if res.drafts else 0.0} if sections else {}),
    )


def fact_split(res: MiningResult) -> dict:
    """Pairs whose drafts differ on their question's fact: chosen states it (for) or rejected does (against); pairs
    left out for either rule."""
    facts = [(p.get("chosen_states_fact"), p.get("rejected_states_fact")) for p in res.pairs]
    return dict(pairs_for_fact=sum(c is True and r is False for c, r in facts),
                pairs_against_fact=sum(c is False and r is True for c, r in facts),
                pairs_dropped_against_fact=res.dropped_against_fact,
                pairs_dropped_against_file=res.dropped_against_file)
