"""The DPO check: does alignment keep the facts the strong model needs? On the mining questions alignment did not
train on (the held-out ones and those that gave no training pair), greedy drafts of the model alignment started from
and of each epoch's adapter are checked for their question's fact (`collab.recall`, as the SFT check does). With
`dpo_recall.keep: best` the epoch whose drafts state it most often is kept (the later on a tie); where the starting
model states it more often than every epoch, alignment is undone: the round keeps its starting model, so CoWest is
refinement, and the manifest and a warning say so. Pairs whose drafts differ in one value teach that value for their
own question; where the rejected value is another question's fact, DPO can unlearn it there."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

from .. import dist
from ..context import RunContext
from ..io import atomic_dir, read_json, write_jsonl
from ..layout import TrainDir
from ..tasks.base import Example
from .sft import measure_recall

log = logging.getLogger(__name__)


def unseen_questions(ctx: RunContext, rows: list[dict]) -> list[Example]:
    """The mining questions no training pair comes from, at most `dpo_recall.max_questions` (a seeded sample)."""
    trained = {p.get("question_id") for p in rows}
    left = [e for e in ctx.questions.mining if e.id not in trained]
    cap = ctx.recipe.dpo_recall.max_questions
    if len(left) > cap:
        keep = set(random.Random(ctx.recipe.seed).sample(range(len(left)), cap))
        left = [e for i, e in enumerate(left) if i in keep]
    return left


def epoch_of(checkpoint: Path) -> float:
    """The epoch a trainer checkpoint was saved at."""
    return float(read_json(checkpoint / "trainer_state.json")["epoch"])


def keep_epoch(ctx: RunContext, round_: int, start: Path, rows: list[dict]) -> dict:
    """Measure the starting model and every epoch's adapter on the unseen questions, install the kept epoch's adapter
    as the round's and drop the checkpoints; returns the manifest's `recall` block (`undone`: keep the start)."""
    cfg, out = ctx.recipe.dpo_recall, ctx.layout.round(round_)
    examples = unseen_questions(ctx, rows)
    checkpoints = TrainDir(out.dir).checkpoints()
    if not examples or not checkpoints:
        log.warning("round %d DPO: no mining question outside the pairs (or no epoch saved), so whether alignment "
                    "kept the facts is not measured", round_)
        drop_checkpoints(out.dir)
        return {"questions": len(examples), "measured": False, "undone": False}
    history, rows_out = [], []
    for epoch, adapter in [(0.0, None), *((epoch_of(c), c) for c in checkpoints)]:
        m = measure_recall(ctx, adapter, examples, model=start)
        history.append({"epoch": epoch, "recall": m["recall"], "accuracy": m["accuracy"]})
        rows_out += [{"epoch": epoch, **row} for row in m["rows"]]
        log.info("round %d DPO check, %s: drafts state their %s on %.1f%% of %d mining questions it did not train on",
                 round_, "start" if adapter is None else f"epoch {epoch:g}", m["measure"], 100 * m["recall"], m["n"])
    write_jsonl(out.recall, rows_out)
    start_recall, epochs = history[0]["recall"], history[1:]
    steer = cfg.keep == "best" and len(examples) >= cfg.min_questions
    kept = max(range(len(epochs)), key=lambda i: (epochs[i]["recall"], i)) if steer else len(epochs) - 1
    undone = steer and start_recall > epochs[kept]["recall"]
    if not undone and kept != len(epochs) - 1:
        dist.share(lambda: _install(checkpoints[kept], out.adapter))
    drop_checkpoints(out.dir)
    return {"questions": len(examples), "measured": True, "measure": m["measure"], "start": start_recall,
            "epochs": epochs, "kept_epoch": epochs[kept]["epoch"], "steered": steer, "undone": undone}


TRAINER_STATE = ("trainer_state.json", "training_args.bin", "rng_state.pth")  # the trainer's, not the adapter's


def _install(checkpoint: Path, adapter: Path) -> None:
    """Replace the round's adapter with a checkpoint's (its weights, config and tokenizer), atomically."""
    with atomic_dir(adapter) as tmp:
        for f in checkpoint.iterdir():
            if f.is_file() and f.name not in TRAINER_STATE:
                shutil.copy2(f, tmp / f.name)


def drop_checkpoints(folder: Path) -> None:
    """Remove a training folder's epoch checkpoints (main process): after the check, and before training, a killed
    earlier try's, so the check reads only this training's epochs."""
    dist.share(TrainDir(folder).drop_checkpoints)
