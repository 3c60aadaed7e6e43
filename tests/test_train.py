"""SFT, merge, DPO and KTO on a tiny random Llama: fast, offline, and with any network access treated as a failure."""

from __future__ import annotations

import json
import math
import socket
import warnings
from pathlib import Path

import pytest
import torch
from _tiny import build_tiny_llama
from datasets import load_dataset
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from cowest.io import atomic_dir
from cowest.train import load_log, load_pairs, merge_adapter, to_unpaired, train_dpo, train_sft

FAST = {"disable_tqdm": True, "warmup_steps": 0}
LETTERS = "ABCDEFGH"
SFT_ROWS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}: which letter?"}],
        "completion": [{"role": "assistant", "content": f"Answer: {LETTERS[i]}"}],
    }
    for i in range(8)
]
PAIRS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}: is it good?"}],
        "chosen": [{"role": "assistant", "content": "yes good correct"}],
        "rejected": [{"role": "assistant", "content": "no bad wrong"}],
    }
    for i in range(6)
]
_LOCAL = {"localhost", "127.0.0.1", "::1", None}


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """HF_HUB_OFFLINE=1 and every DNS look-up or TCP connect recorded and refused (this catches Hub telemetry too)."""
    attempts: list = []
    real_connect, real_gai = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
            attempts.append(address)
            raise OSError("network access in a test")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL:
            attempts.append(host)
            raise OSError("network access in a test")
        return real_gai(host, *args, **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices on a shared 2-core box: a second thread only adds contention
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            mp.setenv(var, "1")
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield attempts
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_attempts(no_network):
    yield
    attempts = list(no_network)
    no_network.clear()
    assert attempts == [], f"training tried the network: {attempts}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def sft_run(tiny, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("sft")
    args = FAST | {"num_train_epochs": 8, "per_device_train_batch_size": 4, "learning_rate": 1e-2}
    adapter = train_sft(str(tiny), SFT_ROWS, out, args, {"r": 8}, seed=0, log_path=out / "log.jsonl")
    return adapter, out / "log.jsonl"


@pytest.fixture(scope="module")
def merged(tiny, sft_run, tmp_path_factory) -> Path:
    return merge_adapter(str(tiny), sft_run[0], tmp_path_factory.mktemp("merged") / "model")


def _completion_loss(model, tokenizer, rows: list[dict]) -> float:
    """Mean token NLL of the completions given their prompts, as the SFT objective counts it."""
    total, count = 0.0, 0
    model.eval()
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, return_dict=True)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], return_dict=True)
        ids = torch.tensor([full["input_ids"]])
        labels = ids.clone()
        labels[0, : len(prompt["input_ids"])] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        n = int((labels[0, 1:] != -100).sum())
        total, count = total + loss.item() * n, count + n
    return total / count


def test_sft_learns_the_completions_and_saves_a_loadable_adapter(tiny, sft_run):
    adapter, log_path = sft_run
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    assert (adapter / "tokenizer_config.json").exists()
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(".adapter")]  # no tmp dir left behind
    # What trained is written beside the adapter: the recipe's knobs and the defaults they were merged with.
    ran = json.loads((adapter.parent / "trainer_config.json").read_text())
    assert ran["trainer"]["learning_rate"] == 1e-2 and ran["trainer"]["num_train_epochs"] == 8
    assert ran["trainer"]["seed"] == 0 and ran["peft"]["r"] == 8 and ran["peft"]["peft_type"] == "LORA"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    before = _completion_loss(AutoModelForCausalLM.from_pretrained(tiny), tokenizer, SFT_ROWS)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), str(adapter))
    after = _completion_loss(model, tokenizer, SFT_ROWS)
    assert after < before - 0.5, (before, after)
    steps = [r for r in load_log(log_path) if "loss" in r]
    assert len(steps) == 16
    assert {"loss", "learning_rate", "epoch", "step"} <= steps[0].keys()
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_sft_continues_from_an_adapter(tiny, sft_run, tmp_path):
    """A continuation starts from the given adapter's weights and LoRA shape, not from a fresh adapter."""
    adapter, log_path = sft_run
    args = FAST | {"num_train_epochs": 1, "per_device_train_batch_size": 4, "learning_rate": 1e-3}
    more = train_sft(str(tiny), SFT_ROWS, tmp_path, args, {"r": 2}, seed=0, log_path=tmp_path / "log.jsonl",
                     init_adapter=adapter)
    ran = json.loads((tmp_path / "trainer_config.json").read_text())
    assert ran["peft"]["r"] == 8  # the adapter's own config, not the (ignored) lora_args
    fresh = [r["loss"] for r in load_log(log_path) if "loss" in r]
    cont = [r["loss"] for r in load_log(tmp_path / "log.jsonl") if "loss" in r]
    assert cont[0] < fresh[0] - 0.5 and abs(cont[0] - fresh[-1]) < 0.2, (fresh, cont)
    assert (more / "adapter_model.safetensors").exists()


