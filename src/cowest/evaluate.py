"""Evaluation: systems (rows) x metrics with bootstrap confidence intervals and strong-model cost (`EvalResults`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import fmean
from typing import Callable, Sequence

from .collab.baselines import BM25Retriever, weak_predictions
from .collab.overlap import Gathered, Later
from .collab.pipeline import Collaborator
from .collab.prompter import cut_in_shown, draft_answer_section
from .collab.recall import states_fact, states_gold
from .config import EvalConfig
from .models.base import Backend, Usage
from .results import RESULTS_VERSION, Comparison, DraftDiagnostics, EvalResults, Interval, Price, SystemResult
from .systems import System
from .tasks.base import Example, TaskType
from .tasks.metrics import bootstrap_ci, bootstrap_metric, paired_comparison


@dataclass
class Outputs:
    """What the systems wrote on the questions: each weak variant's drafts, each strong system's answers."""

    drafts: dict[str, list[str]] = field(default_factory=dict)
    cut: dict[str, list[bool]] = field(default_factory=dict)  # drafts that hit draft_max_tokens
    draft_s: dict[str, float] = field(default_factory=dict)  # seconds to load the weak model and draft
    draft_calls: dict[str, Usage] = field(default_factory=dict)  # model calls and cache hits of each variant's drafts
    shown: dict[str, list[str | None]] = field(default_factory=dict)  # what each system was shown besides the question
    asked: dict[str, Gathered] = field(default_factory=dict)  # each strong system's answers, sent through `later`


def evaluate(
    examples: Sequence[Example],
    systems: Sequence[System],
    weak_factory: Callable[[str], Backend],
    collab: Collaborator,
    cfg: EvalConfig,
    seed: int = 0,
    corpus: Sequence[str] = (),
    best_single: str | None = None,
) -> tuple[list[dict], EvalResults]:
    """Run every system on `examples`; return per-question prediction rows and the results."""
    out = Outputs()
    with collab.background() as later:
        # Systems that need no draft first: overlapping, their requests are answered while the weak model drafts.
        ask_without_drafts(out, examples, systems, collab, later, corpus, cfg.retrieval_k)
        # Then each weak variant's drafts, one weak model in memory at a time, refined as they are written.
        for variant in dict.fromkeys(s.variant for s in systems if s.variant):
            draft_variant(out, variant, examples, systems, weak_factory, collab, later)
        answered = {name: g.result() for name, g in out.asked.items()}
    return score(out, answered, examples, systems, collab.prompter.task_type, cfg, seed, best_single,
                 collab.prompter.draft_sections)


def ask_without_drafts(out: Outputs, examples: Sequence[Example], systems: Sequence[System], collab: Collaborator,
                       later: Later, corpus: Sequence[str], retrieval_k: int) -> None:
    """Send the strong model alone and retrieval (BM25 passages -> strong) their questions."""
    tt = collab.prompter.task_type
    for s in systems:
        if s.kind == "strong":
            out.asked[s.name] = Gathered.send(later, collab.strong_alone, examples)
            out.shown[s.name] = [None] * len(examples)
        elif s.kind == "retrieval":
            hits = BM25Retriever(corpus).top_k([_query(tt, e) for e in examples], retrieval_k)
            convs = [collab.prompter.retrieval(e, h) for e, h in zip(examples, hits)]
            out.asked[s.name] = Gathered.send(later, collab.ask_strong, examples, convs)
            out.shown[s.name] = ["\n\n".join(h) for h in hits]


def draft_variant(out: Outputs, variant: str, examples: Sequence[Example], systems: Sequence[System],
                  weak_factory: Callable[[str], Backend], collab: Collaborator, later: Later) -> None:
    """One weak variant's greedy drafts, refined as they are written for its collaborative systems, and its
    SuperICL predictions; its weak model is loaded first and closed after."""
    t0 = time.perf_counter()
    weak = weak_factory(variant)
    before = _usage(weak)
    refiners = [s for s in systems if s.kind == "collab" and s.variant == variant]
    try:
        collab.weak = weak
        if refiners:
            loaded = time.perf_counter() - t0
            sampled, refined = collab.draft_and_refine(examples, later)
            for s in refiners:
                out.asked[s.name] = refined
            out.draft_s[variant] = loaded + refined.draft_s
        else:
            sampled = collab.drafts(examples)
            out.draft_s[variant] = time.perf_counter() - t0
        completions = [c[0] for c in sampled]
        out.drafts[variant] = [c.text for c in completions]
        out.cut[variant] = [c.finish_reason == "length" for c in completions]
        for s in systems:
            if s.variant == variant and s.kind in ("weak", "collab"):
                out.shown[s.name] = list(out.drafts[variant])
            elif s.variant == variant and s.kind == "supericl":
                predicted = weak_predictions(weak, collab.prompter, examples, out.drafts[variant])
                convs = [collab.prompter.supericl(e, a, p) for e, (a, p) in zip(examples, predicted)]
                out.asked[s.name] = Gathered.send(later, collab.ask_strong, examples, convs)
                out.shown[s.name] = [f"{a} (confidence {p:.2f})" for a, p in predicted]
        out.draft_calls[variant] = _usage_since(weak, before)
    finally:
        collab.weak = None
        weak.close()


def score(out: Outputs, answered: dict[str, list], examples: Sequence[Example], systems: Sequence[System],
          tt: TaskType, cfg: EvalConfig, seed: int, best_single: str | None,
          sections: Sequence[str] | None = None) -> tuple[list[dict], EvalResults]:
    """Prediction rows, and each system's metrics, comparisons and draft diagnostics (`sections`: what the strong
    model reads of a draft, `collab.draft_sections`)."""
    rows: list[dict] = []
    results = EvalResults(version=RESULTS_VERSION, n=len(examples), confidence=cfg.confidence,
                          score_metric=score_metric(tt), systems={})
    if cfg.price:
        results.price = Price.model_validate(cfg.price.model_dump())
    per_example: dict[str, list[float]] = {}
    for s in systems:
        calls, strong_s = Usage(), 0.0
        if s.kind == "weak":
            texts = out.drafts[s.variant]
            answers = [tt.extract(draft_answer_section(t), e) for t, e in zip(texts, examples)]
            ptok = ctok = [0] * len(examples)
            cut = out.cut[s.variant]
        else:
            got = answered[s.name]
            calls = Usage(calls=sum(a.calls for a in got), cache_hits=sum(a.cache_hits for a in got))
            texts, answers = [a.text for a in got], [a.answer for a in got]
            ptok, ctok = [a.prompt_tokens for a in got], [a.completion_tokens for a in got]
            cut = [a.truncated for a in got]
            strong_s = out.asked[s.name].seconds
        # overlapping, a system's strong requests are in flight while drafts are written: its span, not a share
        wall = strong_s + (out.draft_s.get(s.variant, 0.0) if s.variant else 0.0)
        scores = [tt.score(a, e) for a, e in zip(answers, examples)]
        rows += [dict(system=s.name, question_id=e.id, question=e.question, draft=out.shown[s.name][i], text=texts[i],
                      answer=answers[i], gold=e.gold, score=scores[i], prompt_tokens=ptok[i],
                      completion_tokens=ctok[i], truncated=cut[i], metadata=filter_metadata(e))
                 for i, e in enumerate(examples)]
        entry = results.systems[s.name] = summarise(s, answers, scores, examples, ptok, ctok, wall, tt, cfg, seed)
        entry.truncated_share = fmean(cut) if cut else 0.0
        drafted = out.draft_calls.get(s.variant, Usage()) if s.variant else Usage()
        # Answers read from the call cache take no compute: wall time alone would make them look cheap.
        entry.calls, entry.cache_hits = calls.calls + drafted.calls, calls.cache_hits + drafted.cache_hits
        if s.variant and s.kind in ("weak", "collab"):  # knowledge recall of the draft itself, whatever its answer
            entry.draft_states_gold = fmean(states_gold(d, e) for d, e in zip(out.drafts[s.variant], examples))
        per_example[s.name] = scores
    results.comparisons = compare(per_example, systems, cfg, seed, best_single)
    results.drafts = draft_diagnostics(out.drafts, out.cut, per_example, systems, examples, sections)
    return rows, results


def score_metric(tt: TaskType) -> str:
    """The metric whose per-question value `tt.score` is: paired comparisons are in it."""
    # Short answers are scored by token F1 beside an exact-match primary column; choice tasks by accuracy.
    return getattr(tt, "score_metric", "f1" if tt.name == "short_answer" else "accuracy")


def _usage(backend: Backend | None) -> Usage:
    """A copy of a backend's running usage (empty without a backend)."""
    u = getattr(backend, "usage", None)
    return Usage(**u.as_dict()) if u is not None else Usage()


