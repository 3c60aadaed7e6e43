"""Training throughput: SFT and DPO of the weak model with TRL's speed-ups against plain settings, same data, same run.

SFT trains on the demo recipe's SFT rows; DPO on pairs built from them (chosen: a row's own draft; rejected: the draft
of another row), so both run offline with no earlier run. Each variant is the project's own `train_sft`/`train_dpo`
with settings changed, from the base weak model, one after another in this process. Reported per variant: wall
seconds of the call (model load and data preparation included), real (non-padding) tokens per second, optimizer
steps and the training loss, so a speed-up that changes what is learned shows.
Usage: python bench/bench_training.py [RECIPE] [--epochs 1] [--dpo-epochs 2] [--only sft|dpo] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import torch

from cowest.assets import resolve_model
from cowest.collab.targets import sft_rows
from cowest.config import load_recipe
from cowest.io import write_json
from cowest.run import Run
from cowest.train import train_dpo, train_sft
from cowest.train.common import load_log

SFT_VARIANTS: dict[str, dict] = {
    "plain: fp32, padded batches in random order": {"bf16": False, "train_sampling_strategy": "random"},
    "fp32, batches grouped by length": {"bf16": False},
    "bf16, batches grouped by length": {},
    "bf16, padding-free batches": {"padding_free": True, "max_length": None},  # rows are shorter than any cap
    "bf16, packed (best-fit) + padding-free": {"packing": True},
}
DPO_VARIANTS: dict[str, dict] = {
    "plain: fp32, reference forward every step": {"bf16": False, "precompute_ref_log_probs": False},
    "bf16, reference forward every step": {"bf16": True, "precompute_ref_log_probs": False},
    "fp32, reference log-probs precomputed (the default on CPU)": {"bf16": False, "precompute_ref_log_probs": True},
    "bf16, reference log-probs precomputed": {"bf16": True, "precompute_ref_log_probs": True},
}


def sft_data(recipe_path: Path) -> list[dict]:
    """The SFT rows the recipe's `sft` stage trains on."""
    run = Run(load_recipe(recipe_path))
    train = [e for e in run.task.train if e.metadata.get("sft", True)]
    rows, _ = sft_rows(run.prompter, train, run.task.facts)
    if run.recipe.task.sft_corpus:
        rows += [run.prompter.corpus_row(p) for p in run.task.corpus]
    return rows


def pairs_from(rows: list[dict], seed: int = 0) -> list[dict]:
    """A preference pair per question row: its own draft chosen, another row's draft rejected."""
    rng = random.Random(seed)
    qa = [r for r in rows if len(r["prompt"]) and "Question" in r["prompt"][-1]["content"]]
    pairs = []
    for r in qa:
        other = rng.choice([o for o in qa if o["completion"] != r["completion"]])
        pairs.append({"prompt": r["prompt"], "chosen": r["completion"], "rejected": other["completion"]})
    return pairs


def pair_tokens(model_path: str, pairs: list[dict]) -> int:
    """Tokens of prompt+chosen and prompt+rejected, chat template applied: what one epoch of DPO reads."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    n = 0
    for p in pairs:
        for side in ("chosen", "rejected"):
            n += len(tok(tok.apply_chat_template(p["prompt"] + p[side], tokenize=False))["input_ids"])
    return n


def machine() -> str:
    """CPU count and model, and whether it runs bf16 natively."""
    from cowest.train.common import cpu_bf16_native

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} CPUs ({name}, native bf16: {'yes' if cpu_bf16_native() else 'no'}), "
            f"torch {torch.__version__}")


def warm_up(base: str, rows: list[dict], recipe) -> None:
    """Two optimizer steps, not measured: the first variant must not pay the process's one-time start-up costs."""
    with tempfile.TemporaryDirectory(prefix="cowest-warm-up-") as tmp:
        train_sft(base, rows[:16], Path(tmp), {**recipe.sft, "max_steps": 2}, recipe.lora, seed=recipe.seed)


