"""Stage 1: LoRA SFT of the weak model on draft-format targets, then its check: on validation questions it was not
trained on, how often do its drafts state the fact the question needs? While that recall is below
`sft_recall.target`, SFT trains on gently from its adapter (at most `max_extensions` times) and keeps the best
adapter; below `checks.min_sft_recall` the run stops before mining spends a strong call."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from statistics import fmean

from .. import checks, dist
from ..collab import Collaborator
from ..collab.recall import states_fact
from ..collab.targets import corpus_rows, sft_rows
from ..context import RunContext
from ..io import adapter_hash, write_json, write_jsonl
from ..ledger import StageDecl
from ..tasks.base import Example

log = logging.getLogger(__name__)

MEASURABLE_SHARE = 0.5  # recall is a fact check only when most validation questions have a fact to check


def run_sft(ctx: RunContext) -> dict:
    """Train the SFT adapter, check its recall (extending it if asked) and merge it, unless up to date."""
    from ..assets import resolve_model
    from ..models.base import BackendError
    from ..models.hub import hub_problem
    from ..train import merge_adapter, train_sft

    r, q, out = ctx.recipe, ctx.questions, ctx.layout.sft
    inputs = ctx.inputs(StageDecl("sft", "sft"))

    def run() -> dict:
        rows, templated = sft_rows(ctx.prompter, q.sft, ctx.task.facts)
        rows += corpus_rows(ctx.prompter, ctx.task.corpus, int(r.task.sft_corpus), r.seed)  # true: once
        write_jsonl(out.train, rows)
        if problem := hub_problem("weak", r.weak.model):  # one line now, not the hub client's traceback later
            raise BackendError(problem)
        base_path = resolve_model(r.weak.model, "hf")
        valid, _ = sft_rows(ctx.prompter, q.sft_valid, ctx.task.facts, "SFT validation")
        adapter = train_sft(base_path, rows, out.dir, r.sft, r.lora, seed=r.seed, log_path=out.train_log,
                            eval_rows=valid or None)
        adapter, recall = extend(ctx, base_path, rows, valid, adapter)
        merge_adapter(base_path, adapter, out.merged)
        counts = dict(examples=len(rows), questions=q.counts(), templated_backgrounds=templated,
                      adapter_hash=adapter_hash(adapter), **recall)
        return {**counts, "warnings": checks.report(checks.sft_warnings(counts, r))}

    return ctx.ledger.run("sft", inputs, run)


def extend(ctx: RunContext, base_path: str, rows: list[dict], valid: list[dict], adapter: Path) -> tuple[Path, dict]:
    """Measure recall; train on while it is below `sft_recall.target` (when it is a fact check); keep the best."""
    from ..train import train_sft
    from ..train.sft import SFT_DEFAULTS

    r, cfg, examples, out = ctx.recipe, ctx.recipe.sft_recall, ctx.questions.sft_valid, ctx.layout.sft
    if not examples:
        log.warning("SFT: no validation questions, so whether the weak model learnt the domain is not measured")
        return adapter, {"recall": None}
    history: list[dict] = []
    steer = len(examples) >= cfg.min_questions
    for ext in range(cfg.max_extensions + 1):
        m = measure_recall(ctx, adapter, examples)
        history.append({"extension": ext, **{k: v for k, v in m.items() if k != "rows"}})
        write_jsonl(out.recall_after(ext), m["rows"])
        log.info("SFT check after %d extension(s): drafts state their %s on %.1f%% of %d validation questions "
                 "(target %s)", ext, m["measure"], 100 * m["recall"], m["n"],
                 "-" if cfg.target is None else f"{100 * cfg.target:.0f}%")
        if not m["measurable"] or cfg.target is None or m["recall"] >= cfg.target or ext == cfg.max_extensions:
            break
        if not steer:
            log.warning("SFT: recall below its target, but %d validation questions (sft_recall.min_questions %d) "
                        "cannot tell a better adapter from a worse one, so SFT is not extended", m["n"],
                        cfg.min_questions)
            break
        keep = out.adapter_after(ext)  # kept in case the next is worse
        dist.share(lambda: shutil.copytree(adapter, keep, dirs_exist_ok=True))
        lr = cfg.learning_rate_scale * r.sft.get("learning_rate", SFT_DEFAULTS["learning_rate"])
        args = r.sft | {"num_train_epochs": cfg.extra_epochs, "warmup_steps": cfg.warmup_steps, "learning_rate": lr}
        adapter = train_sft(base_path, rows, out.dir, args, r.lora, seed=r.seed, log_path=out.log_of(ext + 1),
                            eval_rows=valid, init_adapter=adapter)
    # the best recall; on a tie the later (longer-trained) adapter
    best = max((h["recall"], h["extension"]) for h in history)

    def keep_best() -> None:
        if best[1] != history[-1]["extension"]:
            shutil.rmtree(adapter)
            shutil.copytree(out.adapter_after(best[1]), adapter)
        for ext in range(len(history)):
            shutil.rmtree(out.adapter_after(ext), ignore_errors=True)
        shutil.copyfile(out.recall_after(best[1]), out.recall)

    dist.share(keep_best)
    kept = history[best[1]]
    write_json(out.extensions, {"target": cfg.target, "history": history, "kept": best[1]})
    return adapter, {"extensions": best[1], "recall": kept["recall"], "recall_measure": kept["measure"],
                     "recall_measurable": kept["measurable"], "valid_accuracy": kept["accuracy"],
                     "valid_chance": kept["chance"], "valid_questions": kept["n"]}


def measure_recall(ctx: RunContext, adapter: Path | None, examples: list[Example], model: Path | None = None) -> dict:
    """Greedy drafts of the weak model (the base, or `model`) with `adapter` on `examples`: the share stating their
    fact (the gold where a question has no fact to check), the weak model's answer accuracy, and one row per
    question."""
    backend = ctx.weak_with(adapter, model)
    try:
        drafts = [c[0].text for c in Collaborator(backend, None, ctx.prompter, ctx.recipe.collab).drafts(examples)]
    finally:
        backend.close()
    from ..collab.prompter import draft_answer_section
    from ..collab.recall import states_gold

    tt = ctx.prompter.task_type
    facts = [states_fact(d, e) for d, e in zip(drafts, examples)]
    measurable = sum(f is not None for f in facts) >= MEASURABLE_SHARE * len(examples)
    stated = [(f if f is not None else states_gold(d, e)) if measurable else states_gold(d, e)
              for d, e, f in zip(drafts, examples, facts)]
    right = [tt.score(tt.extract(draft_answer_section(d), e), e) for d, e in zip(drafts, examples)]
    rows = [dict(question_id=e.id, question=e.question, draft=d, fact=e.metadata.get("fact_value")
                 or e.metadata.get("reference_fact"), gold=tt.format_answer(e), stated=bool(s), answer_right=a)
            for d, e, s, a in zip(drafts, examples, stated, right)]
    chance = fmean(1 / len(e.options) if e.options else 0.0 for e in examples)  # a guess's accuracy
    return dict(recall=fmean(stated), accuracy=fmean(right), chance=chance, n=len(examples), measurable=measurable,
                measure="fact" if measurable else "gold answer", rows=rows)
