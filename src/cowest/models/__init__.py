"""Model backends (local HF, OpenAI-compatible, managed llama.cpp) behind one protocol, with a call cache.

Heavy backends are imported lazily, so `import cowest.models` stays cheap (no torch, no openai).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cowest.config import ModelConfig
from cowest.models.base import Backend, BackendError, BaseBackend, Completion, Conversation, Message, Sampling, Usage
from cowest.models.cache import CachedBackend, CacheError, CallCache, cache_key

__all__ = [
    "Backend", "BackendError", "BaseBackend", "CacheError", "CachedBackend", "CallCache", "Completion", "Conversation",
    "HFBackend", "Message", "OpenAIBackend", "Sampling", "Usage", "build_backend", "cache_key",
]


def build_backend(cfg: ModelConfig, cache_path: Path | None = None, field: str = "model") -> Backend:
    """The backend `cfg` describes, behind the call cache unless `cfg.cache` is "off" (a path there overrides);
    its errors name the recipe `field` it comes from (weak, strong, judge)."""
    inner: Backend
    if cfg.backend == "hf":
        from cowest.models.hf import HFBackend

        inner = HFBackend(cfg, field=field)
    elif cfg.backend == "openai":
        from cowest.models.openai_compat import OpenAIBackend

        inner = OpenAIBackend(cfg, field=field)
    elif cfg.backend == "llamacpp":
        from cowest.models.llamacpp import make_llamacpp_backend

        inner = make_llamacpp_backend(cfg, field=field)
    else:  # the config's Literal makes this unreachable for validated configs
        raise BackendError(f"unknown backend {cfg.backend!r}")
    if cfg.cache == "off":
        return inner
    path = Path(cfg.cache) if cfg.cache else cache_path
    if path is None:
        return inner
    try:
        return CachedBackend(inner, CallCache(path))
    except BaseException:
        inner.close()  # do not leak a started server or a loaded model
        raise


def __getattr__(name: str) -> Any:
    """Lazy access to the heavy backend classes."""
    if name == "HFBackend":
        from cowest.models.hf import HFBackend

        return HFBackend
    if name == "OpenAIBackend":
        from cowest.models.openai_compat import OpenAIBackend

        return OpenAIBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
