"""Collaborative feedback: mine preference pairs over weak drafts by how much they help the strong model.

For each training question x with gold g (docs/method.md, stage 2):
  z = strong(x);                 s0 = E(z, x, g)
  y_1..y_K ~ weak(x)             (temperature T)
  r_k = strong(x, y_k);          s_k = E(r_k, x, g);    delta_k = s_k - s0
  delta_k > 0: y_k is chosen, else rejected; pairs = chosen x rejected of the same x, capped per question.
Each pair records whether its drafts state the question's fact (`collab.recall`). Left out: pairs that teach against
the fact file (`mining.drop_against_file`: the chosen draft misstates a line, or only the rejected one states a line)
and pairs whose chosen draft omits the fact its rejected one states (`mining.drop_against_fact`).

`mine` does exactly that for every draft of every question (`mining.strategy: exhaustive`); `collab.adaptive`
spends the strong calls where pairs are. Both record each question with `record_question`.
"""

from __future__ import annotations

import random
from itertools import product
from typing import Sequence

from ..config import MiningConfig
from ..models.base import Completion, Sampling
from ..tasks.base import Example
from .evaluators import Evaluator
from .mining_stats import MiningResult, mining_stats
from .pipeline import Answered, Collaborator
from .recall import FactSheet, against_file, states_fact


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
    sheet: FactSheet | None = None,
) -> MiningResult:
    """Run collaborative feedback on every draft of every question: drafts, refinements, scores, pairs, statistics."""
    k = cfg.k
    sampling = Sampling(
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=collab.cfg.draft_max_tokens, seed=seed
    )
    with collab.background() as later:
        # 1. The strong model alone is the bar every draft must beat (answered while the weak model drafts).
        alone_f = later(collab.strong_alone, examples)
        # 2-3. K sampled drafts per question, each refined by the strong model; a question's K refinements are
        # adjacent (with strong.reuse_prefix the server reuses their shared prefix).
        sampled, refined_f = collab.draft_and_refine(examples, later, n=k, sampling=sampling)
        alone, refined = alone_f.result(), refined_f.result()
    s0 = evaluator.score([a.text for a in alone], examples)
    flat_examples = [e for e in examples for _ in range(k)]
    sk = evaluator.score([r.text for r in refined], flat_examples)

    # 4. Deltas against strong-alone, labels and pairs.
    res = MiningResult()
    for qi, ex in enumerate(examples):
        span = range(qi * k, (qi + 1) * k)
        record_question(res, collab, ex, alone[qi], s0[qi], sampled[qi], {j: refined[i] for j, i in enumerate(span)},
                        {j: sk[i] for j, i in enumerate(span)}, cfg, seed, round_, sheet)
    res.stats = mining_stats(res, len(examples), k, collab.prompter.draft_sections)
    used = requests(alone) + requests(refined) + getattr(evaluator, "requests", 0)
    res.stats.update(strong_requests=used, pairs_per_100_requests=100 * len(res.pairs) / used if used else 0.0)
    return res


def requests(answers: Sequence[Answered]) -> int:
    """Strong-model requests behind these answers (re-asks included), whether the call cache answered or not."""
    return sum(a.calls + a.cache_hits for a in answers)


def record_question(res: MiningResult, collab: Collaborator, ex: Example, alone: Answered | None, s0: float | None,
                    drafts: Sequence[Completion], refined: dict[int, Answered], scores: dict[int, float],
                    cfg: MiningConfig, seed: int, round_: int, sheet: FactSheet | None = None) -> None:
    """Add one question's rows to `res`: its drafts, the strong answers, each scored draft's delta and label, and
    its pairs (drafts that show the strong model the same text never pair: their score gap is noise; nor do those
    the module docstring leaves out, `mining.drop_against_file` reading the fact file's lines from `sheet`).
    Where the strong model alone was not asked (`mining.alone: last`, refinements that all scored the same), the
    drafts have no delta or label and the question no pair."""
    res.scores.append(dict(question_id=ex.id, k=None, score=s0, delta=None if alone is None else 0.0,
                           label="strong_alone"))
    if alone is not None:
        res.refinements.append(_answer_row(ex.id, None, alone))
    for j, c in enumerate(drafts):
        res.drafts.append(dict(question_id=ex.id, k=j, draft=c.text, truncated=c.finish_reason == "length"))
    for j, r in refined.items():
        res.refinements.append(_answer_row(ex.id, j, r))
    scored = sorted(scores)
    if s0 is None:
        res.scores += [dict(question_id=ex.id, k=j, score=scores[j], delta=None, label=None) for j in scored]
        return
    for j in scored:
        d = scores[j] - s0
        res.scores.append(dict(question_id=ex.id, k=j, score=scores[j], delta=d, label="chosen" if d > 0 else "rejected"))
    rng = random.Random(f"{seed}:{round_}:{ex.id}")
    prompt, shown = collab.prompter.draft_prompt(ex), collab.prompter.shown_draft
    texts = [drafts[j].text for j in scored]
    facts = [states_fact(shown(t), ex) for t in texts]  # None: the question has no checkable fact
    lines = [sheet.read(shown(t)) for t in texts] if sheet and cfg.drop_against_file else None
    seen: set[tuple[str, str]] = set()
    left_out: dict[str, set[tuple[str, str]]] = {"against_fact": set(), "against_file": set()}
    for c, r in select_pairs([scores[j] for j in scored], [scores[j] - s0 for j in scored], cfg.mode,
                             len(scored) ** 2, rng):
        if shown(texts[c]) == shown(texts[r]) or (texts[c], texts[r]) in seen:
            continue  # the same shown text (a score gap that is noise), or a pair already taken
        if len(seen) == cfg.max_pairs_per_question:
            break
        why = "against_fact" if cfg.drop_against_fact and facts[c] is False and facts[r] is True else None
        if why or (lines and any(against_file(lines[c], lines[r]))):
            left_out[why or "against_file"].add((texts[c], texts[r]))
            continue
        seen.add((texts[c], texts[r]))
        res.pairs.append(dict(
            prompt=prompt,
            chosen=[{"role": "assistant", "content": texts[c]}],
            rejected=[{"role": "assistant", "content": texts[r]}],
            question_id=ex.id,
            chosen_score=scores[scored[c]], rejected_score=scores[scored[r]],
            chosen_delta=scores[scored[c]] - s0, rejected_delta=scores[scored[r]] - s0,
            baseline_score=s0, chosen_states_fact=facts[c], rejected_states_fact=facts[r],
            round=round_, weak_model=getattr(collab.weak, "identity", "?"), strong_model=collab.strong.identity,
        ))
    res.dropped_against_fact += len(left_out["against_fact"])
    res.dropped_against_file += len(left_out["against_file"])


def _answer_row(question_id: str, k: int | None, a: Answered) -> dict:
    return dict(question_id=question_id, k=k, text=a.text, answer=a.answer, prompt_tokens=a.prompt_tokens,
                completion_tokens=a.completion_tokens, truncated=a.truncated)
