"""Shared test fixtures.

`tiny_lm` is a tiny random Llama causal LM with a real byte-level BPE tokenizer and a ChatML-style chat template,
built in a couple of seconds with no download. Use it wherever a test needs a real `transformers` model: generation,
SFT/DPO training smoke tests, adapters. Treat `.model` as read-only (deep-copy it before training); `.path` holds the
same model and tokenizer saved with `save_pretrained`, so `from_pretrained(tiny_lm.path)` gives a fresh copy.

`real_run` is one finished `cowest run` of the README's worked example on the real offline models, its budgets cut
(tests/_real.py), made once per session for the tests that need it: the end-to-end checks and the serving tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from _real import RealRun, run_real_recipe

# ChatML, as used by SmolLM2 / Qwen: the generation prompt ends with "<|im_start|>assistant\n".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_SUBJECTS = ["the patient", "a doctor", "the nurse", "my friend", "the court", "a student", "the model", "our team"]
_VERBS = ["reads", "writes", "answers", "treats", "asks", "checks", "explains", "reviews", "finds", "chooses"]
_OBJECTS = ["the question", "a short answer", "the diagnosis", "an option", "the law", "the draft", "a reason",
            "the evidence", "the dose", "the final answer"]
_TAILS = ["carefully.", "today.", "with care.", "again.", "step by step.", "because it is right.", "quickly.", "."]


@dataclass(frozen=True)
class TinyLM:
    """A tiny causal LM: `.model` (LlamaForCausalLM, eval mode), `.tokenizer` (PreTrainedTokenizerFast), `.path`."""

    model: object
    tokenizer: object
    path: Path


def tiny_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """A few hundred deterministic English-like lines (tokenizer training text)."""
    rng = random.Random(seed)
    lines = [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
        for _ in range(n_lines)
    ]
    lines += [f"Question: {i} + {i + 1}? Answer: {2 * i + 1}. Final answer: {chr(65 + i % 4)}" for i in range(50)]
    return lines


def build_tiny_lm(path: Path, vocab_size: int = 512, hidden_size: int = 64, seed: int = 0) -> TinyLM:
    """Train a byte-level BPE tokenizer, build a random 2-layer Llama on it, and save both to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )
    raw.train_from_iterator(tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )
    tok.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,  # peaked logits: greedy decoding has no near-ties that float noise could flip
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return TinyLM(model=model, tokenizer=tok, path=path)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> TinyLM:
    """Session-wide tiny random Llama + trained BPE tokenizer with a chat template (see module docstring)."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(autouse=True)
def one_torch_thread(request: pytest.FixtureRequest):
    """The tiny models' matrices on one thread: on a shared 2-core box a second thread only adds contention, which
    can make a one-second test take a minute. Tests on the real models keep torch's threads."""
    if any(request.node.get_closest_marker(m) for m in ("integration", "multiprocess", "gpu")):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """A finished `cowest run` on the real offline models, shared by the end-to-end and the serving tests."""
    return run_real_recipe(tmp_path_factory.mktemp("real_run"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gpu", action="store_true", help="also run the tests marked gpu (they need CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the real models, on several processes or on a GPU are slow; tests marked gpu run only with --gpu:
    CI has no GPU, and they fail rather than skip without one."""
    for item in items:
        if any(item.get_closest_marker(m) for m in ("integration", "multiprocess", "gpu")):
            item.add_marker(pytest.mark.slow)
    if config.getoption("--gpu"):
        return
    dropped = [item for item in items if item.get_closest_marker("gpu")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]
