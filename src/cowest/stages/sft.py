"""Stage 1: LoRA SFT of the weak model on draft-format targets, with the recall extension (more gentle epochs while
the SFT model states too few of the domain's facts on validation questions)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .. import checks, dist
from ..collab.targets import sft_rows
from ..config import RecipeError
from ..context import RunContext
from ..io import adapter_hash, write_json, write_jsonl
from ..ledger import StageDecl

log = logging.getLogger(__name__)


def run_sft(ctx: RunContext) -> dict:
    """Train the SFT adapter (and merge it) unless the stage is up to date; returns its manifest."""
    from ..assets import resolve_model
    from ..train import merge_adapter, train_sft

    r = ctx.recipe
    inputs = ctx.inputs(StageDecl("sft", "sft"))
    if r.sft_recall.target is not None and not ctx.task.extra.get("sft_valid"):
        raise RecipeError(f"sft_recall.target needs a task with an SFT validation slice (the formulary task's "
                          f"validation_wordings); task {r.task.name!r} has none")

    def run(sdir: Path) -> dict:
        train = [e for e in ctx.task.train if e.metadata.get("sft", True)]
        rows, templated = sft_rows(ctx.prompter, train, ctx.task.facts)
        if r.task.sft_corpus:
            rows += [ctx.prompter.corpus_row(p) for p in ctx.task.corpus]
        write_jsonl(sdir / "train.jsonl", rows)
        base_path = resolve_model(r.weak.model, "hf")
        valid_examples = ctx.task.extra.get("sft_valid", [])
        valid, _ = sft_rows(ctx.prompter, valid_examples, ctx.task.facts, "SFT validation")
        adapter = train_sft(base_path, rows, sdir, r.sft, r.lora, seed=r.seed, log_path=sdir / "train_log.jsonl",
                            eval_rows=valid or None)
        extended = {}
        if r.sft_recall.target is not None:
            adapter, extended = extend(ctx, base_path, rows, valid, valid_examples, sdir, adapter)
        merge_adapter(base_path, adapter, sdir / "merged")
        return dict(examples=len(rows), templated_backgrounds=templated, adapter_hash=adapter_hash(adapter),
                    **extended)

    return ctx.ledger.run("sft", ctx.dir / "sft", inputs, run)


def extend(ctx: RunContext, base_path: str, rows: list[dict], valid: list[dict], valid_examples: list, sdir: Path,
           adapter: Path) -> tuple[Path, dict]:
    """More SFT epochs while validation accuracy is below `sft_recall.target`; keep the best adapter."""
    from ..train import train_sft
    from ..train.sft import SFT_DEFAULTS

    r, cfg = ctx.recipe, ctx.recipe.sft_recall
    history: list[dict] = []
    for ext in range(cfg.max_extensions + 1):
        acc = valid_accuracy(ctx, adapter, valid_examples)
        history.append({"extension": ext, "valid_accuracy": acc})
        log.info("SFT validation accuracy after %d extension(s): %.1f%% (target %.1f%%)", ext, 100 * acc,
                 100 * cfg.target)
        if acc >= cfg.target or ext == cfg.max_extensions:
            break
        keep = sdir / f"adapter_ext{ext}"  # kept in case the next is worse
        dist.share(lambda: shutil.copytree(adapter, keep, dirs_exist_ok=True))
        lr = cfg.learning_rate_scale * r.sft.get("learning_rate", SFT_DEFAULTS["learning_rate"])
        args = r.sft | {"num_train_epochs": cfg.extra_epochs, "warmup_steps": cfg.warmup_steps, "learning_rate": lr}
        adapter = train_sft(base_path, rows, sdir, args, r.lora,
                            seed=r.seed, log_path=sdir / f"train_log_ext{ext + 1}.jsonl", eval_rows=valid,
                            init_adapter=adapter)
    # the best validation accuracy; on a tie the later (longer-trained) adapter
    best = max((h["valid_accuracy"], h["extension"]) for h in history)

    def keep_best() -> None:
        if best[1] != history[-1]["extension"]:
            shutil.rmtree(adapter)
            shutil.copytree(sdir / f"adapter_ext{best[1]}", adapter)
        for ext in range(len(history)):
            shutil.rmtree(sdir / f"adapter_ext{ext}", ignore_errors=True)

    dist.share(keep_best)
    if best[0] < cfg.target:
        log.warning("SFT validation accuracy %.1f%% stays below the target %.1f%% after %d extension(s)",
                    100 * best[0], 100 * cfg.target, cfg.max_extensions)
    write_json(sdir / "extensions.json", {"target": cfg.target, "history": history, "kept": best[1]})
    return adapter, {"extensions": best[1], "valid_accuracy": best[0]}


def valid_accuracy(ctx: RunContext, adapter: Path, examples: list) -> float:
    """The weak model with `adapter` answering the SFT validation questions alone: accuracy in [0, 1]."""
    from ..evaluate import evaluate, get_systems

    backend = ctx.weak_with(adapter)
    try:
        _, results = evaluate(examples, get_systems(["weak_sft"]), lambda _: backend, ctx.weak_only(),
                              ctx.recipe.eval, seed=ctx.recipe.seed)
    finally:
        backend.close()
    return float(results["systems"]["weak_sft"]["score"]["value"])
