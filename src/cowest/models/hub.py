"""Whether a Hugging Face Hub model id can be loaded here: in the local Hub cache, or the Hub reachable to fetch it."""

from __future__ import annotations

import os

from cowest.assets import REGISTRY

HUB_TIMEOUT_S = 5.0
_TRUE = {"1", "on", "yes", "true"}


def is_hub_id(spec: str) -> bool:
    """`org/name`: not an asset name, not a local path."""
    from pathlib import Path

    local = spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or Path(spec).expanduser().exists()
    return spec not in REGISTRY and spec.count("/") == 1 and not local


def offline() -> bool:
    """Whether the Hub is switched off for this process (HF_HUB_OFFLINE, or transformers' TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    env = (os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(env)


def is_cached(repo_id: str) -> bool:
    """Whether the Hub cache holds the model's config (so transformers can load it without the network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def probe(repo_id: str, repo_type: str = "model", timeout_s: float = HUB_TIMEOUT_S) -> tuple[str, str] | None:
    """One quick request for `repo_id` on the Hub: None when it is there, else (kind, why) with kind one of
    `unreachable`, `missing`, `gated`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=timeout_s)
    except GatedRepoError:
        return "gated", "is gated on the Hub: accept its licence and log in (hf auth login)"
    except RepositoryNotFoundError:
        return "missing", f"no such {repo_type} on the Hugging Face Hub (or it is private)"
    except Exception as e:  # connection refused, DNS, timeout, proxy: the Hub cannot be reached
        return "unreachable", f"the Hub cannot be reached ({type(e).__name__})"
    return None


def hub_problem(field: str, spec: str, timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """Why the hub id `spec` of recipe field `field` cannot be loaded (one line), or None (cached, or on the Hub)."""
    if not is_hub_id(spec) or is_cached(spec):
        return None
    fix = "run once where the Hub is reachable (it is then cached), or give a local directory or an asset name"
    found = ("unreachable", "the Hub cannot be reached (offline: HF_HUB_OFFLINE)") if offline() else probe(
        spec, "model", timeout_s)
    if found is None:
        return None
    kind, why = found
    if kind == "unreachable":
        return f"{field}.model: {spec!r} is not installed and {why}; {fix}"
    return f"{field}.model: {spec!r} {why}" if kind == "gated" else f"{field}.model: {spec!r}: {why}"
