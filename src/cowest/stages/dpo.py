"""Stage 3: preference alignment (DPO, IPO, +SFT term, or KTO per recipe) on the mined pairs; the reference is the
round's starting model. With fewer than `checks.min_pairs` pairs nothing is trained, and where no epoch prefers the
chosen drafts of the held-out pairs, or every epoch's drafts state their facts less often than the starting model's on
mining questions it did not train on (`dpo_recall`), alignment is undone: either way the round keeps its starting
model (so CoWest is refinement) and its manifest and warning say so."""

from __future__ import annotations

from pathlib import Path

from .. import checks
from ..collab.targets import rehearsal_rows
from ..context import RunContext
from ..io import adapter_hash, read_json, read_jsonl, write_json, write_jsonl
from ..ledger import file_hashes, round_decls


def run_dpo(ctx: RunContext, round_: int) -> dict:
    """Align round `round_`'s weak model on its pairs unless up to date; returns the manifest."""
    from ..train import merge_adapter, train_dpo
    from .dpo_recall import drop_checkpoints, keep_epoch

    ctx.release()
    r, out = ctx.recipe, ctx.layout.round(round_)
    pairs, heldout = out.pairs, out.pairs_heldout
    start = ctx.model_dir(round_)
    decl = round_decls(round_, r.rounds, r.alignment)[-1]
    inputs = ctx.inputs(decl, pairs=file_hashes([pairs, heldout]))

    def run() -> dict:
        if r.alignment == "grpo":
            return align_on_policy(ctx, round_, start)
        rows = read_jsonl(pairs)
        if len(rows) < r.checks.min_pairs:  # nothing measurable to learn: keep the starting model, say so
            counts = dict(pairs=len(rows), skipped=True, skipped_because="pairs", steps=0)
            return {**counts, "warnings": checks.report(checks.dpo_warnings(counts, round_, r))}
        drop_checkpoints(out.dir)
        extra = rehearsal_rows(ctx.prompter, ctx.questions.sft, ctx.task, round(len(rows) * r.dpo_rehearsal), r.seed)
        adapter = train_dpo(str(start), rows + extra if extra else pairs, out.dir, r.dpo, r.lora, seed=r.seed,
                            log_path=out.train_log, method=r.alignment, every_epoch=True,
                            eval_pairs=heldout if heldout.exists() else None)
        steps = read_jsonl(out.train_log) if out.train_log.exists() else []
        margins = [s["rewards/margins"] for s in steps if "rewards/margins" in s]
        held_epochs = [{k.removeprefix("eval_"): s[k] for k in ("epoch", "eval_rewards/accuracies",
                                                                 "eval_rewards/margins", "eval_loss") if k in s}
                       for s in steps if "eval_rewards/margins" in s]
        by_epoch = {h["epoch"]: h["rewards/margins"] for h in held_epochs if "epoch" in h}
        recall = keep_epoch(ctx, round_, start, rows, by_epoch, len(read_jsonl(heldout)) if heldout.exists() else 0)
        if round_ < r.rounds and not recall["undone"]:  # the next round starts from this round's merged model
            merge_adapter(str(start), adapter, out.merged)
        counts = dict(pairs=len(rows), rehearsal_rows=len(extra), steps=len(margins),
                      final_margin=margins[-1] if margins else None, heldout=held_epochs,
                      adapter_hash=adapter_hash(adapter), recall=recall,
                      **({"skipped": True, "skipped_because": recall["because"]} if recall["undone"] else {}))
        mined = read_json(out.mining_stats) if out.mining_stats.exists() else {}
        return {**counts, "warnings": checks.report(checks.dpo_warnings(counts, round_, r, mined))}

    return ctx.ledger.run(decl.name, inputs, run)


def align_on_policy(ctx: RunContext, round_: int, start: Path) -> dict:
    """GRPO on the mining questions (the held-out share excepted), rewarded by the collaborative feedback, within
    `mining.strong_call_budget` strong calls."""
    from ..collab import heldout_questions
    from ..collab.reward import CollabReward
    from ..train import merge_adapter
    from ..train.grpo import train_grpo
    from .mine import choose_evaluator

    r, out = ctx.recipe, ctx.layout.round(round_)
    examples = ctx.questions.mining
    held = set(heldout_questions([e.id for e in examples], r.mining.heldout_fraction, r.seed))
    write_json(out.heldout, sorted(held))  # the validation questions, as offline mining writes them
    train = [e for e in examples if e.id not in held]
    weak_path = str(start)
    evaluator, chosen = choose_evaluator(ctx, train)
    reward = CollabReward(ctx.collaborator(None), evaluator, train)
    log_path = out.train_log
    adapter = train_grpo(weak_path, [{"prompt": ctx.prompter.draft_prompt(e), "question_id": e.id} for e in train],
                         reward, out.dir, r.grpo, r.lora, seed=r.seed, log_path=log_path, spent=lambda: reward.calls,
                         budget=r.mining.strong_call_budget, max_completion_length=r.collab.draft_max_tokens,
                         temperature=r.mining.temperature)
    ctx.release()
    if round_ < r.rounds:
        merge_adapter(weak_path, adapter, out.merged)
    write_jsonl(out.rewards, reward.rows)
    steps = [s for s in read_jsonl(log_path) if "reward" in s] if log_path.exists() else []
    return dict(method="grpo", questions=len(train), heldout_questions=len(held), strong_calls=reward.calls,
                steps=len(steps), drafts_scored=len(reward.rows),
                mean_reward_first=steps[0]["reward"] if steps else None,
                mean_reward_last=steps[-1]["reward"] if steps else None, adapter_hash=adapter_hash(adapter), **chosen)

