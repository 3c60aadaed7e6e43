"""Artifact IO: atomic writes, JSONL, content hashes.

Under several processes (`cowest.dist`) only the main process writes: elsewhere a write goes nowhere, so every
stage's code stays the same and the run directory has one writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from . import dist


@contextlib.contextmanager
def atomic_file(dest: Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temp file beside `dest`, fsync, then rename over it; the temp file goes on any error."""
    dest = Path(dest)
    if not dist.is_main():
        with open(os.devnull, mode) as sink:
            yield sink
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600; artifacts are ordinary files
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def current_umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(d: Path) -> None:
    """Flush a directory entry so a rename survives a crash."""
    with contextlib.suppress(OSError):  # not supported everywhere; the rename is still atomic
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_file(path) as f:
        f.write(text)


def write_json(path: Path, data: Any) -> None:
    """Atomic pretty JSON."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Atomic JSONL, one object per line."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file; a bad line raises an error naming the file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: invalid JSON: {e.msg}") from e
    return rows


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces `target` only when the block succeeds."""
    target = Path(target)
    if not dist.is_main():  # a scratch folder of this process's own, dropped after the block
        scratch = Path(tempfile.mkdtemp(prefix=f"cowest-rank{dist.rank()}-"))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        # rename() cannot replace a non-empty directory: move the old one aside first
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def hash_path(path: Path) -> str:
    """sha256 (16 hex) of a file, or of every file under a folder (names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path) if p != path else p.name).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def hash_obj(obj: Any) -> str:
    """sha256 (16 hex) of a JSON-serialisable object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def adapter_hash(adapter: Path) -> str:
    """sha256 (16 hex) of a PEFT adapter's weights and its config in canonical form.

    PEFT writes `target_modules` from a set, so its order changes from process to process; it is sorted here.
    """
    adapter = Path(adapter)
    weights = [adapter / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (adapter / n).is_file()]
    if not weights:
        raise FileNotFoundError(f"{adapter}: not a PEFT adapter directory (no adapter_model.safetensors or .bin)")
    h = hashlib.sha256()
    for f in weights:
        h.update(f.name.encode() + b"\0" + hash_path(f).encode())
    if (cfg_path := adapter / "adapter_config.json").is_file():
        cfg = json.loads(cfg_path.read_text())
        if isinstance(cfg.get("target_modules"), list):
            cfg["target_modules"] = sorted(cfg["target_modules"])
        h.update(json.dumps(cfg, sort_keys=True).encode())
    return h.hexdigest()[:16]
