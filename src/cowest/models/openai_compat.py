"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's server, ...) via the `openai` client."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future
from typing import Any, Callable, Coroutine, Sequence, TypeVar

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from cowest.config import ModelConfig
from cowest.models.base import BackendError, Completion, Conversation, Sampling, Usage, truncate_at_stop

T = TypeVar("T")
RETRY_STATUS = {408, 409, 429}  # plus every 5xx: the same set the openai client itself retries


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: rate limits, server errors, timeouts and dropped connections."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:  # an HTTP date: rare, fall back to our own backoff
        return None
    return None


def _split(total: int, k: int) -> list[int]:
    """Split `total` into `k` near-equal integers that sum to `total`."""
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible server, with a concurrency cap, retries and timeouts.

    All requests run on a private event loop in a background thread that lives as long as the backend, so the
    async client keeps its connection pool and `generate` works whether or not the caller runs an event loop.
    """

    retry_initial_s = 1.0  # first backoff; doubles per attempt, plus up to the same again of random jitter
    retry_max_s = 60.0

    def __init__(
        self,
        cfg: ModelConfig,
        base_url: str | None = None,
        api_key: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.base_url = (base_url or cfg.base_url or "https://api.openai.com/v1").rstrip("/")
        if api_key is None:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise BackendError(
                    f"environment variable {cfg.api_key_env} is not set: it must hold the API key for model "
                    f"{cfg.model} at {self.base_url} (set model.api_key_env to use another variable)"
                )
        self.on_close = on_close
        self.usage = Usage()
        # The key itself is never stored on the backend, logged, or part of the identity.
        self.identity = f"openai:{cfg.model}@{self.base_url}"
        # max_retries=0: tenacity does the retrying, with our own limits and error message
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=self.base_url, timeout=cfg.timeout_s, max_retries=0
        )
        self._sem = asyncio.Semaphore(max(1, cfg.max_concurrency))
        self._n_honoured: bool | None = None  # learnt from the first n>1 reply; llama.cpp's server may ignore n
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- event loop ----------------------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the private loop and block until it finishes."""
        if self._closed:
            coro.close()  # never scheduled: close it so Python does not warn it was never awaited
            raise BackendError(f"model {self.cfg.model}: backend already closed")
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="cowest-openai", daemon=True)
                self._thread.start()
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # Ctrl-C: stop the in-flight requests too
            raise

    # -- requests ------------------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self.retry_initial_s, max=self.retry_max_s,
                                          jitter=self.retry_initial_s)(state)
        asked = _retry_after(state.outcome.exception() if state.outcome else None) or 0.0
        return min(max(backoff, asked), self.retry_max_s)

    def _fail(self, exc: BaseException, attempts: int) -> BackendError:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status is not None else type(exc).__name__
        detail = getattr(exc, "message", None) or str(exc)
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if is_transient(exc) else ""
        hint = f" (check the key in {self.cfg.api_key_env})" if status in (401, 403) else ""
        return BackendError(f"model {self.cfg.model} at {self.base_url}: request failed{tries}: {what}: {detail}{hint}")

    async def _request(self, conv: Conversation, n: int, seed: int, sampling: Sampling) -> list[Completion]:
        """One chat-completions request (retried on transient errors); its choices as completions."""
        params: dict[str, Any] = dict(
            model=self.cfg.model,
            messages=list(conv),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,  # widest support: llama.cpp, vLLM and OpenAI's chat models
            seed=seed,
        )
        if n > 1:
            params["n"] = n
        if sampling.stop:
            params["stop"] = list(sampling.stop)
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._sem:
                        resp = await self._client.chat.completions.create(**params)
        except openai.OpenAIError as e:
            raise self._fail(e, retrying.statistics.get("attempt_number", 1)) from e
        choices = sorted(resp.choices or [], key=lambda c: c.index)
        if not choices:
            raise BackendError(f"model {self.cfg.model} at {self.base_url}: reply with no choices")
        usage = resp.usage
        prompt = _split((usage.prompt_tokens or 0) if usage else 0, len(choices))
        completion = _split((usage.completion_tokens or 0) if usage else 0, len(choices))
        out = []
        for c, p, k in zip(choices, prompt, completion):
            # the server applies `stop` already; cutting again guards against servers that ignore it
            text, stopped = truncate_at_stop(c.message.content or "", sampling.stop)
            out.append(Completion(text, p, k, "stop" if stopped else c.finish_reason))
        return out

    async def _samples(self, conv: Conversation, n: int, sampling: Sampling) -> list[Completion]:
        """`n` completions: one request with `n`, topped up with single requests (seed + i) if fewer came back."""
        got: list[Completion] = []
        if n == 1 or self._n_honoured is not False:
            got = await self._request(conv, n, sampling.seed, sampling)
            if n > 1:
                self._n_honoured = len(got) >= n
        if len(got) < n:
            rest = await asyncio.gather(
                *(self._request(conv, 1, sampling.seed + i, sampling) for i in range(len(got), n))
            )
            got += [r[0] for r in rest]
        return got[:n]

    async def _generate(self, convs: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        with tqdm(total=len(convs), desc=f"requests {self.cfg.model}", leave=False, disable=None) as bar:

            async def one(conv: Conversation) -> list[Completion]:
                comps = await self._samples(conv, n, sampling)
                bar.update(1)
                return comps

            tasks = [asyncio.ensure_future(one(c)) for c in convs]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for t in tasks:  # one failure ends the batch: do not leave the others running
                    t.cancel()
                raise

    def generate(
        self, conversations: Sequence[Conversation], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        """Return `n` completions per conversation; requests run concurrently up to `max_concurrency`."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not conversations:
            return []
        results = self._run(self._generate(conversations, n, sampling))
        for comps in results:
            for c in comps:
                self.usage.add(c)
        return results

    def close(self) -> None:
        """Close the HTTP client and the private loop, then call `on_close` (e.g. stop a managed server)."""
        try:
            if not self._closed:
                self._run(self._client.close())
                self._closed = True
                loop, self._loop = self._loop, None
                assert loop is not None and self._thread is not None
                loop.call_soon_threadsafe(loop.stop)
                self._thread.join(timeout=10)
                loop.close()
        finally:
            if self.on_close is not None:
                callback, self.on_close = self.on_close, None  # at most once
                callback()
