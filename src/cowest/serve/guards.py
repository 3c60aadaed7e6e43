"""What a request must pass before any model is called: a Host this server answers to (so that a web page that
rebinds its own name to 127.0.0.1 is refused), a JSON body (so that a page's "simple" text/plain POST is refused),
and its key's request rate."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Awaitable, Callable

from starlette.responses import JSONResponse

from .protocol import APIError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def allowed_hosts(host: str, extra: list[str] | None = None) -> frozenset[str] | None:
    """The names a client may call this server by: loopback names, the served address and `extra`; None: any.

    A server on every interface (0.0.0.0, ::) answers any name unless `extra` lists them: it needs keys anyway,
    and a page in a browser cannot send a key it does not know.
    """
    names = {_bare(h) for h in extra or [] if h.strip()}
    if "*" in names:
        return None
    if _bare(host) in WILDCARDS and not names:
        return None
    return frozenset(LOOPBACK_NAMES | names | ({_bare(host)} - WILDCARDS))


def _bare(host: str) -> str:
    """A Host header's or option's name: lower case, without port, brackets or a trailing dot."""
    h = host.strip().lower()
    if h.startswith("["):  # [::1]:8000
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        h = h.split(":", 1)[0]
    return h.rstrip(".")


class HostGuard:
    """ASGI middleware: a request whose Host header is not an allowed name gets a 400 before any route runs."""

    def __init__(self, app: Any, allowed: frozenset[str] | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _bare(host) not in self.allowed:
                err = APIError(400, f"this server does not answer to the host {host[:100]!r} (cowest serve "
                                    "--allowed-hosts adds names)", code="invalid_host")
                await JSONResponse(err.body(), status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_json(content_type: str | None) -> None:
    """A 415 unless the body is declared `application/json` (what every OpenAI client sends)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise APIError(415, f"request body must be application/json, not {media[:100] or 'undeclared'!r}",
                       code="unsupported_media_type")


class RateLimiter:
    """At most `per_min` requests per key in any 60 seconds (0: no limit); more get 429 with Retry-After."""

    WINDOW_S = 60.0

    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min, self.clock = per_min, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> None:
        """Count one request of `key`, or raise the 429 that says when to come back."""
        if self.per_min <= 0:
            return
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - self.WINDOW_S:
                seen.popleft()
            if len(seen) >= self.per_min:
                wait = max(1, math.ceil(seen[0] + self.WINDOW_S - now))
                raise APIError(429, f"rate limit: {self.per_min} requests a minute for this key; retry in {wait} s",
                               "rate_limit_error", code="rate_limited", headers={"Retry-After": str(wait)})
            seen.append(now)
