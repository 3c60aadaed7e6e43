"""HFBackend on the tiny random Llama: batching, sampling, stops, token counts, adapters, option scoring."""

from __future__ import annotations

import copy

import pytest
import torch

from cowest.config import ModelConfig
from cowest.models.base import Backend, BackendError, Sampling
from cowest.models.hf import HFBackend

CONVS = [
    [{"role": "user", "content": "the patient asks the question" + " again" * i}] for i in range(5)
] + [
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "a doctor checks the dose"}],
    [{"role": "user", "content": "hi"}],
]


def _backend(tiny_lm, batch_size: int = 3, **kw) -> HFBackend:
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), batch_size=batch_size, **kw)
    return HFBackend(cfg, model=tiny_lm.model, tokenizer=tiny_lm.tokenizer)


@pytest.mark.slow  # generation on the tiny model, seconds each
def test_batched_greedy_equals_one_by_one_and_keeps_order(tiny_lm):
    backend = _backend(tiny_lm, batch_size=3)
    assert isinstance(backend, Backend)
    sampling = Sampling(max_tokens=12)
    batched = backend.generate(CONVS, 1, sampling)
    single = _backend(tiny_lm, batch_size=1)
    one_by_one = [single.generate([c], 1, sampling)[0] for c in CONVS]
    assert [r[0].text for r in batched] == [r[0].text for r in one_by_one]
    assert len({r[0].text for r in batched}) > 1  # distinct prompts, distinct outputs: order really is checked
    # prompt tokens are the unpadded prompt lengths, in the caller's order
    assert [r[0].prompt_tokens for r in batched] == [len(backend.encode_prompt(c)) for c in CONVS]
    assert backend.usage.calls == len(CONVS)


@pytest.mark.slow  # generation on the tiny model, seconds each
def test_each_batch_is_reported_as_soon_as_it_is_generated(tiny_lm):
    backend = _backend(tiny_lm, batch_size=3)
    batches_run = []
    generate_batch = backend.generate_batch
    backend.generate_batch = lambda *a: batches_run.append(1) or generate_batch(*a)
    seen: dict[int, tuple[str, int]] = {}
    out = backend.generate(CONVS, 2, Sampling(temperature=1.0, max_tokens=6),
                           on_done=lambda i, comps: seen.update({i: ([c.text for c in comps], len(batches_run))}))
    assert {i: texts for i, (texts, _) in seen.items()} == {i: [c.text for c in row] for i, row in enumerate(out)}
    # 7 conversations in batches of 3: the first batch's are reported before the second batch is generated
    assert sorted(n for _, n in seen.values()) == [1, 1, 1, 2, 2, 2, 3]
    assert backend.usage.calls == 2 * len(CONVS)


@pytest.mark.slow  # generation on the tiny model, seconds each
def test_n_samples_seeded_and_distinct(tiny_lm):
    backend = _backend(tiny_lm)
    sampling = Sampling(temperature=1.0, top_p=0.95, max_tokens=8, seed=3)
    out = backend.generate(CONVS[:4], 3, sampling)
    assert [len(r) for r in out] == [3, 3, 3, 3]
    assert all(len({c.text for c in r}) > 1 for r in out)
    assert backend.generate(CONVS[:4], 3, sampling) == out  # same seed, same draws
    other = backend.generate(CONVS[:4], 3, Sampling(temperature=1.0, top_p=0.95, max_tokens=8, seed=4))
    assert other != out


@pytest.mark.slow  # generation on the tiny model, seconds each
def test_greedy_n_returns_copies(tiny_lm):
    out = _backend(tiny_lm).generate(CONVS[:2], 2, Sampling(max_tokens=6))
    assert all(r[0].text == r[1].text and r[0] is not r[1] for r in out)


def test_caller_rng_untouched(tiny_lm):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _backend(tiny_lm).generate(CONVS[:2], 2, Sampling(temperature=1.0, max_tokens=4, seed=9))
    assert torch.equal(torch.rand(3), expected)


def test_stop_strings_truncate(tiny_lm):
    backend = _backend(tiny_lm)
    full = backend.generate(CONVS[:1], 1, Sampling(max_tokens=16))[0][0]
    assert full.finish_reason == "length" and full.completion_tokens == 16
    stop = full.text[6:9]
    cut = full.text.index(stop)
    got = backend.generate(CONVS[:1], 1, Sampling(max_tokens=16, stop=(stop, "never-seen")))[0][0]
    assert got.text == full.text[:cut]
    assert got.finish_reason == "stop"
    assert got.completion_tokens < 16  # generation stopped early, not just the text


def test_eos_ends_completion_and_counts_tokens(tiny_lm):
    tok = tiny_lm.tokenizer
    backend = _backend(tiny_lm)
    prompt = backend.encode_prompt(CONVS[0])
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        gen = tiny_lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                     pad_token_id=tok.pad_token_id)[0, len(prompt):].tolist()
    k = next(i for i in range(2, len(gen)) if gen[i] not in gen[:i])  # a token first emitted at step k >= 2
    model = copy.deepcopy(tiny_lm.model)
    model.generation_config.eos_token_id = [tok.eos_token_id, gen[k]]  # make that token end the reply
    cfg = ModelConfig(backend="hf", model="tiny-eos", batch_size=4)
    out = HFBackend(cfg, model=model, tokenizer=tok).generate(CONVS[:1] * 2, 1, Sampling(max_tokens=8))
    for (c,) in out:
        assert c.completion_tokens == k
        assert c.finish_reason == "stop"
        assert c.text == tok.decode(gen[:k], skip_special_tokens=True)
        assert c.prompt_tokens == len(prompt)


