"""Collaborative feedback that spends strong calls where pairs are (`mining.strategy: adaptive`).

The same rule as `feedback.mine` (a draft is chosen when its refinement beats the strong model alone), in an order
that wastes no strong call:
1. the weak model drafts K times for every question first (weak compute is cheap);
2. questions are sent to the strong model in order of how many different drafts they have, counted in what the
   strong model is shown (`collab.draft_sections`): a question whose drafts all show the same text cannot give a
   pair, so it is never sent;
3. per question, the strong model answers alone once; in paper mode a question it already answers perfectly cannot
   give a chosen draft, so its drafts are not sent; otherwise each distinct shown draft is refined once (its copies
   share the refinement, as the call cache would make them);
4. where a question's drafts split (some help, some do not) and its pairs are below the per-question cap, the weak
   model drafts `mining.extra_drafts` more, and the new distinct ones are refined;
5. questions go in waves of `WAVE`; mining stops after the wave that reaches `mining.pair_target` training pairs, or
   before a question whose calls `mining.strong_call_budget` (strong requests, judge included) no longer pays for;
   only the short re-asks of answers that could not be read can go over it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable, Sequence

from ..config import MiningConfig
from ..models.base import Completion, Sampling
from ..tasks.base import Example
from .evaluators import Evaluator
from .feedback import record_question, requests
from .mining_stats import MiningResult, mining_stats
from .pipeline import Answered, Collaborator

WAVE = 16  # questions sent together: enough to keep a concurrent endpoint busy, few enough to stop near the target


def mine_adaptive(examples: Sequence[Example], collab: Collaborator, evaluator: Evaluator, cfg: MiningConfig,
                  seed: int = 0, round_: int = 1, heldout: frozenset[str] = frozenset()) -> MiningResult:
    """Mine pairs from `examples` in the order above; pairs of `heldout` questions do not count toward the target."""
    sampling = Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=collab.cfg.draft_max_tokens,
                        seed=seed)
    drafts = [list(cs) for cs in collab.drafts(examples, n=cfg.k, sampling=sampling)]  # 1.
    distinct, todo = _order(examples, drafts, collab.prompter.shown_draft, f"adaptive:{seed}:{round_}")  # 2.
    res, sent, stopped_by = MiningResult(), [], "exhausted"
    spent = train_pairs = alone_right = waves = 0  # spent: strong requests (alone and refinements)
    judged0 = getattr(evaluator, "requests", 0)  # the judge's requests count against the budget too

    def used() -> int:
        return spent + getattr(evaluator, "requests", 0) - judged0

    pos = 0
    while pos < len(todo):  # 5.
        if cfg.pair_target is not None and train_pairs >= cfg.pair_target:
            stopped_by = "pair_target"
            break
        wave = _wave(todo[pos:], distinct, None if cfg.strong_call_budget is None else cfg.strong_call_budget - used())
        if not wave:
            stopped_by = "budget"
            break
        pos += len(wave)
        qs = [examples[i] for i in wave]
        alone = collab.strong_alone(qs)  # 3.
        spent += requests(alone)
        s0 = dict(zip(wave, evaluator.score([a.text for a in alone], qs)))
        refined: dict[int, dict[int, Answered]] = {i: {} for i in wave}
        scores: dict[int, dict[int, float]] = {i: {} for i in wave}
        live = [i for i in wave if not (cfg.mode == "paper" and s0[i] >= 1.0)]
        alone_right += len(wave) - len(live)
        spent += _refine(collab, evaluator, examples, drafts, live, refined, scores)
        split = [i for i in live if cfg.extra_drafts and _splits(scores[i], s0[i], cfg)]  # 4.
        if split:
            more = collab.drafts([examples[i] for i in split], n=cfg.extra_drafts,
                                 sampling=replace(sampling, seed=seed + 7919 * (waves + 1)))
            for i, cs in zip(split, more):
                drafts[i].extend(cs)
            room = None if cfg.strong_call_budget is None else cfg.strong_call_budget - used()
            spent += _refine(collab, evaluator, examples, drafts, split, refined, scores, room)
        for i, a in zip(wave, alone):
            before = len(res.pairs)
            record_question(res, collab, examples[i], a, s0[i], drafts[i], refined[i], scores[i], cfg, seed, round_)
            if examples[i].id not in heldout:
                train_pairs += len(res.pairs) - before
        sent += wave
        waves += 1
    if stopped_by == "exhausted" and cfg.pair_target is not None and train_pairs >= cfg.pair_target:
        stopped_by = "pair_target"
    _record_unsent(res, examples, drafts, set(sent))
    res.stats = mining_stats(res, len(sent), cfg.k)
    res.stats.update(candidates=len(examples), questions_identical_drafts=len(examples) - len(todo),
                     questions_alone_right=alone_right, waves=waves, stopped_by=stopped_by, strong_requests=used(),
                     pairs_per_100_requests=100 * len(res.pairs) / used() if used() else 0.0)
    return res


def _order(examples: Sequence[Example], drafts: list[list[Completion]], shown: Callable[[str], str],
           seed: str) -> tuple[list[int], list[int]]:
    """Each question's number of distinct shown drafts, and the questions with more than one, most first (ties in a
    seeded random order)."""
    rng = random.Random(seed)
    tiebreak = {e.id: rng.random() for e in examples}
    distinct = [len({shown(c.text) for c in ds}) for ds in drafts]
    order = sorted(range(len(examples)), key=lambda i: (-distinct[i], tiebreak[examples[i].id]))
    return distinct, [i for i in order if distinct[i] > 1]


def _record_unsent(res: MiningResult, examples: Sequence[Example], drafts: list[list[Completion]],
                   sent: set[int]) -> None:
    """The drafts of the questions never sent to the strong model, kept for the record."""
    for i in (i for i in range(len(examples)) if i not in sent):
        res.drafts += [dict(question_id=examples[i].id, k=j, draft=c.text, truncated=c.finish_reason == "length")
                       for j, c in enumerate(drafts[i])]


def _wave(todo: list[int], distinct: list[int], room: int | None) -> list[int]:
    """The next questions to send: up to `WAVE`, and only as many as the budget `room` pays for in full (the strong
    model alone plus one refinement per distinct draft each)."""
    wave: list[int] = []
    for i in todo[:WAVE]:
        if room is not None:
            room -= 1 + distinct[i]
            if room < 0:
                break
        wave.append(i)
    return wave


def _refine(collab: Collaborator, evaluator: Evaluator, examples: Sequence[Example], drafts: list[list[Completion]],
            questions: list[int], refined: dict[int, dict[int, Answered]], scores: dict[int, dict[int, float]],
            room: int | None = None) -> int:
    """Refine each question's drafts whose shown text has not been refined yet (once per distinct text, at most
    `room` of them); copies take the first one's answer and score. Returns the strong requests sent."""
    shown = collab.prompter.shown_draft
    jobs: list[tuple[int, int]] = []
    for i in questions:
        seen = {shown(drafts[i][j].text) for j in refined[i]}
        for j, c in enumerate(drafts[i]):
            if j not in refined[i] and shown(c.text) not in seen:
                seen.add(shown(c.text))
                jobs.append((i, j))
    jobs = jobs if room is None else jobs[: max(room, 0)]
    if jobs:
        answers = collab.refine([examples[i] for i, _ in jobs], [drafts[i][j].text for i, j in jobs])
        got = evaluator.score([a.text for a in answers], [examples[i] for i, _ in jobs])
        for (i, j), a, s in zip(jobs, answers, got):
            refined[i][j], scores[i][j] = a, s
    for i in questions:  # copies of a refined text share its refinement and score
        by_text = {shown(drafts[i][j].text): j for j in refined[i]}
        for j, c in enumerate(drafts[i]):
            if j not in scores[i] and shown(c.text) in by_text:
                scores[i][j] = scores[i][by_text[shown(c.text)]]
    return requests(answers) if jobs else 0


def _splits(scores: dict[int, float], s0: float, cfg: MiningConfig) -> bool:
    """Whether a question's drafts split into chosen and rejected ones (rank mode: into better and worse)."""
    if cfg.mode == "rank":
        return len(set(scores.values())) > 1
    return any(s > s0 for s in scores.values()) and any(s <= s0 for s in scores.values())
