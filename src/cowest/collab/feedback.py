"""Collaborative feedback: mine preference pairs over weak drafts by how much they help the strong model.

For each training question x with gold g (docs/method.md, stage 2):
  z = strong(x);                 s0 = E(z, x, g)
  y_1..y_K ~ weak(x)             (temperature T)
  r_k = strong(x, y_k);          s_k = E(r_k, x, g);    delta_k = s_k - s0
  delta_k > 0: y_k is chosen, else rejected; pairs = chosen x rejected of the same x, capped per question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import product
from statistics import fmean
from typing import Sequence

from ..config import MiningConfig
from ..models.base import Sampling
from ..tasks.base import Example
from .evaluators import Evaluator
from .pipeline import Collaborator


@dataclass
class MiningResult:
    """Everything mining produced, as JSON-ready rows."""

    drafts: list[dict] = field(default_factory=list)
    refinements: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def select_pairs(
    scores: Sequence[float], deltas: Sequence[float], mode: str, cap: int, rng: random.Random
) -> list[tuple[int, int]]:
    """Indices (chosen, rejected) of the drafts of one question."""
    if mode == "rank":
        # Ours: best vs worst by refined score; nothing when every draft scored the same.
        if max(scores) == min(scores):
            return []
        best = max(range(len(scores)), key=lambda k: (scores[k], -k))
        worst = min(range(len(scores)), key=lambda k: (scores[k], k))
        return [(best, worst)]
    chosen = [k for k, d in enumerate(deltas) if d > 0]
    rejected = [k for k, d in enumerate(deltas) if d <= 0]
    pairs = list(product(chosen, rejected))
    rng.shuffle(pairs)
    return pairs[:cap]


def mine(
    examples: Sequence[Example],
    collab: Collaborator,
    evaluator: Evaluator,
    cfg: MiningConfig,
    seed: int = 0,
    round_: int = 1,
) -> MiningResult:
    """Run collaborative feedback on `examples` and return drafts, refinements, scores, pairs and statistics."""
    k = cfg.k
    sampling = Sampling(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=collab.cfg.draft_max_tokens, seed=seed
    )
    with collab.background() as later:
        # 1. The strong model alone is the bar every draft must beat (answered while the weak model drafts).
        alone_f = later(collab.strong_alone, examples)
        # 2-3. K sampled drafts per question, each refined by the strong model; a question's K refinements are
        # adjacent, so the server reuses the prefix.
        sampled, refined_f = collab.draft_and_refine(examples, later, n=k, sampling=sampling)
        alone, refined = alone_f.result(), refined_f.result()
    s0 = evaluator.score([a.text for a in alone], examples)
    drafts = [[c.text for c in cs] for cs in sampled]
    flat_examples = [e for e in examples for _ in range(k)]
    sk = evaluator.score([r.text for r in refined], flat_examples)

    # 4. Deltas against strong-alone, labels and pairs.
    res = MiningResult()
    weak_id = getattr(collab.weak, "identity", "?")
    strong_id = collab.strong.identity
    for qi, ex in enumerate(examples):
        scores = sk[qi * k : (qi + 1) * k]
        deltas = [s - s0[qi] for s in scores]
        res.scores.append(dict(question_id=ex.id, k=None, score=s0[qi], delta=0.0, label="strong_alone"))
        res.refinements.append(
            dict(question_id=ex.id, k=None, text=alone[qi].text, answer=alone[qi].answer,
                 prompt_tokens=alone[qi].prompt_tokens, completion_tokens=alone[qi].completion_tokens,
                 truncated=alone[qi].truncated)
        )
        for j in range(k):
            r = refined[qi * k + j]
            res.drafts.append(dict(question_id=ex.id, k=j, draft=drafts[qi][j],
                                   truncated=sampled[qi][j].finish_reason == "length"))
            res.refinements.append(
                dict(question_id=ex.id, k=j, text=r.text, answer=r.answer,
                     prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, truncated=r.truncated)
            )
            res.scores.append(
                dict(question_id=ex.id, k=j, score=scores[j], delta=deltas[j],
                     label="chosen" if deltas[j] > 0 else "rejected")
            )
        rng = random.Random(f"{seed}:{round_}:{ex.id}")
        prompt = collab.prompter.draft_prompt(ex)
        for c, r in select_pairs(scores, deltas, cfg.mode, cfg.max_pairs_per_question, rng):
            shown = collab.prompter.shown_draft
            if shown(drafts[qi][c]) == shown(drafts[qi][r]):
                continue  # the strong model saw the same thing: the score gap is noise, not the draft's doing
            res.pairs.append(
                dict(
                    prompt=prompt,
                    chosen=[{"role": "assistant", "content": drafts[qi][c]}],
                    rejected=[{"role": "assistant", "content": drafts[qi][r]}],
                    question_id=ex.id,
                    chosen_score=scores[c], rejected_score=scores[r],
                    chosen_delta=deltas[c], rejected_delta=deltas[r],
                    baseline_score=s0[qi], round=round_, weak_model=weak_id, strong_model=strong_id,
                )
            )
    res.stats = mining_stats(res, len(examples), k)
    return res


def heldout_questions(question_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded share of the mined questions kept out of DPO (for held-out figures), in their original order."""
    n = round(fraction * len(question_ids))
    if fraction > 0 and len(question_ids) > 1:
        n = min(max(n, 1), len(question_ids) - 1)  # keep at least one question on each side
    picked = set(random.Random(f"heldout:{seed}").sample(list(question_ids), n))
    return [q for q in question_ids if q in picked]


def mining_stats(res: MiningResult, n_questions: int, k: int) -> dict:
    """Questions mined, share with a pair, pairs, mean delta, share of drafts that helped or hurt."""
    draft_scores = [s for s in res.scores if s["k"] is not None]
    deltas = [s["delta"] for s in draft_scores]
    with_pair = {p["question_id"] for p in res.pairs}
    baseline = [s["score"] for s in res.scores if s["k"] is None]
    alone = [r for r in res.refinements if r["k"] is None]
    refined = [r for r in res.refinements if r["k"] is not None]
    return dict(
        questions=n_questions,
        drafts=len(draft_scores),
        k=k,
        pairs=len(res.pairs),
        questions_with_pair=len(with_pair),
        questions_without_pair=n_questions - len(with_pair),
        share_with_pair=len(with_pair) / n_questions if n_questions else 0.0,
        mean_delta=fmean(deltas) if deltas else 0.0,
        share_helped=sum(d > 0 for d in deltas) / len(deltas) if deltas else 0.0,
        share_hurt=sum(d < 0 for d in deltas) / len(deltas) if deltas else 0.0,
        strong_alone_score=fmean(baseline) if baseline else 0.0,
        refined_score=fmean(s["score"] for s in draft_scores) if draft_scores else 0.0,
        strong_alone_truncated=fmean(r.get("truncated", False) for r in alone) if alone else 0.0,
        refined_truncated=fmean(r.get("truncated", False) for r in refined) if refined else 0.0,
        drafts_truncated=fmean(d.get("truncated", False) for d in res.drafts) if res.drafts else 0.0,
    )
