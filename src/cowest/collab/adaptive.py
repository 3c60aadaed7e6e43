"""Collaborative feedback that spends strong calls where pairs are (`mining.strategy: adaptive`).

The same rule as `feedback.mine` (a draft is chosen when its refinement beats the strong model alone), in an order
that wastes no strong call:
1. the weak model drafts K times for every question first (weak compute is cheap);
2. questions are sent to the strong model most promising first: those whose drafts disagree on the fact (some state
   the question's fact, or its gold, and some do not), then by how many different drafts they have, counted in what
   the strong model is shown (`collab.draft_sections`); a question whose drafts all show the same text cannot give
   a pair, so it is never sent;
3. per question, the strong model answers alone once; in paper mode a question it already answers perfectly cannot
   give a chosen draft, so its drafts are not sent. With `mining.alone: last` it answers alone only once the
   question's refinements score differently (refinements that all agree give no pair, whatever it scores);
   `auto` asks first for the first wave and last after it if that wave's figures say so (`alone_last_pays`);
4. each distinct shown draft is refined at most once (its copies share the refinement, as the call cache would make
   them), a few at a time, drafts that state the fact alternating with drafts that do not; a question stops being
   refined once it has all the pairs it may give (`mining.max_pairs_per_question`; rank mode: one) or once `GIVE_UP`
   refinements have all landed on one side;
5. where a question's drafts split (some help, some do not) and it still wants pairs when its drafts run out, the
   weak model drafts `mining.extra_drafts` more, once, and the new distinct ones are refined the same way;
6. questions go in waves of `WAVE`; mining stops after the wave that reaches `mining.pair_target` training pairs (as
   `mining.max_pairs_per_fact` keeps them), or before a question whose calls `mining.strong_call_budget` (strong
   requests, judge included) no longer pays for; only the short re-asks of answers that could not be read can go over
   it;
7. when every question has been sent and neither stop is reached, the questions whose drafts all showed one text draw
   K more (`mining.redraws` times at most), and those whose drafts now differ are sent the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Callable, Sequence

from ..config import MiningConfig
from ..models.base import Completion, Sampling
from ..tasks.base import Example
from .evaluators import Evaluator
from .feedback import record_question, requests
from .mining_stats import MiningResult, mining_stats
from .pipeline import Answered, Collaborator
from .recall import FactSheet, cap_per_line, states_fact, states_gold

WAVE = 16  # questions sent together: enough to keep a concurrent endpoint busy, few enough to stop near the target
FIRST = 2  # refinements a question gets at once to begin with: the fewest that can split
GIVE_UP = 3  # refinements on one side after which a question is left (rail fares: 25 of 26 splits showed by then)


@dataclass
class _Budget:
    """Strong requests spent so far, the judge's included, against `mining.strong_call_budget` (`limit`)."""

    limit: int | None
    evaluator: Evaluator
    spent: int = 0  # strong requests: alone and refinements

    def __post_init__(self) -> None:
        self.judged0 = getattr(self.evaluator, "requests", 0)

    def used(self) -> int:
        """Every request so far, strong and judge."""
        return self.spent + getattr(self.evaluator, "requests", 0) - self.judged0

    def room(self) -> int | None:
        """Requests the budget still pays for (None: no budget)."""
        return None if self.limit is None else self.limit - self.used()


