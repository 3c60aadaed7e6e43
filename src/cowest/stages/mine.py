"""Stage 2: collaborative feedback. The round's weak model drafts for training questions it was not trained on, the
strong model refines each draft, and drafts whose refinement beats the strong model alone become preference pairs."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import checks
from ..collab import JudgeEvaluator, RuleEvaluator, heldout_questions, mine
from ..context import RunContext, weak_key
from ..io import write_json, write_jsonl
from ..ledger import round_decls
from ..tasks.base import select_where

log = logging.getLogger(__name__)


def run_mine(ctx: RunContext, round_: int) -> dict:
    """Mine round `round_`'s pairs with the previous round's weak model unless up to date; returns the manifest."""
    r = ctx.recipe
    variant = "sft" if round_ == 1 else f"round_{round_ - 1}"
    decl = round_decls(round_, r.rounds)[0]
    inputs = ctx.inputs(decl, weak_model=weak_key(ctx.weak_config(variant)))

    def run(sdir: Path) -> dict:
        examples = select_where(ctx.task.train, r.mining.where)
        if r.mining.n_questions is not None:
            examples = examples[: r.mining.n_questions]
        weak = ctx.weak(variant)
        try:
            collab = ctx.collaborator(weak)
            if r.mining.evaluator == "rule":
                evaluator = RuleEvaluator(ctx.prompter)
            else:
                evaluator = JudgeEvaluator(ctx.judge, ctx.prompter, retries=r.mining.judge_retries)
            res = mine(examples, collab, evaluator, r.mining, seed=r.seed, round_=round_)
        finally:
            weak.close()
        held = set(heldout_questions([e.id for e in examples], r.mining.heldout_fraction, r.seed))
        for name in ("drafts", "refinements", "scores"):
            write_jsonl(sdir / f"{name}.jsonl", getattr(res, name))
        write_jsonl(sdir / "pairs.jsonl", [p for p in res.pairs if p["question_id"] not in held])
        write_jsonl(sdir / "pairs_heldout.jsonl", [p for p in res.pairs if p["question_id"] in held])
        res.stats.update(heldout_questions=len(held), heldout_pairs=sum(p["question_id"] in held for p in res.pairs))
        res.stats["train_pairs"] = res.stats["pairs"] - res.stats["heldout_pairs"]
        write_json(sdir / "heldout.json", sorted(held))
        write_json(sdir / "mining_stats.json", res.stats)
        log.info("mining round %d: %s", round_, ", ".join(f"{k}={_fmt(v)}" for k, v in res.stats.items()))
        warns = checks.mining_warnings(res.stats, round_, r.collab.draft_max_tokens)
        return {**res.stats, "warnings": checks.report(warns)}

    return ctx.ledger.run(decl.name, ctx.dir / f"round_{round_}", inputs, run)


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
