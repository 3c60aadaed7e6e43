"""The FastAPI application: OpenAI-compatible routes over a Service, with keys, limits, back-pressure and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .auth import KeyCheck
from .guards import LOOPBACK_NAMES, HostGuard, RateLimiter, require_json
from .metrics import Metrics
from .protocol import APIError, chat_completion, completion_id, parse_request, stream_chunks
from .service import Service

log = logging.getLogger(__name__)


DRAIN_BYTES = 64 * 2**20  # how much of an oversized body is read and dropped so that its sender gets the 413
DRAIN_SECONDS = 5.0


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 once it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    over = declared is not None and declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    if not over:
        async for chunk in request.stream():  # a body without Content-Length is counted as it arrives
            size += len(chunk)
            if size > limit:
                over = True
                break
            chunks.append(chunk)
    if over:
        await _drain(request)
        raise APIError(413, f"request body over this server's limit of {limit} bytes", code="request_too_large")
    return b"".join(chunks)


async def _drain(request: Request) -> None:
    """Read and drop the rest of a refused body, within bounds.

    Closing a connection with unread bytes in it makes the kernel answer the still-sending client with a reset, which
    usually reaches it before the 413 does; reading the rest first lets the client see why it was refused.
    """
    async def drop() -> None:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > DRAIN_BYTES:
                return
    try:
        await asyncio.wait_for(drop(), DRAIN_SECONDS)
    except (asyncio.TimeoutError, ClientDisconnect, RuntimeError):
        pass  # a body too large or too slow to drain, or a client already gone: answer anyway


def create_app(service: Service, keys: list[str] | None = None, metrics: Metrics | None = None,
               hosts: frozenset[str] | None = LOOPBACK_NAMES) -> FastAPI:
    """The server's routes over `service`; `keys` (none: open, for loopback only) guard everything but /health's
    liveness; a request whose Host is not in `hosts` (None: any) is refused."""
    check = KeyCheck(keys or [])
    limiter = RateLimiter(service.limits.rate_per_min)
    metrics = metrics or Metrics()
    if service.on_batch is None:
        service.on_batch = lambda variant, size: metrics.batch_size.labels(variant).observe(size)
    state = {"in_flight": 0}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="cowest", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service, app.state.metrics = service, metrics
    add_error_handlers(app)
    app.add_middleware(HostGuard, allowed=hosts)

    @app.get("/health")
    async def health(request: Request) -> dict:
        body: dict = {"status": "ok"}
        if check.enabled and _holds_key(check, request):  # without a key: alive, and nothing more
            body |= {"models": [s.name for s in service.available()], "in_flight": state["in_flight"]}
        return body

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check(request.headers.get("authorization"))
        data = [{"id": s.name, "object": "model", "created": 0, "owned_by": "cowest", "description": s.description}
                for s in service.available()]
        return {"object": "list", "data": data}

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        check(request.headers.get("authorization"))
        text, ctype = metrics.render()
        return PlainTextResponse(text, media_type=ctype)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await chat_completions(request, service, (check, limiter), metrics, state)

    return app


def _holds_key(check: KeyCheck, request: Request) -> bool:
    try:
        check(request.headers.get("authorization"))
    except APIError:
        return False
    return True


def add_error_handlers(app: FastAPI) -> None:
    """Every error as an OpenAI error body: ours (APIError), Starlette's (404, 405) and crashes (500)."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        body = APIError(e.status_code, str(e.detail), code=None).body()
        return JSONResponse(body, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error while answering")
        return JSONResponse(APIError(500, "internal server error", "server_error").body(), status_code=500)


async def chat_completions(request: Request, service: Service, guards: tuple[KeyCheck, RateLimiter],
                           metrics: Metrics, state: dict[str, int]) -> Response:
    """One chat request: key, JSON body, rate, limits and back-pressure, the answer within the deadline, counted in
    the metrics."""
    limits, (check, limiter) = service.limits, guards
    t0, model, status = time.perf_counter(), "unknown", 500
    try:
        key = check(request.headers.get("authorization"))
        require_json(request.headers.get("content-type"))
        limiter(key)
        req = parse_request(await read_body(request, limits.max_body_bytes), limits)
        system = service.system(req.model)
        model = system.name  # a known name only: metric labels stay few whatever clients send
        if state["in_flight"] >= limits.max_in_flight:  # refuse now rather than queue without bound
            raise APIError(429, f"server busy: {limits.max_in_flight} requests in flight; retry shortly",
                           "rate_limit_error", code="server_busy", headers={"Retry-After": "1"})
        state["in_flight"] += 1
        metrics.in_flight.inc()
        try:
            async with asyncio.timeout(limits.deadline_s):
                answer = await service.answer(req, system)
        except TimeoutError:
            raise APIError(504, f"no answer within this server's deadline of {limits.deadline_s:g} s", "timeout",
                           code="deadline_exceeded") from None
        finally:
            state["in_flight"] -= 1
            metrics.in_flight.dec()
        metrics.count_tokens(answer.usage)
        extra = {"system": system.name, "draft": answer.draft, "answers": answer.answers, "usage": answer.usage}
        body = chat_completion(completion_id(), system.name, answer.contents, answer.finish, answer.totals(), extra)
        status = 200
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(iter(stream_chunks(body, include)), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return JSONResponse(body)
    except APIError as e:
        status = e.status
        if e.status in (401, 413, 415, 429):
            metrics.rejected.labels(str(e.code)).inc()
        raise
    finally:
        metrics.requests.labels(model, str(status)).inc()
        metrics.latency.labels(model).observe(time.perf_counter() - t0)