def mine_adaptive(examples: Sequence[Example], collab: Collaborator, evaluator: Evaluator, cfg: MiningConfig,
                  seed: int = 0, round_: int = 1, heldout: frozenset[str] = frozenset(),
                  sheet: FactSheet | None = None) -> MiningResult:
    """Mine pairs from `examples` in the order above; pairs of `heldout` questions do not count toward the target
    (`sheet`: the fact file, for `mining.drop_against_file`)."""
    sampling = Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=collab.cfg.draft_max_tokens,
                        seed=seed)
    shown, tiebreak = collab.prompter.shown_draft, f"adaptive:{seed}:{round_}"
    drafts = [list(cs) for cs in collab.drafts(examples, n=cfg.k, sampling=sampling)]  # 1.
    distinct, todo = _order(examples, drafts, shown, tiebreak)  # 2.
    identical, redrawn, differ = len(examples) - len(todo), 0, 0  # redrawn: questions drawn for again (7.)
    res, sent, stopped_by, budget = MiningResult(), [], "exhausted", _Budget(cfg.strong_call_budget, evaluator)
    alone_right = waves = 0
    alone_from: int | None = 0 if cfg.alone == "last" else None  # questions sent before alone was asked last

    def reached() -> bool:  # the training pairs DPO will keep (`mining.max_pairs_per_fact`), read only with a target
        return cfg.pair_target is not None and len(cap_per_line(
            [p for p in res.pairs if p["question_id"] not in heldout], sheet or FactSheet([]), shown,
            cfg.max_pairs_per_fact)) >= cfg.pair_target

    pos, last, draws = 0, cfg.alone == "last", 0
    while True:
        if pos == len(todo):  # 7.
            left = budget.room()
            again = sorted(set(range(len(examples))) - set(sent))  # all their drafts showed one text
            if not again or reached() or draws == cfg.redraws or (left is not None and left < 1 + FIRST):
                break
            draws += 1
            fresh = replace(sampling, seed=seed + 15485863 * draws)  # a prime apart from the waves' and extensions
            distinct, todo = _redraw(collab, examples, drafts, again, cfg.k, fresh, tiebreak)
            pos, redrawn, differ = 0, redrawn + len(again), differ + len(todo)
            continue
        if reached():
            stopped_by = "pair_target"
            break
        wave = _wave(todo[pos:], distinct, budget.room())
        if not wave:
            stopped_by = "budget"
            break
        pos += len(wave)
        more = replace(sampling, seed=seed + 7919 * (waves + 1))
        weigh = cfg.alone == "auto" and not waves  # auto: the first wave's figures decide when alone is asked
        right, pays = _send(res, wave, examples, drafts, collab, evaluator, cfg, more, budget, last, weigh,
                            (seed, round_, sheet))  # 3.-5.
        alone_right += right
        if pays:
            last, alone_from = True, len(wave)
        sent += wave
        waves += 1
    if stopped_by == "exhausted" and reached():
        stopped_by = "pair_target"
    _record_unsent(res, examples, drafts, set(sent))
    res.stats = mining_stats(res, len(sent), cfg.k, collab.prompter.draft_sections)
    res.stats.update(candidates=len(examples), questions_identical_drafts=identical, redraws=draws,
                     questions_redrawn=redrawn, questions_redrawn_differ=differ, questions_alone_right=alone_right,
                     alone=cfg.alone, alone_last_after=alone_from,
                     questions_alone_not_asked=sum(s["k"] is None and s["score"] is None for s in res.scores),
                     waves=waves, stopped_by=stopped_by, strong_requests=budget.used(),
                     pairs_per_100_requests=100 * len(res.pairs) / budget.used() if budget.used() else 0.0)
    return res


def _send(res: MiningResult, wave: list[int], examples: Sequence[Example], drafts: list[list[Completion]],
          collab: Collaborator, evaluator: Evaluator, cfg: MiningConfig, sampling: Sampling,
          budget: _Budget, last: bool, weigh: bool, at: tuple[int, int, FactSheet | None]) -> tuple[int, bool]:
    """Steps 3-5 for one wave, each question recorded into `res` (`at`: the seed, round and fact sheet), its requests
    into `budget`. Returns the questions the strong model alone got right (paper mode) and (only if `weigh`) whether
    this wave's figures say asking alone last pays."""
    alone: dict[int, Answered | None] = dict.fromkeys(wave)
    s0: dict[int, float | None] = dict.fromkeys(wave)
    if not last:
        budget.spent += _ask_alone(collab, evaluator, examples, wave, alone, s0)  # 3.
    live = [i for i in wave if not (cfg.mode == "paper" and (s0[i] or 0.0) >= 1.0)]
    refined: dict[int, dict[int, Answered]] = {i: {} for i in wave}
    scores: dict[int, dict[int, float]] = {i: {} for i in wave}
    _refine_wave(collab, evaluator, examples, drafts, live, alone, s0, refined, scores, cfg, sampling, budget)  # 4.-5.
    right = sum(cfg.mode == "paper" and (s0[i] or 0.0) >= 1.0 for i in wave)  # asked first or last
    for i in wave:
        _share_copies(collab, drafts[i], refined[i], scores[i])
        record_question(res, collab, examples[i], alone[i], s0[i], drafts[i], refined[i], scores[i], cfg, *at)
    return right, weigh and alone_last_pays(wave, live, s0, scores, cfg)


