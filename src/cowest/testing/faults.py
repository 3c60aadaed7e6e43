"""A fault-injecting OpenAI-compatible chat-completions server on 127.0.0.1, for tests and bench/bench_faults.py.

Replies are deterministic: choice i of a request reads "<last user message>|seed=<seed>|i=<i>", so answers can be
compared between a clean and a faulty run. Whether an attempt gets a fault is drawn from a hash of (seed, request,
attempt number), so a run injects the same faults whatever the thread scheduling.

`python -m cowest.testing.faults URL CACHE N CONCURRENCY` runs a cached client for N questions (the kill -9 test).
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Sequence

FAULTS = (
    "429", "429-retry-after", "500", "503", "reset", "hang",
    "invalid-json", "html", "empty-choices", "null-content", "few-choices",
)


class FaultServer:
    """Chat completions that fail at `rate` with one of `faults` (drawn per attempt); records every request.

    `max_in_flight` makes it a rate-limited API: a request arriving while that many are being answered gets a 429
    with `Retry-After: retry_after_s` (recorded in `limited`), as hosted APIs answer a client over its concurrency.
    `script` holds HTTP statuses to answer the next requests with, in arrival order (then 200s; a scripted 429 says
    `Retry-After: 0`), and `slow_first` extra seconds for the next requests (a timeout); `honour_n=False` answers one
    choice whatever `n` asks, as servers that ignore `n` do. `reasoning=True` refuses what OpenAI's reasoning models
    refuse, with OpenAI's 400: `max_tokens` (they take `max_completion_tokens`), and `temperature` or `top_p` other
    than their default 1 (each refusal recorded in `refused`).
    """

    def __init__(self, faults: Sequence[str] = (), rate: float = 0.0, seed: int = 0, delay_s: float = 0.0,
                 max_in_flight: int | None = None, retry_after_s: float = 1.0,
                 answer: str | Callable[[dict, int], str] | None = None, honour_n: bool = True,
                 completion_tokens: int = 5, reasoning: bool = False) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.faults, self.rate, self.seed, self.delay_s = tuple(faults), rate, seed, delay_s
        # every reply's text, or a function of (request body, choice index); None: the request echoed
        self.answer, self.honour_n, self.completion_tokens = answer, honour_n, completion_tokens
        self.reasoning, self.refused = reasoning, []  # the parameters refused, one per refused request
        self.max_in_flight, self.retry_after_s, self.in_flight, self.max_active = max_in_flight, retry_after_s, 0, 0
        self.script: list[int] = []  # statuses for the next requests
        self.slow_first: list[float] = []  # extra delays for the next requests
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, request key) of every attempt
        self.limited: list[tuple[float, str]] = []  # (monotonic time, request key) of every 429 for being busy
        self.requests: list[dict] = []  # every request body, in arrival order
        self.auth: list[str | None] = []  # every request's Authorization header
        self.answered: list[tuple[float, str]] = []  # (monotonic time, request key) of each good reply fully sent
        self.injected: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()  # request key -> attempts seen
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # wakes hung handlers on close
        self._serve(0)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _serve(self, port: int) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.stand_in = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @staticmethod
    def key(body: dict) -> str:
        """What identifies a request across retries: the messages, seed and n."""
        return json.dumps([body.get("messages"), body.get("seed"), body.get("n", 1)], sort_keys=True)

    def draw(self, key: str, attempt: int) -> str | None:
        """The fault this attempt of a request gets, if any (a hash of seed, request and attempt number)."""
        if not self.faults or self.rate <= 0:
            return None
        h = hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        return self.faults[h[8] % len(self.faults)] if u < self.rate else None

    def admit(self, body: dict, auth: str | None) -> tuple[str, str | None, int, float, bool]:
        """Record one attempt: its key, its fault, its scripted status (200: none), its extra delay, and whether it is
        turned away for being over `max_in_flight`; an admitted attempt counts as in flight until `done`."""
        key = self.key(body)
        with self.lock:
            self.requests.append(body)
            self.auth.append(auth)
            self.arrivals.append((time.monotonic(), key))
            self.attempts[key] += 1
            fault = self.draw(key, self.attempts[key])
            if fault:
                self.injected[fault] += 1
            status = self.script.pop(0) if self.script else 200
            extra = self.slow_first.pop(0) if self.slow_first else 0.0
            if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
                self.limited.append((time.monotonic(), key))
                return key, fault, status, extra, True
            self.in_flight += 1
            self.max_active = max(self.max_active, self.in_flight)
        return key, fault, status, extra, False

    def done(self) -> None:
        """One admitted attempt finished."""
        with self.lock:
            self.in_flight -= 1

    def reply(self, body: dict, n: int) -> dict:
        """A well-formed chat-completion body with `n` choices (one when the server ignores `n`)."""
        n = n if self.honour_n else 1
        user, seed = body["messages"][-1]["content"], body.get("seed")
        if callable(self.answer):
            text = [self.answer(body, i) for i in range(n)]
        else:
            text = [self.answer if self.answer is not None else f"{user}|seed={seed}|i={i}" for i in range(n)]
        choices = [{"index": i, "message": {"role": "assistant", "content": text[i]},
                    "finish_reason": "stop"} for i in range(n)]
        done = self.completion_tokens * n
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                "choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": done,
                                              "total_tokens": 10 + done}}

    def refusal(self, body: dict) -> dict | None:
        """OpenAI's 400 error for a parameter a reasoning model does not take (None: none, or not `reasoning`)."""
        if not self.reasoning:
            return None
        if "max_tokens" in body:
            return {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                               "'max_completion_tokens' instead.", "type": "invalid_request_error",
                    "param": "max_tokens", "code": "unsupported_parameter"}
        for name in ("temperature", "top_p"):
            if name in body and body[name] != 1:
                return {"message": f"Unsupported value: '{name}' does not support {body[name]} with this model. Only "
                                   "the default (1) value is supported.", "type": "invalid_request_error",
                        "param": name, "code": "unsupported_value"}
        return None

    def restart(self) -> None:
        """Serve again on the same port after `close` (a stopped backend coming back)."""
        self.stopping.clear()
        self._serve(self.port)

    def close(self) -> None:
        """Wake hung handlers and stop serving."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(message: str, type_: str, **extra: object) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, **extra}}).encode()


class Handler(BaseHTTPRequestHandler):
    """One request to a FaultServer (`self.server.stand_in`)."""

    def log_message(self, *args: object) -> None:  # keep test and bench output clean
        pass

    def send(self, status: int, data: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.finish_attempt()  # before the reply leaves: a client may send its next request as soon as it reads it
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_POST(self) -> None:
        server: FaultServer = self.server.stand_in  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key, fault, status, extra, busy = server.admit(body, self.headers.get("Authorization"))
        self.counted = not busy  # this attempt counts in the server's in_flight until finish_attempt
        if busy:
            self.send(429, _error("too many requests in flight", "rate_limit"),
                      **{"Retry-After": f"{server.retry_after_s:g}"})
            return
        try:
            time.sleep(server.delay_s + extra)
            status = status if self.path == "/v1/chat/completions" else 404
            refusal = server.refusal(body) if status == 200 else None
            if refusal is not None:
                with server.lock:
                    server.refused.append(refusal["param"])
                self.send(400, json.dumps({"error": refusal}).encode())
            elif status != 200:
                headers = {"Retry-After": "0"} if status == 429 else {}
                self.send(status, _error(f"scripted failure {status}", "server_error", code=None), **headers)
            else:
                self.answer(server, body, key, body.get("n", 1), fault)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up and left
            pass
        finally:
            self.finish_attempt()

    def finish_attempt(self) -> None:
        """The admitted attempt is over (counted once, whether it replied, failed or was reset)."""
        if getattr(self, "counted", False):
            self.counted = False
            self.server.stand_in.done()  # type: ignore[attr-defined]

    def answer(self, server: FaultServer, body: dict, key: str, n: int, fault: str | None) -> None:
        if fault in ("429", "429-retry-after", "500", "503"):
            extra = {"Retry-After": "0"} if fault == "429-retry-after" else {}
            self.send(int(fault[:3]), _error(f"injected {fault}", "server_error"), **extra)
        elif fault == "reset":  # RST instead of a reply: SO_LINGER 0, then close
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.finish_attempt()
            self.connection.close()
            self.close_connection = True
        elif fault == "hang":  # accepted, never answered
            server.stopping.wait()
            self.close_connection = True
        elif fault == "invalid-json":
            self.send(200, b'{"choices": [{"index": 0, "message": ')
        elif fault == "html":
            self.send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        else:
            payload = server.reply(body, n)
            if fault == "empty-choices":
                payload["choices"] = []
            elif fault == "null-content":
                payload["choices"][0]["message"]["content"] = None
            elif fault == "few-choices":
                payload["choices"] = payload["choices"][: max(0, n - 1)]
            self.send(200, json.dumps(payload).encode())
            if fault is None:
                with server.lock:
                    server.answered.append((time.monotonic(), key))

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # the socket was reset on purpose
            pass


class FaultServerProcess:
    """A FaultServer (`delay_s`, `answer`) in its own process, so serving it does not share the client's interpreter."""

    def __init__(self, delay_s: float, answer: str | None = None) -> None:
        code = ("import sys\nfrom cowest.testing.faults import FaultServer\n"
                f"s = FaultServer(delay_s={delay_s!r}, answer={answer!r})\nprint(s.url, flush=True)\nsys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(f"the stand-in server process exited with {self.proc.wait(10)}")

    def close(self) -> None:
        """End the process (closing its stdin ends it)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(10)

    def __enter__(self) -> "FaultServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def questions(count: int) -> list[list[dict[str, str]]]:
    """`count` distinct one-message conversations."""
    return [[{"role": "user", "content": f"q{i}"}] for i in range(count)]


def dead_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    from cowest.net import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


def main(argv: Sequence[str]) -> None:
    """Run a cached client for N questions against URL (used by the kill -9 test and bench)."""
    from cowest.config import ModelConfig
    from cowest.models.cache import CachedBackend, CallCache
    from cowest.models.openai_compat import OpenAIBackend

    url, cache, count, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    cfg = ModelConfig(backend="openai", model="fault-model", base_url=url, max_concurrency=concurrency)
    backend = CachedBackend(OpenAIBackend(cfg, api_key="sk-local"), CallCache(cache))
    try:
        backend.generate(questions(count), 1)
    finally:
        backend.close()


if __name__ == "__main__":
    main(sys.argv[1:])
