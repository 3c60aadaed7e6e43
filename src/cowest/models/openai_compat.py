"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's server, ...) via the `openai` client."""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from cowest.config import ModelConfig
from cowest.models.base import BackendError, BaseBackend, Completion, Conversation, Sampling, truncate_at_stop

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


class OpenAIBackend(BaseBackend):
    """Chat completions against an OpenAI-compatible server, with a concurrency cap, retries and timeouts.

    Requests run on a thread pool of `max_concurrency` workers sharing one synchronous client (and its connection
    pool), so `generate` blocks the same way whether or not the caller runs an event loop.
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
        super().__init__()
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
        # The key itself is never stored on the backend, logged, or part of the identity.
        self.identity = f"openai:{cfg.model}@{self.base_url}"
        # max_retries=0: tenacity does the retrying, with our own limits and error message
        self._client = openai.OpenAI(api_key=api_key, base_url=self.base_url, timeout=cfg.timeout_s, max_retries=0)
        self._pool = self._new_pool()
        self._n_honoured: bool | None = None  # learnt from the first n>1 reply; llama.cpp's server may ignore n
        self._closed = False

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, self.cfg.max_concurrency), thread_name_prefix="cowest-openai")

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

    def _request(
        self, conv: Conversation, n: int, seed: int, sampling: Sampling, cancel: threading.Event
    ) -> list[Completion]:
        """One chat-completions request (retried on transient errors until `cancel` is set); its choices."""
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
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=self._wait,
            sleep=cancel.wait,  # a failed batch wakes its backoffs, so no worker sleeps on for nothing
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if cancel.is_set():  # the batch failed already: not retried, and its error is the one raised
                        raise CancelledError
                    resp = self._client.chat.completions.create(**params)
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

    def _generate(self, convs: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        """`n` completions per conversation: one request with `n`, topped up with single requests (seed + i)."""
        if self._closed:
            raise BackendError(f"model {self.cfg.model}: backend already closed")
        slots: list[list[Completion | None]] = [[None] * n for _ in convs]
        cancel = threading.Event()
        pending: dict[Future[list[Completion]], tuple[int, int, int]] = {}  # future -> (conversation, first index, n)

        def submit(i: int, j: int, k: int) -> None:
            pending[self._pool.submit(self._request, convs[i], k, sampling.seed + j, sampling, cancel)] = (i, j, k)

        with tqdm(total=len(convs), desc=f"requests {self.cfg.model}", leave=False, disable=None) as bar:
            try:
                for i in range(len(convs)):
                    if n == 1 or self._n_honoured is not False:
                        submit(i, 0, n)
                    else:
                        for j in range(n):
                            submit(i, j, 1)
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i, j, k = pending.pop(fut)
                        comps = fut.result()[:k]
                        slots[i][j : j + len(comps)] = comps
                        if k > 1:  # the request with n: the server may have sent fewer
                            self._n_honoured = len(comps) >= k
                            for m in range(len(comps), n):
                                submit(i, m, 1)
                        if all(c is not None for c in slots[i]):
                            bar.update(1)
            except BaseException as e:
                cancel.set()  # one failure ends the batch: do not leave the others running
                for fut in pending:
                    fut.cancel()
                if isinstance(e, KeyboardInterrupt):  # Ctrl-C: drop every queued request, keep the backend usable
                    old, self._pool = self._pool, self._new_pool()
                    old.shutdown(wait=False, cancel_futures=True)
                raise
        return [[c for c in row if c is not None] for row in slots]

    def close(self) -> None:
        """Close the worker threads and the HTTP client, then call `on_close` (e.g. stop a managed server)."""
        try:
            if not self._closed:
                self._closed = True
                self._pool.shutdown(cancel_futures=True)
                self._client.close()
        finally:
            if self.on_close is not None:
                callback, self.on_close = self.on_close, None  # at most once
                callback()
