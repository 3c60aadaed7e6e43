"""`cowest serve`: the command line of the OpenAI-compatible server (the server itself is `cowest.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .core import SetOpt, command, fail


@command()
def serve(
    target: Path = typer.Argument(..., exists=True, help="A run directory (its config.yaml) or a recipe YAML file."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; any other than loopback needs API keys."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    models: Optional[str] = typer.Option(None, help="Served models, comma-separated (default: all the run has): "
                                                     "cowest, refine, strong, weak."),
    keys_env: str = typer.Option("COWEST_API_KEYS", help="Environment variable holding the API keys (comma-separated)."),
    allowed_hosts: Optional[str] = typer.Option(
        None, help="Names clients may call the server by, comma-separated, besides loopback's and --host (* for any; "
                   "default on 0.0.0.0: any). Other Host headers get 400."),
    rate_limit: int = typer.Option(600, min=0, help="Requests a minute per key (without keys: for all clients); "
                                                    "more get 429 with Retry-After. 0: no limit."),
    max_in_flight: int = typer.Option(64, min=1, help="Requests answered at once; more get 429 with Retry-After."),
    deadline: float = typer.Option(120.0, min=0.1, help="Seconds one request may take (then 504)."),
    max_tokens: int = typer.Option(1024, min=1, help="Largest max_tokens a request may ask for."),
    max_prompt_chars: int = typer.Option(8000, min=1, help="Longest question (the last user message)."),
    max_body_bytes: int = typer.Option(1_000_000, min=1, help="Largest request body (then 413)."),
    max_messages: int = typer.Option(64, min=1, help="Most messages in one request."),
    max_n: int = typer.Option(4, min=1, help="Most choices (n) in one request."),
    batch_window_ms: float = typer.Option(20.0, min=0.0, help="How long a weak draft waits for others to batch with."),
    max_batch: int = typer.Option(16, min=1, help="Most drafts in one weak-model call."),
    set_: list[str] = SetOpt,
) -> None:
    """Serve the run's collaboration as an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models, /metrics)."""
    from ..config import load_recipe, load_run_recipe
    from ..serve import Limits, serve_run

    # a run is served where it lies, wherever the server is started from
    recipe = load_run_recipe(target, set_) if target.is_dir() else load_recipe(target, set_)
    limits = Limits(max_body_bytes=max_body_bytes, max_messages=max_messages, max_n=max_n,
                    max_prompt_chars=max_prompt_chars, max_tokens=max_tokens, max_in_flight=max_in_flight,
                    rate_per_min=rate_limit, deadline_s=deadline, batch_window_s=batch_window_ms / 1000,
                    max_batch=max_batch)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
    serve_run(recipe, host, port, names, limits, keys_env, hosts)