def alone_last_pays(wave: Sequence[int], live: Sequence[int], s0: dict[int, float | None],
                    scores: dict[int, dict[int, float]], cfg: MiningConfig) -> bool:
    """Whether asking the strong model alone last costs fewer strong calls per question than asking it first, from
    a wave where it was asked first. First: 1 + (1 - p) R, where p is the share of questions it answered perfectly
    (paper mode), R the refinements per other question; last, counting a question it answers perfectly at the
    most R refinements and one alone: R + (1 - p) q + p, where q is the share of those whose refinements differ."""
    if not live:
        return False
    p = (len(wave) - len(live)) / len(wave) if cfg.mode == "paper" else 0.0
    r = sum(len(scores[i]) for i in live) / len(live)
    q = sum(len(set(scores[i].values())) > 1 for i in live) / len(live)
    return r + (1 - p) * q + p < 1 + (1 - p) * r


def _ask_alone(collab: Collaborator, evaluator: Evaluator, examples: Sequence[Example], ask: Sequence[int],
               alone: dict[int, Answered | None], s0: dict[int, float | None]) -> int:
    """The strong model alone on the questions `ask`, scored into `alone` and `s0`. Returns the strong requests."""
    if not ask:
        return 0
    qs = [examples[i] for i in ask]
    got = collab.strong_alone(qs)
    for i, a, s in zip(ask, got, evaluator.score([a.text for a in got], qs)):
        alone[i], s0[i] = a, s
    return requests(got)


def _refine_wave(collab: Collaborator, evaluator: Evaluator, examples: Sequence[Example],
                 drafts: list[list[Completion]], live: list[int], alone: dict[int, Answered | None],
                 s0: dict[int, float | None], refined: dict[int, dict[int, Answered]],
                 scores: dict[int, dict[int, float]], cfg: MiningConfig, sampling: Sampling,
                 budget: _Budget) -> None:
    """Steps 4-5 for one wave's questions: refine a few drafts of each at a time, in one batch per step, until each
    question has its pairs, gives up or runs out of drafts or the budget does; where the strong model alone was not
    asked yet, ask it once a question's refinements differ. Every request is added to `budget` as it is sent."""
    queues = {i: _queue(collab, examples[i], drafts[i], refined[i]) for i in live}
    active, extended = list(live), set()
    while active:
        take = {i: queues[i][: FIRST if not refined[i] else 1] for i in active}
        for i in active:
            del queues[i][: len(take[i])]
        budget.spent += _refine(collab, evaluator, examples, drafts, take, refined, scores, budget.room())
        ask = [i for i in active if s0[i] is None and len(set(scores[i].values())) > 1]
        left = budget.room()
        budget.spent += _ask_alone(collab, evaluator, examples, ask if left is None else ask[: max(left, 0)], alone, s0)
        going = [i for i in active if _wants_more(scores[i], s0[i], cfg)]
        grow = [i for i in going if not queues[i] and cfg.extra_drafts and i not in extended
                and _splits(scores[i], s0[i], cfg)]
        if grow:
            new = collab.drafts([examples[i] for i in grow], n=cfg.extra_drafts,
                                sampling=replace(sampling, seed=sampling.seed + 104729 * len(extended)))
            for i, cs in zip(grow, new):
                drafts[i].extend(cs)
                queues[i] = _queue(collab, examples[i], drafts[i], refined[i])
            extended |= set(grow)
        left = budget.room()
        active = [i for i in going if queues[i]] if left is None or left > 0 else []


