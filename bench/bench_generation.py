"""Generation benchmark: batched vs one-by-one weak drafts, a LoRA adapter folded into the weights vs kept as PEFT
layers, and strong calls through the SQLite cache.

Prints tokens/s of each and the ratios. Needs the offline assets (`cowest models install`).
Usage: python bench/bench_generation.py [--prompts 64] [--max-tokens 48] [--strong-prompts 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cowest.collab import Prompter
from cowest.config import ModelConfig, TaskConfig
from cowest.models import build_backend
from cowest.models.base import Sampling
from cowest.tasks import load_task


def weak_drafts(convs, batch_size: int, sampling: Sampling) -> tuple[float, int, list[str]]:
    """(seconds, generated tokens, texts) for the weak model at a given batch size, no cache."""
    cfg = ModelConfig(backend="hf", model="smollm2-135m-instruct", batch_size=batch_size, cache="off")
    backend = build_backend(cfg)
    try:
        t0 = time.perf_counter()
        out = backend.generate(convs, n=1, sampling=sampling)
        wall = time.perf_counter() - t0
    finally:
        backend.close()
    return wall, sum(c[0].completion_tokens for c in out), [c[0].text for c in out]


def adapter_drafts(convs, batch_size: int, sampling: Sampling) -> None:
    """Print sampled drafts' speed through a LoRA adapter: folded into the weights (what HFBackend does) vs unfolded."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    base = ModelConfig(backend="hf", model="smollm2-135m-instruct", batch_size=batch_size, cache="off")
    with tempfile.TemporaryDirectory() as tmp:
        inner = build_backend(base)  # cache "off": the HFBackend itself
        torch.manual_seed(0)  # B != 0 (init_lora_weights=False): an adapter that changes the drafts, as a trained one
        lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
        get_peft_model(inner.model, lora).save_pretrained(tmp)
        folded = build_backend(base.model_copy(update={"adapter": tmp}))
        layered = build_backend(base)  # the adapter loaded by hand: HFBackend sees a model and leaves it unfolded
        layered.model = PeftModel.from_pretrained(layered.model, tmp).eval()
        runs = {}
        for name, backend in (("folded", folded), ("PEFT layers", layered)):
            t0 = time.perf_counter()
            out = backend.generate(convs, n=4, sampling=sampling)
            runs[name] = (time.perf_counter() - t0, sum(c.completion_tokens for o in out for c in o),
                          [c.text for o in out for c in o])
    (t_f, tok_f, texts_f), (t_p, tok_p, texts_p) = runs["folded"], runs["PEFT layers"]
    same = sum(a == b for a, b in zip(texts_f, texts_p))
    print(f"\n== weak drafts through a LoRA adapter (r=16, all linear layers): {len(convs)} prompts x 4 samples")
    print(f"folded into the weights: {t_f:7.1f} s  {tok_f:6d} tok  {tok_f / t_f:7.1f} tok/s")
    print(f"PEFT layers            : {t_p:7.1f} s  {tok_p:6d} tok  {tok_p / t_p:7.1f} tok/s")
    print(f"speed-up (tok/s ratio): {(tok_f / t_f) / (tok_p / t_p):.2f}x; identical sampled texts: {same}/{len(texts_f)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--strong-prompts", type=int, default=16)
    args = ap.parse_args()

    task = load_task(TaskConfig(name="formulary", options={"n_test": max(args.prompts, args.strong_prompts)}))
    prompter = Prompter(task.type, "cot")
    examples = task.test[: args.prompts]
    convs = [prompter.draft_prompt(e) for e in examples]
    sampling = Sampling(max_tokens=args.max_tokens)

    print(f"== weak drafts: {len(convs)} prompts, max {args.max_tokens} new tokens, SmolLM2-135M, CPU")
    t_b, tok_b, texts_b = weak_drafts(convs, args.batch_size, sampling)
    t_1, tok_1, texts_1 = weak_drafts(convs, 1, sampling)
    same = sum(a == b for a, b in zip(texts_b, texts_1))
    print(f"batched (batch {args.batch_size}): {t_b:7.1f} s  {tok_b:6d} tok  {tok_b / t_b:7.1f} tok/s")
    print(f"one-by-one         : {t_1:7.1f} s  {tok_1:6d} tok  {tok_1 / t_1:7.1f} tok/s")
    print(f"speed-up (tok/s ratio): {(tok_b / t_b) / (tok_1 / t_1):.2f}x; identical greedy texts: {same}/{len(convs)}")
    adapter_drafts(convs[:16], 16, Sampling(temperature=1.0, max_tokens=args.max_tokens, seed=0))

    n = args.strong_prompts
    strong_convs = [prompter.strong_alone(e) for e in task.test[:n]]
    print(f"\n== strong calls through the cache: {n} prompts, Qwen2.5-Coder-1.5B on llama.cpp")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ModelConfig(backend="llamacpp", model="qwen2.5-coder-1.5b-instruct")
        strong = build_backend(cfg, cache_path=Path(tmp) / "cache.sqlite")
        try:
            times = []
            for _ in range(2):
                before = strong.usage.calls
                t0 = time.perf_counter()
                out = strong.generate(strong_convs, n=1, sampling=Sampling(max_tokens=128))
                times.append((time.perf_counter() - t0, strong.usage.calls - before))
            toks = sum(c[0].completion_tokens for c in out)
        finally:
            strong.close()
    (t1, c1), (t2, c2) = times
    print(f"first pass : {t1:7.2f} s  {c1} model calls  {toks / t1:6.1f} generated tok/s")
    print(f"second pass: {t2:7.3f} s  {c2} model calls (cache hits: {n - c2})")
    print(f"speed-up: {t1 / max(t2, 1e-9):.0f}x")


if __name__ == "__main__":
    main()
