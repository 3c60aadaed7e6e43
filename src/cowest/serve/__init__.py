"""`cowest serve`: the trained weak-strong pair behind an OpenAI-compatible HTTP endpoint.

Modules: `protocol` (wire format, limits, error bodies), `auth` (keys), `batching` (weak drafts in batches),
`service` (the served systems), `metrics` (Prometheus), `app` (the FastAPI routes); `serve_run` starts uvicorn.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .auth import KEYS_ENV, ServeConfigError, check_bind, load_keys
from .protocol import APIError, Limits

if TYPE_CHECKING:
    from ..config import Recipe

__all__ = ["APIError", "KEYS_ENV", "Limits", "ServeConfigError", "serve_recipe", "serve_run"]

log = logging.getLogger(__name__)


def serve_recipe(recipe: Recipe, limits: Limits) -> Recipe:
    """The recipe as served: a strong call may not outlive the request that made it."""
    strong = recipe.strong
    if strong.deadline_s > limits.deadline_s:
        strong = strong.model_copy(update={"deadline_s": limits.deadline_s,
                                           "timeout_s": min(strong.timeout_s, limits.deadline_s)})
    return recipe.model_copy(update={"strong": strong})


def serve_run(recipe: Recipe, host: str = "127.0.0.1", port: int = 8000, models: list[str] | None = None,
              limits: Limits = Limits(), keys_env: str = KEYS_ENV, hosts: list[str] | None = None) -> None:
    """Load the run's models and serve them until interrupted (the models are released on the way out); `hosts`:
    names clients may call it by besides loopback's and `host` (`*`: any)."""
    import uvicorn

    from ..run import Run
    from .app import create_app
    from .guards import allowed_hosts
    from .metrics import Metrics
    from .service import service_from_run

    keys = load_keys(keys_env)
    check_bind(host, keys, keys_env)  # before any model is loaded
    if not keys:
        log.warning("no API keys in %s: every local client is served", keys_env)
    run = Run(serve_recipe(recipe, limits))
    metrics = Metrics()
    service = None
    try:
        service = service_from_run(run, models, limits)
        app = create_app(service, keys, metrics, allowed_hosts(host, hosts))
        log.info("serving %s on http://%s:%d/v1", ", ".join(s.name for s in service.available()), host, port)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)
    finally:
        if service is not None:
            for backend in service.weak.values():
                backend.close()
        run.release()
