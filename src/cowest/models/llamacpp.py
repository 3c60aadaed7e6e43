"""A managed local llama.cpp server (xllamacpp) for a GGUF file, spoken to as an OpenAI-compatible endpoint.

xllamacpp runs llama.cpp's HTTP server inside this process, on native threads: `Server(params)` loads the model,
binds the port and returns; dropping the last reference to it runs its destructor, which stops the main loop and
frees the port and the model. Several servers can live in one process and a stopped one can be started again, so
`stop()` simply releases the object. The embedded chat template is applied by llama.cpp (jinja is on by default).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ModelConfig
from ..net import free_port
from .base import Backend, BackendError

if TYPE_CHECKING:
    import xllamacpp

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
        self.start_time_s: float | None = None  # how long the last start() took
        self.fixed_key = api_key
        self.api_key: str | None = None  # the key of the running server
        self._server: xllamacpp.Server | None = None

    @classmethod
    def of(cls, cfg: ModelConfig, **override: Any) -> LlamaCppServer:
        """A (not started) server for a model config's GGUF and its server knobs; `override` replaces some of them."""
        from .. import assets

        knobs = dict(n_ctx=cfg.n_ctx, n_parallel=cfg.n_parallel, n_threads=cfg.n_threads, alias=cfg.model,
                     reuse_prefix=cfg.reuse_prefix)
        return cls(assets.resolve_model(cfg.model, "gguf"), **{**knobs, **override})

    def _params(self, port: int) -> xllamacpp.CommonParams:
        import xllamacpp

        p = xllamacpp.CommonParams()
        p.model.path = str(self.gguf_path)
        p.n_ctx = self.n_ctx * self.n_parallel
        p.n_parallel = self.n_parallel
        p.kv_unified = False  # fixed per-slot context: a long request cannot starve a concurrent one
        p.cpuparams.n_threads = self.n_threads
        p.cpuparams_batch.n_threads = self.n_threads
        p.hostnames = [self.host]
        p.port = port
        p.use_jinja = True  # use the chat template embedded in the GGUF
        p.cache_prompt = self.reuse_prefix  # off: every prompt computed whole, its answer whatever came before
        p.verbosity = 1  # errors only; llama.cpp's info log is very chatty
        p.api_keys = [self.api_key]
        if self.alias:
            p.model_alias = {self.alias}
        return p

    @property
    def running(self) -> bool:
        """Whether the server object is alive."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1."""
        if self.port is None:
            raise BackendError("llama.cpp server not started")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LlamaCppServer:
        """Load the model, listen, and wait until /health answers OK."""
        if self._server is not None:
            return self
        if not self.gguf_path.is_file():
            raise BackendError(f"GGUF file not found: {self.gguf_path}")
        import xllamacpp

        t0 = time.perf_counter()
        self.api_key = self.fixed_key or f"sk-cowest-{secrets.token_urlsafe(24)}"
        fixed = self.port is not None
        last: Exception | None = None
        # a port picked by us may be taken by someone else before llama.cpp binds it: retry with another
        for _ in range(1 if fixed else 3):
            port = self.port if fixed else free_port(self.host)
            try:
                self._server = xllamacpp.Server(self._params(port))
                self.port = port
                break
            except RuntimeError as e:  # xllamacpp reports only "Failed to init server"; details go to stderr
                last = e
        if self._server is None:
            raise BackendError(
                f"llama.cpp server failed to start for {self.gguf_path} (port {self.port or 'auto'}): {last}; "
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

    def _wait_healthy(self, t0: float) -> None:
        url = f"http://{self.host}:{self.port}/health"
        last = "no answer"
        while time.perf_counter() - t0 < self.startup_timeout_s:
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
        """Stop the server and free its port and model; safe to call twice."""
        server, self._server = self._server, None
        atexit.unregister(self.stop)
        if server is not None:
            del server  # the last reference: the destructor joins llama.cpp's main loop and closes the socket

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"LlamaCppServer({str(self.gguf_path)!r}, {state})"


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
