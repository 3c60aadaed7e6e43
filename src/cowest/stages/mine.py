"""Stage 2: collaborative feedback. The round's weak model drafts for training questions it was not trained on, the
strong model refines the drafts, and drafts whose refinement beats the strong model alone become preference pairs.
A judge scores only after it has shown, on these questions' gold answers, that it can tell right from wrong."""

from __future__ import annotations

import logging
import random

from .. import checks
from ..collab import JudgeEvaluator, RuleEvaluator, heldout_questions, mine
from ..collab.adaptive import mine_adaptive
from ..collab.evaluators import Evaluator, calibrate_judge
from ..collab.recall import FactSheet, cap_per_line
from ..context import RunContext, weak_key
from ..io import write_json, write_jsonl
from ..ledger import round_decls
from ..tasks.base import Example

log = logging.getLogger(__name__)


def run_mine(ctx: RunContext, round_: int) -> dict:
    """Mine round `round_`'s pairs with the previous round's weak model unless up to date; returns the manifest."""
    r, out = ctx.recipe, ctx.layout.round(round_)
    variant = "sft" if round_ == 1 else f"round_{round_ - 1}"
    decl = round_decls(round_, r.rounds)[0]  # offline alignment's mining (on-policy mines in its own stage)
    inputs = ctx.inputs(decl, weak_model=weak_key(ctx.weak_config(variant)))

    def run() -> dict:
        examples = ctx.questions.mining
        held = frozenset(heldout_questions([e.id for e in examples], r.mining.heldout_fraction, r.seed))
        weak = ctx.weak(variant)
        try:
            collab = ctx.collaborator(weak)
            evaluator, chosen = choose_evaluator(ctx, examples)
            at = dict(seed=r.seed, round_=round_, sheet=FactSheet(ctx.task.facts))  # no pair against the fact file
            if r.mining.strategy == "adaptive":
                res = mine_adaptive(examples, collab, evaluator, r.mining, heldout=held, **at)
            else:
                res = mine(examples, collab, evaluator, r.mining, **at)
        finally:
            weak.close()
        for name in ("drafts", "refinements", "scores"):
            write_jsonl(out.mined(name), getattr(res, name))
        train = [p for p in res.pairs if p["question_id"] not in held]
        kept = cap_per_line(train, at["sheet"], ctx.prompter.shown_draft, r.mining.max_pairs_per_fact)
        write_jsonl(out.pairs, kept)
        write_jsonl(out.pairs_heldout, [p for p in res.pairs if p["question_id"] in held])
        res.stats.update(heldout_questions=len(held), heldout_pairs=len(res.pairs) - len(train), train_pairs=len(kept),
                         pairs_capped_per_fact=len(train) - len(kept), strategy=r.mining.strategy, **chosen)
        write_json(out.heldout, sorted(held))
        write_json(out.mining_stats, res.stats)
        log.info("mining round %d: %s", round_, ", ".join(f"{k}={_fmt(v)}" for k, v in res.stats.items()
                                                          if not isinstance(v, dict)))
        return {**res.stats, "warnings": checks.report(checks.mining_warnings(res.stats, round_, r))}

    return ctx.ledger.run(decl.name, inputs, run)


def choose_evaluator(ctx: RunContext, examples: list[Example]) -> tuple[Evaluator, dict]:
    """The rule metric, or the judge when the recipe asks for it and it tells gold answers from wrong ones on
    `checks.judge_questions` of these questions (ROC AUC at least `checks.min_judge_auc`); else the rule metric."""
    r = ctx.recipe
    if r.mining.evaluator == "rule":
        return RuleEvaluator(ctx.prompter), {"evaluator": "rule"}
    judge = JudgeEvaluator(ctx.judge, ctx.prompter, retries=r.mining.judge_retries)
    sample = random.Random(f"judge:{r.seed}").sample(examples, min(r.checks.judge_questions, len(examples)))
    cal = calibrate_judge(judge, sample, r.seed)
    log.info("judge calibration on %d questions: ROC AUC %.2f (right answers %.2f, wrong ones %.2f on average)",
             cal["questions"], cal["auc"], cal["right_mean"], cal["wrong_mean"])
    if cal["auc"] >= r.checks.min_judge_auc:
        return judge, {"evaluator": "judge", "judge_calibration": cal}
    why = (f"the judge told gold answers from wrong ones with ROC AUC {cal['auc']:.2f} on {cal['questions']} "
           f"questions (checks.min_judge_auc {r.checks.min_judge_auc:g}; it rated {100 * cal['wrong_rated_high']:.0f}% "
           "of the wrong answers 9 or 10), so its scores would be noise: mining scored with the task's rule metric "
           "against the gold instead")
    return RuleEvaluator(ctx.prompter), {"evaluator": "rule", "judge_rejected": True, "judge_calibration": cal,
                                         "evaluator_reason": why}


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