def _order(examples: Sequence[Example], drafts: list[list[Completion]], shown: Callable[[str], str],
           seed: str, among: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """Each question's number of distinct shown drafts, and the questions (of `among`, default all) with more than
    one, those whose drafts disagree on the fact first, then most distinct first (ties in a seeded random order)."""
    rng = random.Random(seed)
    tiebreak = {e.id: rng.random() for e in examples}
    texts = [{shown(c.text) for c in ds} for ds in drafts]
    distinct = [len(t) for t in texts]
    mixed = [len({_states(t, e) for t in ts}) > 1 for ts, e in zip(texts, examples)]
    order = sorted(range(len(examples)) if among is None else among,
                   key=lambda i: (not mixed[i], -distinct[i], tiebreak[examples[i].id]))
    return distinct, [i for i in order if distinct[i] > 1]


def _redraw(collab: Collaborator, examples: Sequence[Example], drafts: list[list[Completion]], again: list[int],
            k: int, sampling: Sampling, tiebreak: str) -> tuple[list[int], list[int]]:
    """Step 7: `k` more drafts for each question of `again`, and `_order`'s figures for those that now differ."""
    for i, cs in zip(again, collab.drafts([examples[i] for i in again], n=k, sampling=sampling)):
        drafts[i].extend(cs)
    return _order(examples, drafts, collab.prompter.shown_draft, tiebreak, among=again)


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


def _queue(collab: Collaborator, ex: Example, drafts: list[Completion], done: dict[int, Answered]) -> list[int]:
    """The drafts of one question still to refine, one per shown text not refined yet, alternating those that state
    the question's fact (or gold) with those that do not, so that a split shows in the first refinements."""
    shown = collab.prompter.shown_draft
    seen = {shown(drafts[j].text) for j in done}
    firsts: list[int] = []
    for j, c in enumerate(drafts):
        if j not in done and shown(c.text) not in seen:
            seen.add(shown(c.text))
            firsts.append(j)
    hits = [j for j in firsts if _states(shown(drafts[j].text), ex)]
    misses = [j for j in firsts if j not in hits]
    return [j for pair in zip_longest(hits, misses) for j in pair if j is not None]


def _states(text: str, ex: Example) -> bool:
    """Whether a shown draft states its question's fact, or its gold where the question has no checkable fact."""
    fact = states_fact(text, ex)
    return states_gold(text, ex) if fact is None else fact


def _refine(collab: Collaborator, evaluator: Evaluator, examples: Sequence[Example], drafts: list[list[Completion]],
            take: dict[int, list[int]], refined: dict[int, dict[int, Answered]], scores: dict[int, dict[int, float]],
            room: int | None = None) -> int:
    """Refine the drafts `take` names for each question (at most `room` of them) and score them. Returns the strong
    requests sent."""
    jobs = [(i, j) for i, js in take.items() for j in js]
    jobs = jobs if room is None else jobs[: max(room, 0)]
    if not jobs:
        return 0
    answers = collab.refine([examples[i] for i, _ in jobs], [drafts[i][j].text for i, j in jobs])
    got = evaluator.score([a.text for a in answers], [examples[i] for i, _ in jobs])
    for (i, j), a, s in zip(jobs, answers, got):
        refined[i][j], scores[i][j] = a, s
    return requests(answers)


def _share_copies(collab: Collaborator, drafts: list[Completion], refined: dict[int, Answered],
                  scores: dict[int, float]) -> None:
    """Copies of a refined shown text take its score (the call cache would have given them its answer)."""
    shown = collab.prompter.shown_draft
    by_text = {shown(drafts[j].text): j for j in refined}
    for j, c in enumerate(drafts):
        if j not in scores and shown(c.text) in by_text:
            scores[j] = scores[by_text[shown(c.text)]]


def _counts(scores: dict[int, float], s0: float) -> tuple[int, int]:
    """(chosen, rejected) drafts among those refined: paper mode's rule, delta > 0."""
    return sum(s > s0 for s in scores.values()), sum(s <= s0 for s in scores.values())


def _wants_more(scores: dict[int, float], s0: float | None, cfg: MiningConfig) -> bool:
    """Whether one more refinement could add a pair: not once the question has all the pairs it may give (paper: the
    per-question cap; rank: its one pair), nor once `GIVE_UP` refinements have all landed on one side (the strong
    model alone not asked: all scored the same; once they differ and it still is not, the budget is spent)."""
    if cfg.mode == "rank" or s0 is None:
        return len(set(scores.values())) == 1 and len(scores) < GIVE_UP
    chosen, rejected = _counts(scores, s0)
    if chosen and rejected:
        return chosen * rejected < cfg.max_pairs_per_question
    return len(scores) < GIVE_UP


def _splits(scores: dict[int, float], s0: float | None, cfg: MiningConfig) -> bool:
    """Whether a question's drafts split into chosen and rejected ones (rank mode: into better and worse)."""
    if cfg.mode == "rank":
        return len(set(scores.values())) > 1
    if s0 is None:
        return False
    chosen, rejected = _counts(scores, s0)
    return bool(chosen and rejected)