def test_merge_equals_base_plus_adapter(tiny, sft_run, merged):
    assert (merged / "config.json").exists() and (merged / "tokenizer_config.json").exists()
    assert not (merged / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert not any("lora" in name for name, _ in plain.named_parameters())
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), str(sft_run[0])).eval()
    ids = torch.randint(0, plain.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = plain(input_ids=ids).logits, with_adapter(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_dpo_on_separable_pairs_grows_the_margin(merged, tmp_path):
    args = FAST | {"max_steps": 8, "per_device_train_batch_size": 2, "learning_rate": 1e-2}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the near-zero-margin warning must not fire here
        adapter = train_dpo(str(merged), PAIRS, tmp_path, args, {}, log_path=tmp_path / "dpo.jsonl")
    assert (adapter / "adapter_config.json").exists()
    ran = json.loads((tmp_path / "trainer_config.json").read_text())["trainer"]
    assert ran["max_steps"] == 8 and ran["beta"] == 0.1 and ran["loss_type"] == ["sigmoid"]  # TRL's defaults recorded
    steps = [r for r in load_log(tmp_path / "dpo.jsonl") if "rewards/margins" in r]
    assert len(steps) == 8
    assert {"rewards/accuracies", "rewards/chosen", "rewards/rejected", "logps/chosen", "loss"} <= steps[0].keys()
    assert steps[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before any update
    assert steps[-1]["rewards/margins"] > 0.1
    assert steps[-1]["rewards/accuracies"] == 1.0


def test_pairs_jsonl_with_metadata_loads_and_trains(merged, tmp_path):
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for i, p in enumerate(PAIRS):
            note = i if i % 2 else f"text {i}"  # a column of mixed types must not break loading
            meta = {"id": f"q{i}", "deltas": [0.5, -0.25], "scores": {"s0": 0.0}, "note": note, "judge": None}
            f.write(json.dumps(p | meta) + "\n")
    assert load_pairs(path).column_names == ["prompt", "chosen", "rejected"]
    # a single step logs the margin before its own update (policy == reference), hence the near-zero warning
    with pytest.warns(RuntimeWarning, match="near zero"):
        adapter = train_dpo(str(merged), path, tmp_path / "out", FAST | {"max_steps": 1}, {})
    assert (adapter / "adapter_model.safetensors").exists()
    raw = load_dataset("json", data_files=str(path), split="train")  # the file stays a plain datasets JSONL
    assert {"prompt", "chosen", "rejected", "id", "deltas", "scores"} <= set(raw.column_names)


@pytest.mark.parametrize(
    "loss", [{"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}, {"loss_type": "ipo"}], ids=["sft", "ipo"]
)
def test_dpo_loss_variants_run(merged, tmp_path, loss):
    args = FAST | loss | {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-2}
    train_dpo(str(merged), PAIRS, tmp_path, args, {}, log_path=tmp_path / "log.jsonl")
    losses = [r["loss"] for r in load_log(tmp_path / "log.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_kto_trains_on_deduplicated_unpaired_drafts(merged, tmp_path):
    # the same chosen draft in two pairs of one question: KTO should see it once
    pairs = PAIRS + [PAIRS[0] | {"rejected": [{"role": "assistant", "content": "no wrong"}]}]
    unpaired = to_unpaired(load_pairs(pairs))
    assert len(unpaired) == 13 and sum(unpaired["label"]) == 6
    args = FAST | {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "loss_type": ["sigmoid"]}
    with pytest.warns(UserWarning, match="KTO ignores"):
        adapter = train_dpo(str(merged), pairs, tmp_path, args, {}, log_path=tmp_path / "log.jsonl", method="kto")
    assert (adapter / "adapter_config.json").exists()
    steps = [r for r in load_log(tmp_path / "log.jsonl") if "loss" in r]
    assert len(steps) == 3 and "kl" in steps[0]


def test_zero_pairs_is_a_clear_error(merged, tmp_path):
    with pytest.raises(ValueError, match="zero preference pairs"):
        train_dpo(str(merged), [], tmp_path, {}, {})
    empty = tmp_path / "pairs.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="zero preference pairs"):
        train_dpo(str(merged), empty, tmp_path, {}, {}, method="kto")


def test_flat_margin_warns(merged, tmp_path):
    args = FAST | {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 0.0}
    with pytest.warns(RuntimeWarning, match="DPO reward margin stayed near zero"):
        train_dpo(str(merged), PAIRS, tmp_path, args, {})


def test_atomic_dir_keeps_the_old_result_on_failure(tmp_path):
    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError
    assert (target / "a.txt").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    assert [p.name for p in target.iterdir()] == ["b.txt"]


def test_recipe_can_still_turn_checkpointing_on_with_the_old_name(tmp_path):
    from trl import SFTConfig

    from cowest.train.common import merge_args, trainer_defaults

    on = SFTConfig(**merge_args(trainer_defaults(tmp_path, 0), {"gradient_checkpointing": True}))
    off = SFTConfig(**merge_args(trainer_defaults(tmp_path, 0), {}))
    assert on.activation_checkpointing and not off.activation_checkpointing
    # bf16 only where the hardware has native bf16 kernels (a GPU, or an AVX512-BF16/AMX CPU)
    from cowest.train.common import cpu_bf16_native

    assert off.bf16 == (torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_bf16_native())


def test_trls_batch_is_per_device_and_the_global_batch_is_derived(monkeypatch):
    from cowest.errors import RecipeError
    from cowest.train.common import derive_batch

    # TRL's field means what TRL means: per process, whatever the launcher
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert derive_batch({"per_device_train_batch_size": 8, "learning_rate": 1e-4}, "sft") == {
        "per_device_train_batch_size": 8, "learning_rate": 1e-4}
    # cowest's global batch: one step's rows over all processes, split over them, the rest by accumulation
    assert derive_batch({"global_batch_size": 8}, "sft") == {"per_device_train_batch_size": 2,
                                                             "gradient_accumulation_steps": 1}
    assert derive_batch({"global_batch_size": 8}, "dpo", world=1) == {"per_device_train_batch_size": 8,
                                                                      "gradient_accumulation_steps": 1}
    assert derive_batch({"global_batch_size": 16, "per_device_train_batch_size": 2}, "dpo", world=2) == {
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}
    with pytest.raises(RecipeError, match=r"sft.global_batch_size: 6 rows a step do not split .* multiple of 4"):
        derive_batch({"global_batch_size": 6}, "sft")
    with pytest.raises(RecipeError, match=r"dpo.global_batch_size: 12 rows .* multiple of 8"):
        derive_batch({"global_batch_size": 12, "per_device_train_batch_size": 2}, "dpo")
    with pytest.raises(RecipeError, match="grpo.global_batch_size: set it or grpo.gradient_accumulation_steps"):
        derive_batch({"global_batch_size": 8, "gradient_accumulation_steps": 2}, "grpo")
    with pytest.raises(RecipeError, match="sft.global_batch_size: 0 is not a whole number"):
        derive_batch({"global_batch_size": 0}, "sft")


def test_dpo_keeps_each_epochs_adapter_when_asked_and_the_last_equals_the_final_one(merged, tmp_path):
    from safetensors.torch import load_file

    from cowest.layout import TrainDir
    from cowest.stages.dpo_recall import epoch_of

    args = FAST | {"num_train_epochs": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-2}
    adapter = train_dpo(str(merged), PAIRS, tmp_path, args, {}, every_epoch=True)
    ckpts = TrainDir(tmp_path).checkpoints()
    assert [c.name for c in ckpts] == ["checkpoint-3", "checkpoint-6"] and [epoch_of(c) for c in ckpts] == [1.0, 2.0]
    assert not list(tmp_path.glob("checkpoint-*/optimizer.pt"))  # adapters only: no optimizer state
    first, last, final = (load_file(d / "adapter_model.safetensors") for d in (*ckpts, adapter))
    assert all(torch.equal(last[k], final[k]) for k in final)
    assert any(not torch.equal(first[k], final[k]) for k in final)


@pytest.mark.parametrize("loss", [["sigmoid"], ["sigmoid", "sft"]], ids=["preference", "preference+sft"])
def test_a_pair_whose_two_sides_are_the_same_teaches_only_through_the_sft_term(merged, tmp_path, loss):
    rows = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"]} for r in SFT_ROWS]
    reset = [{**r, "completion": [{"role": "assistant", "content": "Answer: H"}]} for r in SFT_ROWS]
    tok = AutoTokenizer.from_pretrained(merged)
    before = _completion_loss(AutoModelForCausalLM.from_pretrained(merged), tok, reset)
    args = FAST | {"loss_type": loss, "num_train_epochs": 8, "per_device_train_batch_size": 4, "learning_rate": 1e-2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a zero margin is what these pairs must give
        adapter = train_dpo(str(merged), [{**r, "chosen": c["completion"], "rejected": c["completion"]}
                                          for r, c in zip(rows, reset)], tmp_path, args, {},
                            log_path=tmp_path / "log.jsonl")
    after = _completion_loss(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(merged), adapter), tok,
                             reset)
    margins = [r["rewards/margins"] for r in load_log(tmp_path / "log.jsonl") if "rewards/margins" in r]
    assert margins and all(abs(m) < 1e-4 for m in margins)  # the preference term sees no difference
    if loss == ["sigmoid"]:
        assert after == pytest.approx(before, rel=1e-6), (before, after)  # so alone it learns nothing
    else:
        assert after < before - 0.1, (before, after)  # the SFT term learns the shared side