def _save_adapter(tiny_lm, path, seed: int):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft_model = get_peft_model(copy.deepcopy(tiny_lm.model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                         init_lora_weights=False))
    peft_model.save_pretrained(path)


def test_adapter_changes_identity(tiny_lm, tmp_path):
    base = _backend(tiny_lm)
    assert base.identity.startswith(f"hf:{tiny_lm.path}|weights:")
    _save_adapter(tiny_lm, tmp_path / "a1", seed=1)
    _save_adapter(tiny_lm, tmp_path / "a2", seed=2)
    ids = []
    for name in ("a1", "a2"):
        cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), adapter=str(tmp_path / name))
        b = HFBackend(cfg, model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer)  # PEFT edits the model
        ids.append(b.identity)
        assert "adapter:" in b.identity
        out = b.generate(CONVS[:1], 1, Sampling(max_tokens=8))[0][0]
        assert out.text != base.generate(CONVS[:1], 1, Sampling(max_tokens=8))[0][0].text  # the adapter is applied
    assert len({base.identity, *ids}) == 3
    # same directory, retrained (rewritten) weights: a new identity
    _save_adapter(tiny_lm, tmp_path / "a1", seed=3)
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), adapter=str(tmp_path / "a1"))
    assert HFBackend(cfg, model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer).identity != ids[0]


@pytest.mark.slow  # generation on the tiny model
def test_an_fp32_adapter_is_folded_into_the_weights_and_drafts_as_its_peft_layers_do(tiny_lm, tmp_path):
    from peft import PeftModel

    _save_adapter(tiny_lm, tmp_path / "a", seed=1)
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), adapter=str(tmp_path / "a"))
    folded = HFBackend(cfg, model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer)
    assert not isinstance(folded.model, PeftModel) and not any("lora" in n for n, _ in folded.model.named_parameters())
    layered = HFBackend(cfg.model_copy(update={"adapter": None}), model=tiny_lm.model, tokenizer=tiny_lm.tokenizer)
    layered.model = PeftModel.from_pretrained(copy.deepcopy(tiny_lm.model), str(tmp_path / "a")).eval()
    for sampling in (Sampling(max_tokens=12), Sampling(temperature=1.0, max_tokens=12, seed=3)):
        a, b = folded.generate(CONVS, 2, sampling), layered.generate(CONVS, 2, sampling)
        assert [[c.text for c in o] for o in a] == [[c.text for c in o] for o in b]
    # half-precision weights keep the adapter as layers: folding would round its small deltas away
    half = HFBackend(cfg, model=copy.deepcopy(tiny_lm.model).to(torch.bfloat16), tokenizer=tiny_lm.tokenizer)
    assert isinstance(half.model, PeftModel)


def test_logprobs_of_options_match_unbatched_forward(tiny_lm):
    backend = _backend(tiny_lm, batch_size=4)
    options = ["A", " B", "the patient"]
    got = backend.logprobs_of_options(CONVS[:3], options)
    tok = tiny_lm.tokenizer
    for conv, row in zip(CONVS[:3], got):
        prompt = backend.encode_prompt(conv)
        for opt, score in zip(options, row):
            o = tok(opt, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = tiny_lm.model(torch.tensor([prompt + o])).logits[0]
            logp = torch.log_softmax(logits.float(), -1)
            want = sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(o))
            assert score == pytest.approx(want, abs=1e-4)


def test_logprobs_of_options_after_a_reply_prefix(tiny_lm):
    backend = _backend(tiny_lm, batch_size=2)
    prefixes = ["Background: the dose.\nAnswer:", "Answer:", ""]
    got = backend.logprobs_of_options(CONVS[:3], [" A", " B"], prefixes)
    tok = tiny_lm.tokenizer
    for conv, pre, row in zip(CONVS[:3], prefixes, got):
        prompt = backend.encode_prompt(conv) + tok(pre, add_special_tokens=False)["input_ids"]
        for opt, score in zip([" A", " B"], row):
            o = tok(opt, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logp = torch.log_softmax(tiny_lm.model(torch.tensor([prompt + o])).logits[0].float(), -1)
            assert score == pytest.approx(sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(o)), abs=1e-4)
    with pytest.raises(ValueError):
        backend.logprobs_of_options(CONVS[:3], [" A"], prefixes[:2])


@pytest.mark.slow  # generation on the tiny model, seconds each
def test_loads_by_path_through_assets(tiny_lm, monkeypatch):
    import cowest.assets

    # a path through the loader's asset lookup, which maps asset names to files (the module stays whole: the Hub
    # check imports from it too)
    monkeypatch.setattr(cowest.assets, "resolve_model", lambda name, kind: name)
    monkeypatch.setattr(cowest.assets, "missing_local", lambda spec: False)
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), device="cpu", dtype="float32", batch_size=2)
    loaded = HFBackend(cfg)
    assert loaded.identity == _backend(tiny_lm).identity
    sampling = Sampling(max_tokens=6)
    assert loaded.generate(CONVS[:3], 1, sampling) == _backend(tiny_lm).generate(CONVS[:3], 1, sampling)


def test_a_missing_local_model_is_named_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(BackendError, match=rf"{tmp_path}/nope: no such model directory"):
        HFBackend(ModelConfig(backend="hf", model=str(tmp_path / "nope")))


def test_a_hub_id_not_cached_while_offline_is_one_line_naming_the_field(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match=r"^weak\.model: 'no-org/no-such-model' is not installed and the Hub cannot"):
        HFBackend(ModelConfig(backend="hf", model="no-org/no-such-model"), field="weak")
