"""The GPU path on tiny models built here: bf16 left-padded generation, an SFT step, a DPO step, a merge.

Deselected unless pytest gets `--gpu`; then they run on CUDA and fail (never skip) without it.
`COWEST_TEST_DEVICE=cpu pytest --gpu tests/test_gpu.py` runs the same checks on the CPU, to check the tests.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from cowest.config import ModelConfig
from cowest.models.base import Sampling
from cowest.models.hf import HFBackend
from cowest.train import load_log, merge_adapter, train_dpo, train_sft

pytestmark = pytest.mark.gpu

ROWS = [{"prompt": [{"role": "user", "content": f"Question {i}: which letter?"}],
         "completion": [{"role": "assistant", "content": f"Answer: {'ABCDEFGH'[i]}"}]} for i in range(8)]
PAIRS = [{"prompt": [{"role": "user", "content": f"Question {i}: is it good?"}],
          "chosen": [{"role": "assistant", "content": "yes good correct"}],
          "rejected": [{"role": "assistant", "content": "no bad wrong"}]} for i in range(8)]
CONVS = [[{"role": "user", "content": "the patient asks the question" + " again" * i}] for i in range(6)]
FAST = {"disable_tqdm": True, "warmup_steps": 0, "max_steps": 2, "per_device_train_batch_size": 4,
        "learning_rate": 1e-2}


@pytest.fixture(scope="module")
def device() -> torch.device:
    name = os.environ.get("COWEST_TEST_DEVICE", "cuda")
    if name == "cuda":
        assert torch.cuda.is_available(), "the gpu tests need CUDA (COWEST_TEST_DEVICE=cpu runs them on the CPU)"
    return torch.device(name)


def bf16_trainer(device: torch.device) -> bool:
    from cowest.train.common import cpu_bf16_native

    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_bf16_native()


@pytest.fixture(scope="module")
def sft(tiny_lm, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_sft")
    adapter = train_sft(str(tiny_lm.path), ROWS, out, FAST, {"r": 8}, seed=0, log_path=out / "log.jsonl")
    return adapter, out


def test_bf16_left_padded_batches_generate_what_one_by_one_does(tiny_lm, device):
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), device=str(device), dtype="bf16", batch_size=4)
    batched = HFBackend(cfg)
    assert batched.device.type == device.type and next(batched.model.parameters()).dtype == torch.bfloat16
    single = HFBackend(cfg.model_copy(update={"batch_size": 1}))
    # bf16 rounds a padded row's sums differently, so long greedy paths may part at a near-tie: compare the first
    # token and the scores, which a wrong mask or position would change by far more than rounding
    first = Sampling(max_tokens=1)
    together = [r[0].text for r in batched.generate(CONVS, 1, first)]
    alone = [single.generate([c], 1, first)[0][0].text for c in CONVS]
    assert together == alone
    options = [" A", " B", " C", " the", " answer"]
    a = batched.logprobs_of_options(CONVS, options, ["Answer:"] * len(CONVS))
    b = [single.logprobs_of_options([c], options, ["Answer:"])[0] for c in CONVS]
    assert all(x == pytest.approx(y, abs=0.1) for xs, ys in zip(a, b) for x, y in zip(xs, ys))
    assert len({round(xs[0], 1) for xs in a}) > 1  # the rows score differently: their order really is checked
    longer = batched.generate(CONVS, 1, Sampling(max_tokens=12))
    assert all(r[0].text and 0 < r[0].completion_tokens <= 12 for r in longer)
    sampled = batched.generate(CONVS, 3, Sampling(temperature=1.0, max_tokens=8, seed=1))
    assert all(len(r) == 3 and all(c.completion_tokens <= 8 for c in r) for r in sampled)


def test_an_sft_step_trains_the_adapter_on_the_device(sft, device):
    adapter, out = sft
    ran = json.loads((out / "trainer_config.json").read_text())["trainer"]
    assert ran["use_cpu"] is (device.type == "cpu") and ran["bf16"] is bf16_trainer(device)
    steps = [r for r in load_log(out / "log.jsonl") if "loss" in r]
    assert len(steps) == 2 and all(math.isfinite(r["loss"]) for r in steps)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and float(w.abs().max()) > 0 for k, w in weights.items())  # B starts at zero


def test_a_dpo_step_moves_the_policy_on_the_device(tiny_lm, device, tmp_path):
    args = FAST | {"max_steps": 3, "per_device_train_batch_size": 2}
    adapter = train_dpo(str(tiny_lm.path), PAIRS, tmp_path, args, {}, log_path=tmp_path / "dpo.jsonl")
    ran = json.loads((tmp_path / "trainer_config.json").read_text())["trainer"]
    # DPO keeps bf16 on a GPU; on a CPU it trains in fp32 (bf16 autocast there blurs the margins)
    assert ran["use_cpu"] is (device.type == "cpu") and ran["bf16"] is (device.type == "cuda" and bf16_trainer(device))
    steps = [r for r in load_log(tmp_path / "dpo.jsonl") if "rewards/margins" in r]
    assert len(steps) == 3 and all(math.isfinite(r["loss"]) for r in steps)
    assert steps[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # policy == reference before any update
    assert steps[-1]["rewards/margins"] > steps[0]["rewards/margins"]
    assert (adapter / "adapter_model.safetensors").exists()


def test_the_merged_model_runs_on_the_device_as_base_plus_adapter(tiny_lm, sft, device, tmp_path):
    merged = merge_adapter(str(tiny_lm.path), sft[0], tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.bfloat16).to(device).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_lm.path, dtype=torch.bfloat16).to(device)
    with_adapter = PeftModel.from_pretrained(base, str(sft[0])).eval()
    ids = torch.randint(0, plain.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        a, b = plain(input_ids=ids).logits.float(), with_adapter(input_ids=ids).logits.float()
    assert a.device.type == device.type
    torch.testing.assert_close(a, b, rtol=0.05, atol=0.25)  # bf16 both ways, summed in another order
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