def _usage_since(backend: Backend | None, before: Usage) -> Usage:
    """The calls and cache hits a backend counted since `before`."""
    now = _usage(backend)
    return Usage(**{k: v - getattr(before, k) for k, v in now.as_dict().items()})


def draft_diagnostics(
    drafts: dict[str, list[str]],
    cut: dict[str, list[bool]],
    per_example: dict[str, list[float]],
    systems: Sequence[System],
    examples: Sequence[Example],
    sections: Sequence[str] | None = None,
) -> dict[str, DraftDiagnostics]:
    """Per weak variant: how often its drafts state the fact and the gold, length, cut-off share, change vs the SFT
    drafts, and how often refining them helped or hurt against the strong model alone."""
    out: dict[str, DraftDiagnostics] = {}
    for variant, texts in drafts.items():
        d = out[variant] = DraftDiagnostics(
            n=len(texts),
            states_gold=fmean(states_gold(t, e) for t, e in zip(texts, examples)) if texts else 0.0,
            mean_chars=fmean(len(t) for t in texts) if texts else 0.0,
            truncated_share=fmean(cut[variant]) if texts else 0.0,
        )
        if sections:  # only cuts inside what the strong model reads of a draft
            shown = [c and cut_in_shown(t, sections) for t, c in zip(texts, cut[variant])]
            d.shown_cut_share = fmean(shown) if shown else 0.0
        flags = [states_fact(t, e) for t, e in zip(texts, examples)]
        stated = [x for x in flags if x is not None]
        if stated and len(stated) >= len(texts) / 2:  # over the questions with a fact to check, if most have one
            d.states_fact = fmean(stated)
        if variant != "sft" and "sft" in drafts:
            d.changed_vs_sft = fmean(a.strip() != b.strip() for a, b in zip(texts, drafts["sft"]))
        collab = next((s.name for s in systems if s.kind == "collab" and s.variant == variant), None)
        if collab and "strong" in per_example:
            pairs = list(zip(per_example[collab], per_example["strong"]))
            d.helped = fmean(c > a for c, a in pairs) if pairs else 0.0
            d.hurt = fmean(c < a for c, a in pairs) if pairs else 0.0
            if d.states_fact is not None:
                with_, without = by_fact(flags, per_example[collab])
                for k, v in (("scored_with_fact", with_), ("scored_without_fact", without),
                             ("fact_gain", fact_gain(d.states_fact, with_, without))):
                    if v is not None:
                        setattr(d, k, v)
    return out


