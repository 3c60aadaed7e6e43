"""A managed local llama.cpp server (xllamacpp) for a GGUF file, spoken to as an OpenAI-compatible endpoint.

Each server runs in a process of its own (`llamacpp_process`), never inside this one: stopping it closes that
process's stdin and kills it if it has not exited within `stop_timeout_s`, so a llama.cpp thread that hangs cannot
hang the run or the test that stopped it, and a run that is killed takes its servers with it (their stdin closes).
Its OpenMP threads never share a process with torch's either. The embedded chat template is applied by llama.cpp.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..net import free_port
from .base import Backend, BackendError
from .llamacpp_process import INIT_FAILED

log = logging.getLogger(__name__)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects container / taskset limits
    except AttributeError:
        return os.cpu_count() or 1


class LlamaCppServer:
    """llama.cpp's OpenAI-compatible server for one GGUF, started and stopped from Python.

    `n_ctx` is the context of each request: the server gets `n_ctx * n_parallel` tokens of KV cache split into
    `n_parallel` slots, so concurrent requests never compete for context.

    Every request needs `api_key` (`Authorization: Bearer ...`): a fresh random one at each start unless one is
    given, so that no other local user can call the model around cowest's own keys. /health stays open.
    """

    def __init__(
        self,
        gguf_path: str | Path,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        alias: str | None = None,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 10.0,
        api_key: str | None = None,
        reuse_prefix: bool = False,
    ) -> None:
        self.gguf_path = Path(gguf_path)
        self.reuse_prefix = reuse_prefix
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads or _cpu_count()
        self.host = host
        self.port = port
        self.alias = alias
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.start_time_s: float | None = None  # how long the last start() took
        self.fixed_key = api_key
        self.api_key: str | None = None  # the key of the running server
        self._proc: subprocess.Popen[str] | None = None

    @classmethod
    def of(cls, cfg: ModelConfig, **override: Any) -> LlamaCppServer:
        """A (not started) server for a model config's GGUF and its server knobs; `override` replaces some of them."""
        from .. import assets

        knobs = dict(n_ctx=cfg.n_ctx, n_parallel=cfg.n_parallel, n_threads=cfg.n_threads, alias=cfg.model,
                     reuse_prefix=cfg.reuse_prefix)
        return cls(assets.resolve_model(cfg.model, "gguf"), **{**knobs, **override})

    def _knobs(self, port: int) -> dict[str, Any]:
        return dict(gguf_path=str(self.gguf_path), n_ctx=self.n_ctx, n_parallel=self.n_parallel,
                    n_threads=self.n_threads, host=self.host, port=port, reuse_prefix=self.reuse_prefix,
                    api_key=self.api_key, alias=self.alias)

    @property
    def running(self) -> bool:
        """Whether the server's process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the server's process, while it is started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1."""
        if self.port is None:
            raise BackendError("llama.cpp server not started")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LlamaCppServer:
        """Start the server's process (it loads the model and listens) and wait until /health answers OK."""
        if self.running:
            return self
        self.stop()  # a process that died since its start leaves nothing to reuse
        if not self.gguf_path.is_file():
            raise BackendError(f"GGUF file not found: {self.gguf_path}")
        t0 = time.perf_counter()
        self.api_key = self.fixed_key or f"sk-cowest-{secrets.token_urlsafe(24)}"
        fixed = self.port is not None
        # a port picked by us may be taken by someone else before llama.cpp binds it: retry with another
        for _ in range(1 if fixed else 3):
            port = self.port if fixed else free_port(self.host)
            proc = self._spawn(port)
            try:
                listening = self._wait_listening(proc, t0)
            except BaseException:  # Ctrl-C while it loads included: no server outlives the start that failed
                _end(proc, 0.0)
                raise
            if listening:
                self._proc, self.port = proc, port
                break
        if self._proc is None:
            raise BackendError(
                f"llama.cpp server failed to start for {self.gguf_path} (port {self.port or 'auto'}); "
                "see llama.cpp's error lines above (bad or truncated GGUF, port in use, out of memory)"
            )
        atexit.register(self.stop)
        try:
            self._wait_healthy(t0)
        except BaseException:
            self.stop()
            raise
        self.start_time_s = time.perf_counter() - t0
        log.info("llama.cpp server for %s on %s (its key is required)", self.gguf_path.name, self.base_url)
        return self

    def _spawn(self, port: int) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "cowest.models.llamacpp_process"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(self._knobs(port)) + "\n")  # on stdin: a key in argv would show in `ps`
            proc.stdin.flush()
        except BrokenPipeError:  # it died at once; _wait_listening reports how
            pass
        return proc

    def _wait_listening(self, proc: subprocess.Popen[str], t0: float) -> bool:
        """True once `proc` listens; False when llama.cpp refused its settings (it has exited)."""
        assert proc.stdout is not None
        remaining = self.startup_timeout_s - (time.perf_counter() - t0)
        ready, _, _ = select.select([proc.stdout], [], [], max(remaining, 0.0))
        line = proc.stdout.readline() if ready else None
        if line and line.startswith("listening"):
            return True
        _end(proc, 0.0 if line is None else self.stop_timeout_s)
        if line is None:
            raise BackendError(f"llama.cpp server for {self.gguf_path} did not load within "
                               f"{self.startup_timeout_s:.0f} s (startup_timeout_s)")
        if proc.returncode == INIT_FAILED:
            return False
        raise BackendError(f"llama.cpp server process for {self.gguf_path} exited with code {proc.returncode} "
                           "while loading; see its error lines above")

    def _wait_healthy(self, t0: float) -> None:
        url = f"http://{self.host}:{self.port}/health"
        last = "no answer"
        while time.perf_counter() - t0 < self.startup_timeout_s:
            if not self.running:
                raise BackendError(f"llama.cpp server process for {self.gguf_path} exited while starting")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200 and json.loads(r.read()).get("status") == "ok":
                        return
                    last = f"HTTP {r.status}"
            except (urllib.error.URLError, OSError, ValueError) as e:  # 503 while loading arrives as HTTPError
                last = repr(e)
            time.sleep(0.1)
        raise BackendError(
            f"llama.cpp server for {self.gguf_path} did not become healthy at {url} "
            f"within {self.startup_timeout_s:.0f} s; last error: {last}"
        )

    def stop(self) -> None:
        """Stop the server's process, which frees its port and model; bounded even if llama.cpp hangs; idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            _end(proc, self.stop_timeout_s)

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"LlamaCppServer({str(self.gguf_path)!r}, {state})"


def _end(proc: subprocess.Popen[str], grace_s: float) -> None:
    """End a server process: close its stdin (it exits at once), and kill it if it has not gone after `grace_s`."""
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:  # the process is gone and its pipe broken
            pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning("llama.cpp server process %d did not exit within %.0f s of its stop; killed", proc.pid, grace_s)
        proc.kill()
        proc.wait()


def make_llamacpp_backend(cfg: ModelConfig, field: str = "model") -> Backend:
    """Start a llama.cpp server for `cfg.model` (GGUF path or asset name) and return an OpenAI backend on it."""
    from .openai_compat import OpenAIBackend

    server = LlamaCppServer.of(cfg)
    gguf = server.gguf_path
    server.start()
    # No more requests in flight than slots: queued requests would reach the slots in whatever order the client's
    # tasks happen to run, and a slot's reused prompt prefix (so its arithmetic) would then vary from run to run.
    client_cfg = cfg.model_copy(update={"max_concurrency": min(cfg.max_concurrency, cfg.n_parallel)})
    try:
        backend = OpenAIBackend(client_cfg, base_url=server.base_url, api_key=server.api_key, on_close=server.stop,
                                field=field)
    except BaseException:
        server.stop()
        raise
    backend.identity = gguf_identity(cfg.model, gguf)  # the port changes every run; the cache key must not
    return backend


def gguf_identity(spec: str, gguf: str | Path) -> str:
    """A run-independent identity for a GGUF model: asset name + sha256, else file name + size."""
    from .. import assets

    if spec in assets.REGISTRY:
        return f"llamacpp:{spec}:{assets.REGISTRY[spec].sha256[:16]}"
    return f"llamacpp:{Path(gguf).name}:{Path(gguf).stat().st_size}"
