"""Checks before the first stage: every model the recipe names can be found, has its key, and answers, so a
missing key or a mistyped path fails in seconds rather than after training."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ModelConfig, Recipe
from .errors import CowestError

REACH_TIMEOUT_S = 5.0


class PreflightError(CowestError):
    """One or more models of the recipe cannot be used; the message lists each, by recipe field."""


def _local_model(field: str, cfg: ModelConfig) -> str | None:
    """Why a local model (hf checkpoint or GGUF file) cannot be loaded, or None."""
    from .assets import AssetError, missing_local, resolve_model

    if missing_local(cfg.model):
        return f"{field}.model: {cfg.model}: no such {'file' if cfg.backend == 'llamacpp' else 'model directory'}"
    try:
        found = resolve_model(cfg.model, "hf" if cfg.backend == "hf" else "gguf")
    except AssetError as e:
        return f"{field}.model: {e}"
    if cfg.backend == "llamacpp" and not Path(found).is_file():  # a GGUF server needs a local file, never a hub id
        return f"{field}.model: {cfg.model}: no such file"
    from .models.hub import hub_problem

    if cfg.backend == "hf" and (problem := hub_problem(field, cfg.model)):
        return problem
    if cfg.adapter and not Path(cfg.adapter).is_dir():
        return f"{field}.adapter: {cfg.adapter}: no such directory"
    return None


def _endpoint(field: str, cfg: ModelConfig) -> str | None:
    """Why an OpenAI-compatible endpoint cannot be used (no key, unreachable, key refused), or None."""
    import openai

    key = os.environ.get(cfg.api_key_env)
    if not key:
        return f"{field}.api_key_env: environment variable {cfg.api_key_env} is not set (the key for {cfg.model})"
    base = cfg.endpoint().rstrip("/")
    from_env = not cfg.base_url and os.environ.get("OPENAI_BASE_URL")
    where = f"{field}.base_url" + (" (unset, so OPENAI_BASE_URL)" if from_env else "")
    client = openai.OpenAI(api_key=key, base_url=base, timeout=min(REACH_TIMEOUT_S, cfg.timeout_s), max_retries=0)
    try:
        client.models.list()
    except openai.APIConnectionError as e:  # refused, reset, DNS, timeout
        from .models.openai_compat import is_unreachable, root_cause

        refused = is_unreachable(e) and isinstance(root_cause(e), ConnectionRefusedError)
        return f"{where}: {base} refused the connection" if refused else f"{where}: cannot reach {base}/models: {e}"
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        return f"{field}: {base} refused the key in {cfg.api_key_env} (HTTP {e.status_code})"
    except openai.APIStatusError:
        pass
    finally:
        client.close()
    return None  # any other answer (even 404 from servers without /models) means someone is listening


def model_problems(recipe: Recipe) -> dict[str, str | None]:
    """Each model field of the recipe and why it cannot be used (None: found, keyed and answering)."""
    models = {"weak": recipe.weak, "strong": recipe.strong, "judge": recipe.judge, "ablations.strong":
              recipe.ablations.strong}
    return {field: _endpoint(field, cfg) if cfg.backend == "openai" else _local_model(field, cfg)
            for field, cfg in models.items() if cfg is not None}


def check_models(recipe: Recipe) -> None:
    """Raise PreflightError naming every model of the recipe that cannot be used; return quietly otherwise."""
    problems = [p for p in model_problems(recipe).values() if p]
    if problems:
        raise PreflightError("before any stage: " + "; ".join(problems))