def by_fact(flags: Sequence[bool | None], scores: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean score where the draft states its question's fact and where it does not (None: no such question)."""
    with_ = [s for f, s in zip(flags, scores) if f is True]
    without = [s for f, s in zip(flags, scores) if f is False]
    return (fmean(with_) if with_ else None), (fmean(without) if without else None)


def fact_gain(share: float, with_: float | None, without: float | None) -> float | None:
    """What refinement would gain if every draft stated its fact: the drafts without it, scored as those with it.

    The most alignment can add by teaching facts alone, at the scores measured here (0 when every draft states
    its fact; None when none does, as nothing says what the fact is worth)."""
    if with_ is None:
        return None
    return 0.0 if without is None else (1 - share) * (with_ - without)


def filter_metadata(example: Example) -> dict:
    """The example's scalar metadata (its data's own columns, e.g. kind), for the report's filters; not its source."""
    return {k: v for k, v in example.metadata.items()
            if k not in ("source", "reference_fact") and isinstance(v, (str, int, float, bool)) and len(str(v)) <= 60}


def _query(tt, example: Example) -> str:
    """The BM25 query: the question and its options."""
    return f"{example.question}\n{tt.format_options(example)}"


def compare(per_example: dict[str, list[float]], systems: Sequence[System], cfg: EvalConfig, seed: int,
            best_single: str | None = None) -> dict[str, Comparison]:
    """Paired bootstrap of each collaborative system against the best single model, refinement and the baselines.

    `best_single` is the single model fixed before the evaluation (on validation data); without one, the best
    single model on the evaluated questions themselves, which is only right for a split that is not the test.
    """
    singles = [s.name for s in systems if s.kind in ("weak", "strong")]
    out: dict[str, Comparison] = {}
    if not singles:
        return out
    best = best_single if best_single in singles else max(singles, key=lambda n: sum(per_example[n]))
    for s in systems:
        if s.kind != "collab":
            continue
        for other in dict.fromkeys([best, "refine", "collab_base", "supericl", "retrieval"]):
            if other in per_example and other != s.name:
                res = paired_comparison(per_example[s.name], per_example[other], n_boot=cfg.n_bootstrap,
                                        seed=seed, confidence=cfg.confidence)
                out[f"{s.name} - {other}"] = Comparison(**res, best_single=other == best)
    return out


def summarise(system, answers, scores, examples, ptok, ctok, wall, tt, cfg: EvalConfig, seed: int) -> SystemResult:
    """Metrics with bootstrap CIs, strong-model tokens per question and wall time for one system."""
    n = max(len(examples), 1)
    out = SystemResult(label=system.label, metrics={}, wall_s=round(wall, 2))
    for name, value in tt.metrics(answers, examples).items():
        if name == "answered":
            out.answered = value
            continue
        fn = lambda p, g, name=name: tt.metrics(p, g)[name]  # noqa: E731
        _, lo, hi = bootstrap_metric(fn, answers, examples, n_boot=cfg.n_bootstrap, confidence=cfg.confidence, seed=seed)
        out.metrics[name] = Interval(value=value, lo=lo, hi=hi)
    mean, lo, hi = bootstrap_ci(scores, n_boot=cfg.n_bootstrap, confidence=cfg.confidence, seed=seed)
    out.score = Interval(value=mean, lo=lo, hi=hi)
    out.strong_prompt_tokens_per_q = sum(ptok) / n
    out.strong_completion_tokens_per_q = sum(ctok) / n
    if cfg.price:
        per_q = (out.strong_prompt_tokens_per_q * cfg.price.prompt_per_million
                 + out.strong_completion_tokens_per_q * cfg.price.completion_per_million) / 1e6
        out.cost_per_1k = 1000 * per_q
    return out