def measure(fn, log_path: Path) -> dict:
    """Run one training call; wall seconds, steps and the loss figures of its log."""
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    log = load_log(log_path)
    steps = [r for r in log if "loss" in r]
    final = next((r for r in reversed(log) if "train_loss" in r), {})
    return {"wall_s": round(wall, 1), "train_runtime_s": round(final.get("train_runtime", float("nan")), 1),
            "steps": len(steps), "train_loss": round(final.get("train_loss", float("nan")), 4),
            "last_loss": round(steps[-1]["loss"], 4) if steps else None,
            "num_tokens": steps[-1].get("num_tokens") if steps else None, "log": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path, nargs="?", default=Path("recipes/demo.yaml"))
    ap.add_argument("--epochs", type=float, default=1.0, help="SFT epochs per variant")
    ap.add_argument("--dpo-epochs", type=float, default=2.0, help="DPO epochs per variant (precomputing pays per epoch)")
    ap.add_argument("--only", choices=["sft", "dpo"], help="one section; the other is kept from an existing --out")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    base = resolve_model(recipe.weak.model, "hf")
    rows = sft_data(args.recipe)
    out: dict = {"machine": machine(), "recipe": str(args.recipe), "epochs": args.epochs, "dpo_epochs": args.dpo_epochs,
                 "sft": {}, "dpo": {}}
    if args.only and args.out and args.out.exists():
        kept = "dpo" if args.only == "sft" else "sft"
        old = json.loads(args.out.read_text())
        out |= {k: v for k, v in old.items() if k.startswith(kept) or (kept == "dpo" and k == "dpo_epochs")}
        out[f"{kept}_machine"] = old.get(f"{kept}_machine", old.get("machine"))
    warm_up(base, rows, recipe)
    with tempfile.TemporaryDirectory(prefix="cowest-train-bench-") as tmp:
        if args.only in (None, "sft"):
            out["sft_rows"] = len(rows)
            for i, (label, extra) in enumerate(SFT_VARIANTS.items()):
                d = Path(tmp) / f"sft{i}"
                sft_args = {**recipe.sft, "num_train_epochs": args.epochs, **extra}
                r = measure(lambda: train_sft(base, rows, d, sft_args, recipe.lora, seed=recipe.seed,
                                              log_path=d / "log.jsonl"), d / "log.jsonl")
                r["tokens_per_s"] = round(r["num_tokens"] / r["wall_s"], 1) if r["num_tokens"] else None
                out["sft"][label] = r
                print(f"SFT {label}: {r['wall_s']} s, {r['tokens_per_s']} tok/s, {r['steps']} steps, "
                      f"loss {r['train_loss']}", flush=True)
        if args.only in (None, "dpo"):
            pairs = pairs_from(rows, recipe.seed)
            tokens = pair_tokens(base, pairs) * args.dpo_epochs
            out |= {"dpo_pairs": len(pairs), "dpo_tokens": tokens}
            for i, (label, extra) in enumerate(DPO_VARIANTS.items()):
                d = Path(tmp) / f"dpo{i}"
                dpo_args = {**recipe.dpo, "num_train_epochs": args.dpo_epochs, **extra}
                r = measure(lambda: train_dpo(base, pairs, d, dpo_args, recipe.lora, seed=recipe.seed,
                                              log_path=d / "log.jsonl"), d / "log.jsonl")
                margins = [s["rewards/margins"] for s in r["log"] if "rewards/margins" in s]
                r |= {"tokens_per_s": round(tokens / r["wall_s"], 1), "last_margin": round(margins[-1], 4)}
                out["dpo"][label] = r
                print(f"DPO {label}: {r['wall_s']} s, {r['tokens_per_s']} tok/s, loss {r['train_loss']}, "
                      f"margin {r['last_margin']}", flush=True)
    for kind in ("sft", "dpo"):
        rows_ = out[kind]
        if rows_:
            naive = next(iter(rows_.values()))["wall_s"]
            for r in rows_.values():
                r["speedup_vs_plain"] = round(naive / r["wall_s"], 2)
                r.pop("log", None)  # rows kept from an earlier --out have none
    print(json.dumps({k: out[k] for k in ("sft", "dpo")}, indent=1))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
