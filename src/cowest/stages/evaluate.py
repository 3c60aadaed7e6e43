"""Stage 4: the evaluation systems on a split (the test, the held-out mined questions, a probe), with confidence
intervals, paired comparisons and draft diagnostics; writes predictions, results and their tables."""

from __future__ import annotations

import logging
from datetime import datetime

from .. import checks
from ..context import RunContext, weak_key
from ..evaluations import default_systems, evaluations
from ..io import hash_obj, read_json, write_json, write_jsonl, write_text
from ..ledger import eval_decl
from ..results import VALID_EVAL, BestSingle, EvalResults, best_single, load_results
from ..systems import DEFAULT_SERVED, get_systems, round_of

log = logging.getLogger(__name__)


def run_eval(ctx: RunContext, systems: list[str] | None = None, name: str = "eval", split: str | None = None) -> dict:
    """Evaluate `systems` (default: the recipe's) on `split` (default: the recipe's) unless up to date."""
    from ..evaluate import evaluate
    from ..report import results_csv
    from ..report.tables import comparisons_markdown, results_markdown

    r = ctx.recipe
    split = split or r.eval.split
    systems_ = get_systems(systems or default_systems(r))
    variants = sorted({s.variant for s in systems_ if s.variant})
    examples = split_examples(ctx, split)
    if r.eval.limit is not None and split == r.eval.split:  # the limit is the recipe's split's; probes stay whole
        examples = examples[: r.eval.limit]
    best = None
    if split == "test":  # the best single model is fixed on validation data (or a priori), never on the test
        best = best_single(load_results(ctx.layout.eval(VALID_EVAL).results), [s.name for s in systems_])
    decl = eval_decl(name, split, [s.name for s in systems_], r.rounds, r.alignment)
    inputs = ctx.inputs(decl, split=split, systems=[s.name for s in systems_],
                        questions=hash_obj([e.id for e in examples]), best_single=best["system"] if best else None,
                        weak_models={v: weak_key(ctx.weak_config(v)) for v in variants})

    out = ctx.layout.eval(name)

    def run() -> dict:
        strong = any(s.kind != "weak" for s in systems_)
        collab = ctx.collaborator(None, evaluation=True) if strong else ctx.weak_only()
        rows, results = evaluate(examples, systems_, ctx.weak, collab, r.eval, seed=r.seed, corpus=ctx.task.corpus,
                                 best_single=best["system"] if best else None)
        results.task, results.split, results.recipe = r.task.name, split, r.name
        results.date = datetime.now().isoformat(timespec="seconds")
        mark_skipped_alignment(ctx, results)
        if best:
            results.best_single = BestSingle(**{k: best[k] for k in ("system", "rule", "detail")})
        write_jsonl(out.predictions, rows)
        write_json(out.results, results.dump())
        tables = f"{results_markdown(results)}\n\n{comparisons_markdown(results)}".strip()
        write_text(out.results_md, f"# {r.name}: {r.task.name} / {split} ({len(examples)} questions)\n\n{tables}\n")
        write_text(out.results_csv, results_csv(results))
        sft_model = [v for v in results.drafts if v != "sft" and ctx.is_sft(v)]
        warns = checks.eval_warnings(results, name, r.collab.draft_max_tokens, r.collab.draft_sections, sft_model)
        warns += checks.shown_draft_warnings(rows, r.collab.draft_sections, name)
        extra = {}
        if split == "valid":  # validation decides what `cowest serve` answers as its default model
            warns += [*checks.collaboration_warnings(results, name), *checks.fact_drop_warnings(results, name),
                      *checks.fact_gain_warnings(results, name)]
            extra["served_default"] = served_default(results)
        return dict(questions=len(examples), systems=len(systems_), warnings=checks.report(warns), **extra)

    manifest = ctx.ledger.run(name, inputs, run)
    log.info("%s", out.results_md.read_text().strip())
    return manifest


UNDONE_BECAUSE = {"fact_recall": "it lowered fact recall",
                  "heldout_margin": "no epoch preferred the held-out chosen drafts"}


def mark_skipped_alignment(ctx: RunContext, results: EvalResults) -> None:
    """Rows whose weak model is an aligned round that was skipped (too few pairs) or undone (the DPO check) say that
    they repeat the SFT rows."""
    skipped = [k for k in range(1, ctx.recipe.rounds + 1) if ctx.alignment_skipped(k)]
    if not skipped:
        return
    results.alignment_skipped = [f"round_{k}" for k in skipped]
    for name, entry in results.systems.items():
        variant = next((s.variant for s in get_systems([name])), None)
        k = round_of(variant, ctx.recipe.rounds)
        if k in skipped:
            same = "SFT model" if ctx.is_sft(variant) else "previous round's model"
            why = UNDONE_BECAUSE.get(ctx.alignment_undone(k) or "", "too few pairs")
            entry.label = f"{entry.label} = {same} (alignment skipped: {why})"


def split_examples(ctx: RunContext, split: str) -> list:
    """The questions of a split: the test, the held-out mined questions (`valid`) or a task extra (a probe)."""
    if split == "test":
        return ctx.task.test
    if split == "valid":
        return valid_examples(ctx)
    if split == "sft_valid":
        return ctx.questions.sft_valid
    return ctx.task.extra[split]


def valid_examples(ctx: RunContext) -> list:
    """The mined questions held out of DPO in round 1 (validation: settings are chosen here, never on the test)."""
    path = ctx.layout.round(1).heldout
    held = set(read_json(path)) if path.exists() else set()
    return [e for e in ctx.task.train if e.id in held]


def _planned(ctx: RunContext, name: str) -> tuple[str, list[str]] | None:
    """(split, systems) of one of the run's evaluations, None when the run makes none of that name."""
    return evaluations(ctx.recipe, ctx.task, bool(ctx.questions.sft_valid)).get(name)


def run_eval_sft_valid(ctx: RunContext) -> dict | None:
    """The SFT model on its validation slice (`eval_sft_valid/`), when SFT has one."""
    if not (planned := _planned(ctx, "eval_sft_valid")):
        return None
    return run_eval(ctx, planned[1], name="eval_sft_valid", split=planned[0])


def run_eval_recall(ctx: RunContext) -> dict | None:
    """The weak models on the task's fact-recall probe (`eval_recall/`), when the task has one and the recipe asks."""
    if not (planned := _planned(ctx, "eval_recall")):
        return None
    return run_eval(ctx, planned[1], name="eval_recall", split=planned[0])


def run_eval_valid(ctx: RunContext) -> dict | None:
    """The single models and collaborations on the held-out mined questions (`eval_valid/`), when there are some."""
    if not (planned := _planned(ctx, "eval_valid")) or not valid_examples(ctx):
        return None
    return run_eval(ctx, planned[1], name="eval_valid", split=planned[0])


def served_default(results: EvalResults | dict) -> str | None:
    """The served system with the best mean score on the validation questions (a tie goes to the earlier in
    `systems.DEFAULT_SERVED`)."""
    systems = EvalResults.of(results).systems
    found = [s for s in DEFAULT_SERVED if s in systems]
    if not found:
        return None
    return max(found, key=lambda s: (systems[s].mean_score, -found.index(s)))
