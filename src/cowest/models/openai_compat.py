"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp's server, ...) via the `openai` client.

Reliability rules:

- Every reply is validated before it is returned (and so before it can be cached): a body that is not the
  chat-completion JSON (invalid JSON, an HTML page), no choices, a null or empty `content`, or fewer choices than `n`
  from a server known to honour `n` is a `MalformedReply`, retried like a 429/5xx/timeout with the same bounded
  backoff.
- One request gets at most `max_retries + 1` attempts and `deadline_s` seconds in all (each attempt's timeout is cut
  to what is left). A request that still fails is recorded and the batch goes on; `generate` then raises a
  `BackendError` naming it, after every finished conversation went to `on_done` (the cache keeps them).
- Circuit breaker: min(`max_consecutive_failures`, `max_concurrency`) failed requests in a row stop the batch at
  once, so a hung server costs about one request deadline, not one per request. Errors that retrying cannot fix
  (400, 401, 404, ...) stop the batch at the first one, and so does a connection the server refuses (or a host
  that does not resolve) after `connect_retries` quick retries: nothing is listening, so every request would fail.
- `n` samples: with a server that honours `n`, sample j is choice j of one request (seed s). A reply with too few
  choices is retried whole, with the same seed, so the samples do not depend on which faults happened. Only when the
  first `n > 1` reply of this backend has exactly one choice is the server taken to ignore `n`: from then on sample j
  is its own request with seed s + j (also fault-independent once learnt).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, NoReturn, Sequence

import socket

import openai
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from cowest.config import ModelConfig
from cowest.models.base import BackendError, BaseBackend, Completion, Conversation, OnDone, Sampling, truncate_at_stop
from cowest.models.openai_params import for_endpoint
from cowest.models.progress import CallProgress

RETRY_STATUS = {408, 409, 429}  # plus every 5xx: the same set the openai client itself retries


class MalformedReply(BackendError):
    """A 200 reply that is not a usable answer (not chat-completion JSON, no choices, empty content, too few)."""


def is_transient(exc: BaseException | None) -> bool:
    """Errors worth retrying: rate limits, server errors, timeouts, dropped connections and malformed replies."""
    if isinstance(exc, (openai.APIConnectionError, MalformedReply)):  # the first includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (the client wraps its HTTP library's, which wraps the socket's)."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return exc


