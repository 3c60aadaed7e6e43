"""The DPO check: did alignment learn something that holds beyond its pairs, and keep the facts the strong model
needs? Two measures of each epoch's adapter on what DPO did not train on:
- its reward margin on the held-out pairs (TRL's evaluation after every epoch): at or below zero the aligned model does
  not prefer the chosen drafts of questions it did not train on, so what it learnt from the pairs does not carry;
- on the mining questions no training pair comes from, greedy drafts of the starting model and of the epoch are
  checked for their question's fact (`collab.recall`, as the SFT check does).
With `dpo_recall.keep: best` only epochs whose held-out margin is above `dpo_recall.min_heldout_margin` may be kept
(when at least `min_heldout_pairs` held-out pairs measured it), and of those the one whose drafts state facts most often
(the later on a tie). Where no epoch passes the margin, or the starting model states facts more often than the kept
epoch, alignment is undone: the round keeps its starting model, so CoWest is refinement, and the manifest and a
warning say which and why. Pairs whose drafts differ in one value teach that value for their own question; where the
rejected value is another question's fact, DPO can unlearn it there."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

from .. import dist
from ..config import DpoRecallConfig
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


def keep_epoch(ctx: RunContext, round_: int, start: Path, rows: list[dict], margins: dict[float, float] | None = None,
               heldout_pairs: int = 0) -> dict:
    """Measure the starting model and every epoch's adapter on the unseen questions, install the kept epoch's adapter
    as the round's and drop the checkpoints; `margins` are the held-out reward margins by epoch (`heldout_pairs`
    pairs). Returns the manifest's `recall` block (`undone`: keep the start, `because` says why)."""
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
        history.append({"epoch": epoch, "recall": m["recall"], "accuracy": m["accuracy"]}
                       | ({} if adapter is None else {"heldout_margin": margin_at(margins or {}, epoch)}))
        rows_out += [{"epoch": epoch, **row} for row in m["rows"]]
        log.info("round %d DPO check, %s: drafts state their %s on %.1f%% of %d mining questions it did not train on",
                 round_, "start" if adapter is None else f"epoch {epoch:g}", m["measure"], 100 * m["recall"], m["n"])
    write_jsonl(out.recall, rows_out)
    start_recall, epochs = history[0]["recall"], history[1:]
    if heldout_pairs and any(e["heldout_margin"] is None for e in epochs):
        log.warning("round %d DPO check: %d held-out pairs, but no reward margin was logged for epoch(s) %s (the "
                    "recipe's dpo.eval_strategy?): those epochs are not checked on them", round_, heldout_pairs,
                    ", ".join(f"{e['epoch']:g}" for e in epochs if e["heldout_margin"] is None))
    steer = cfg.keep == "best" and len(examples) >= cfg.min_questions
    kept, because, passed = choose_epoch(start_recall, epochs, cfg, steer, heldout_pairs)
    if not because and kept != len(epochs) - 1:
        dist.share(lambda: _install(checkpoints[kept], out.adapter))
    drop_checkpoints(out.dir)
    return {"questions": len(examples), "measured": True, "measure": m["measure"], "start": start_recall,
            "epochs": epochs, "kept_epoch": epochs[kept]["epoch"], "steered": steer, "heldout_pairs": heldout_pairs,
            "min_heldout_margin": cfg.min_heldout_margin, "passed_epochs": [epochs[i]["epoch"] for i in passed],
            "undone": bool(because), "because": because}


def choose_epoch(start: float, epochs: list[dict], cfg: DpoRecallConfig, steer: bool,
                 heldout_pairs: int) -> tuple[int, str | None, list[int]]:
    """The epoch to keep (its index in `epochs`), why alignment is undone instead (None: kept) and the epochs that
    passed the margin: `heldout_margin` when no epoch's held-out margin is above `cfg.min_heldout_margin`,
    `fact_recall` when the starting model's drafts state facts more often than the kept epoch's (only when `steer`)."""
    margins = [e.get("heldout_margin") for e in epochs]
    gate = (cfg.keep == "best" and cfg.min_heldout_margin is not None and heldout_pairs >= cfg.min_heldout_pairs
            and any(m is not None for m in margins))
    eligible = [i for i, m in enumerate(margins) if not gate or (m is not None and m > cfg.min_heldout_margin)]
    if not eligible:
        return len(epochs) - 1, "heldout_margin", eligible
    kept = max(eligible, key=lambda i: (epochs[i]["recall"], i)) if steer else eligible[-1]
    return kept, "fact_recall" if steer and start > epochs[kept]["recall"] else None, eligible


def margin_at(margins: dict[float, float], epoch: float) -> float | None:
    """The held-out reward margin logged at `epoch` (None: none logged there)."""
    return next((m for e, m in margins.items() if abs(e - epoch) < 1e-3), None)


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