def is_unreachable(exc: BaseException | None) -> bool:
    """A connection that could not be made (refused, host unknown): not a timeout, nor one dropped mid-reply."""
    return (isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
            and isinstance(root_cause(exc), (ConnectionRefusedError, socket.gaierror)))


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

    streams_results = True

    def __init__(
        self,
        cfg: ModelConfig,
        base_url: str | None = None,
        api_key: str | None = None,
        on_close: Callable[[], None] | None = None,
        field: str = "model",
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.field = field  # the recipe field errors name: weak, strong, judge
        self.base_url = (base_url or cfg.endpoint()).rstrip("/")
        # where the URL comes from, for errors: a managed server's is no recipe field
        self._url_field = f"{field}.base_url" if base_url is None else field
        if api_key is None:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise BackendError(
                    f"{field}.api_key_env: environment variable {cfg.api_key_env} is not set: it must hold the API "
                    f"key for model {cfg.model} at {self.base_url} (set {field}.api_key_env to use another variable)"
                )
        self.retry_initial_s, self.retry_max_s = cfg.retry_initial_s, cfg.retry_max_s
        self.on_close = on_close
        # The key itself is never stored on the backend, logged, or part of the identity.
        self.identity = f"openai:{cfg.model}@{self.base_url}"
        # max_retries=0: tenacity does the retrying, with our own limits and error message
        self._client = openai.OpenAI(api_key=api_key, base_url=self.base_url, timeout=cfg.timeout_s, max_retries=0)
        self._pool = self._new_pool()
        self._n_honoured: bool | None = None  # learnt from the first n>1 reply; llama.cpp's server may ignore n
        self._params = for_endpoint(self.identity)  # max_completion_tokens, refused sampling parameters
        self._closed = False
        self.progress = CallProgress(f"{field} calls ({cfg.model})")  # every call, across batches and overlap

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, self.cfg.max_concurrency), thread_name_prefix="cowest-openai")

    # -- requests ------------------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self.retry_initial_s, max=self.retry_max_s,
                                          jitter=self.retry_initial_s)(state)
        asked = _retry_after(state.outcome.exception() if state.outcome else None) or 0.0
        return min(max(backoff, asked), self.retry_max_s)

    def _where(self) -> str:
        return f"{self.field}: model {self.cfg.model} at {self.base_url}"

    def _fail(self, exc: BaseException, attempts: int, seconds: float) -> BackendError:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status is not None else type(exc).__name__
        detail = getattr(exc, "message", None) or str(exc)
        tries = (f" after {attempts} attempt{'s' if attempts != 1 else ''} in {seconds:.1f} s"
                 if is_transient(exc) else "")
        hint = f" (check the key in {self.cfg.api_key_env}, {self.field}.api_key_env)" if status in (401, 403) else ""
        if status == 400 and "context" in detail.lower():
            hint = (f" (the prompt and its token cap exceed the model's context: raise {self.field}.n_ctx where "
                    "cowest starts the server, or shorten the questions, collab.draft_max_tokens or the token caps)")
        if isinstance(exc, openai.APITimeoutError):
            hint = f" (no answer within {self.field}.timeout_s; {self.field}.deadline_s bounds all attempts)"
        if is_unreachable(exc):
            root = root_cause(exc)
            refused = isinstance(root, ConnectionRefusedError)
            how = "refused the connection" if refused else f"cannot be reached ({root})"
            return BackendError(f"{self._url_field}: {self.base_url} {how}{tries}; is the server running there?")
        return BackendError(f"{self._where()}: request failed{tries}: {what}: {detail}{hint}")

    def _request(
        self, conv: Conversation, n: int, seed: int, sampling: Sampling, cancel: threading.Event
    ) -> list[Completion]:
        """One chat-completions request (retried on transient errors until `cancel` is set); its choices."""
        params: dict[str, Any] = dict(
            model=self.cfg.model,
            messages=list(conv),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,  # sent as the endpoint takes it: see openai_params
            seed=seed,
        )
        if n > 1:
            params["n"] = n
        if sampling.stop:
            params["stop"] = list(sampling.stop)
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=(stop_after_attempt(self.cfg.max_retries + 1) | stop_before_delay(self.cfg.deadline_s)
                  | self._stop_connect),
            wait=self._wait,
            sleep=cancel.wait,  # a failed batch wakes its backoffs, so no worker sleeps on for nothing
            reraise=True,
        )
        t0 = time.monotonic()
        try:
            for attempt in retrying:
                with attempt:
                    if cancel.is_set():  # the batch failed already: not retried, and its error is the one raised
                        raise CancelledError
                    # the deadline bounds the attempt in flight too, not only when the next one may start
                    left = max(0.001, self.cfg.deadline_s - (time.monotonic() - t0))
                    try:
                        resp = self._create(params, min(self.cfg.timeout_s, left))
                    except (ValueError, TypeError) as e:  # a 200 whose body is not JSON or not the expected shape
                        raise MalformedReply(f"unreadable reply ({type(e).__name__}: {e})") from e
                    out = self._parse(resp, n, sampling)
        except (openai.OpenAIError, MalformedReply) as e:
            raise self._fail(e, retrying.statistics.get("attempt_number", 1), time.monotonic() - t0) from e
        return out

    def _stop_connect(self, state: RetryCallState) -> bool:
        """Stop retrying a connection that cannot be made after `connect_retries` retries."""
        exc = state.outcome.exception() if state.outcome else None
        return is_unreachable(exc) and state.attempt_number > self.cfg.connect_retries

    def _create(self, params: dict[str, Any], timeout: float) -> Any:
        """One call with `params` as this endpoint takes them; a parameter its 400 refuses is learnt (for the run) and
        the call made again without it (each parameter at most once, so this ends)."""
        while True:
            sent = self._params.build(params)
            try:
                return self._client.chat.completions.create(**sent, timeout=timeout)
            except openai.BadRequestError as e:
                if not self._params.learn(e, sent, self._where()):
                    raise

    def _parse(self, resp: Any, n: int, sampling: Sampling) -> list[Completion]:
        """The reply's choices as completions, or MalformedReply when it is not a usable answer."""
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list):  # the client hands back the raw text of a non-JSON body (an HTML page)
            raise MalformedReply(f"reply is not chat-completion JSON: {str(resp)[:80]!r}")
        if not choices:
            raise MalformedReply("reply with no choices")
        # one choice for n > 1 is how a server that ignores n answers; fewer from one that honours n is a fault
        if len(choices) < n and (len(choices) > 1 or self._n_honoured):
            raise MalformedReply(f"reply with {len(choices)} of {n} choices")
        choices = sorted(choices, key=lambda c: c.index)[:n]
        if any(c.message is None or not c.message.content for c in choices):
            raise MalformedReply("reply with null or empty content")
        usage = resp.usage
        prompt = _split((usage.prompt_tokens or 0) if usage else 0, len(choices))
        completion = _split((usage.completion_tokens or 0) if usage else 0, len(choices))
        out = []
        for c, p, k in zip(choices, prompt, completion):
            # the server applies `stop` already; cutting again guards against servers that ignore it
            text, stopped = truncate_at_stop(c.message.content, sampling.stop)
            out.append(Completion(text, p, k, "stop" if stopped else c.finish_reason))
        return out

    def _generate(
        self, convs: Sequence[Conversation], n: int, sampling: Sampling, on_done: OnDone | None = None
    ) -> list[list[Completion]]:
        """`n` completions per conversation (see the module doc), each conversation passed to `on_done` when done."""
        if self._closed:
            raise BackendError(f"model {self.cfg.model}: backend already closed")
        slots: list[list[Completion | None]] = [[None] * n for _ in convs]
        cancel = threading.Event()
        pending: dict[Future[list[Completion]], tuple[int, int, int]] = {}  # future -> (conversation, first index, n)
        failed: dict[int, BackendError] = {}  # conversation -> its first failed request
        in_a_row = finished = 0
        tripped = False

        def submit(i: int, j: int, k: int) -> None:
            pending[self._pool.submit(self._request, convs[i], k, sampling.seed + j, sampling, cancel)] = (i, j, k)
            self.progress.sent()

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
                    self.progress.done()
                    try:
                        comps = fut.result()
                    except BackendError as e:
                        if not is_transient(e.__cause__) or is_unreachable(e.__cause__):
                            raise  # retrying cannot fix it, or no one listens: every request would fail
                        failed.setdefault(i, e)
                        in_a_row += 1
                        if in_a_row >= min(self.cfg.max_consecutive_failures, self.cfg.max_concurrency):
                            tripped = True
                            raise self._breaker(in_a_row, len(convs), finished, e) from e
                        continue
                    in_a_row = 0
                    slots[i][j : j + len(comps)] = comps
                    if k > 1:  # the request with n: one choice means the server ignores n
                        self._learn_n(len(comps), k)
                        for m in range(len(comps), n):
                            submit(i, m, 1)
                    if all(c is not None for c in slots[i]):
                        finished += 1
                        if on_done is not None:
                            on_done(i, [c for c in slots[i] if c is not None])
        except BaseException as e:
            self._abandon(cancel, pending, renew=tripped or isinstance(e, KeyboardInterrupt))
            raise
        if failed:
            self._raise_failed(failed, len(convs))
        return [[c for c in row if c is not None] for row in slots]

    def _learn_n(self, got: int, asked: int) -> None:
        """Whether the server honours `n`, learnt from a request that asked for `asked` choices and got `got`."""
        if got >= asked:
            self._n_honoured = True
        elif self._n_honoured is None:
            self._n_honoured = False

    def _abandon(self, cancel: threading.Event, pending: Iterable[Future], renew: bool) -> None:
        """One failure ends the batch: do not leave the others running. `renew` (Ctrl-C, or a breaker whose workers
        may hang on): a fresh pool keeps the backend usable."""
        cancel.set()
        for fut in pending:
            fut.cancel()
        self.progress.done(len(list(pending)))  # given up: no longer in flight
        if renew:
            old, self._pool = self._pool, self._new_pool()
            old.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _raise_failed(failed: dict[int, BackendError], total: int) -> NoReturn:
        """Raise the error of a batch whose requests `failed` (conversation -> its first error), the others done."""
        first = next(iter(failed.values()))
        if total == 1:
            raise first
        raise BackendError(f"{len(failed)} of {total} requests failed (the other {total - len(failed)} finished); "
                           f"first: {first}") from first

    def _breaker(self, in_a_row: int, total: int, finished: int, last: BackendError) -> BackendError:
        return BackendError(
            f"{self._where()}: {in_a_row} request{'s' if in_a_row != 1 else ''} in a row failed, so the batch was "
            f"stopped "
            f"({finished} of {total} finished; {self.field}.max_consecutive_failures sets the limit); last: {last}"
        )

    def close(self) -> None:
        """Close the worker threads and the HTTP client, then call `on_close` (e.g. stop a managed server)."""
        try:
            if not self._closed:
                self._closed = True
                self._pool.shutdown(cancel_futures=True)
                self._client.close()
                self.progress.close()
        finally:
            if self.on_close is not None:
                callback, self.on_close = self.on_close, None  # at most once
                callback()
