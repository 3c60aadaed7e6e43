"""OpenAIBackend against a real local HTTP server speaking the chat-completions JSON."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cowest.config import ModelConfig
from cowest.models.base import Backend, BackendError, Sampling
from cowest.models.openai_compat import OpenAIBackend

KEY = "sk-test-secret-4242"


class FakeServer:
    """A chat-completions server; `script` holds status codes to answer first (then 200), per request order."""

    def __init__(self, honour_n: bool = True, delay_s: float = 0.0) -> None:
        self.honour_n = honour_n
        self.delay_s = delay_s
        self.script: list[int] = []
        self.slow_first: list[float] = []  # extra delays for the first requests (timeouts)
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    status = server.script.pop(0) if server.script else 200
                    extra = server.slow_first.pop(0) if server.slow_first else 0.0
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    time.sleep(server.delay_s + extra)
                    if self.path != "/v1/chat/completions":
                        status = 404
                    payload = server.reply(body) if status == 200 else {
                        "error": {"message": f"scripted failure {status}", "type": "server_error", "code": None}
                    }
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass
                finally:
                    with server.lock:
                        server.active -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def reply(self, body: dict) -> dict:
        n = body.get("n", 1) if self.honour_n else 1
        user = body["messages"][-1]["content"]
        seed = body.get("seed")
        choices = [
            {"index": i, "message": {"role": "assistant", "content": f"{user}|seed={seed}|i={i} STOP tail"},
             "finish_reason": "stop"}
            for i in range(n)
        ]
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": choices,
            "usage": {"prompt_tokens": 10, "completion_tokens": 7 * n, "total_tokens": 10 + 7 * n},
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("COWEST_TEST_KEY", KEY)


def _backend(url: str, **kw) -> OpenAIBackend:
    cfg = ModelConfig(backend="openai", model="fake-model", base_url=url, api_key_env="COWEST_TEST_KEY", **kw)
    b = OpenAIBackend(cfg)
    b.retry_initial_s, b.retry_max_s = 0.01, 0.05  # fast tests
    return b


def _conv(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def test_success_usage_and_parameters(server):
    b = _backend(server.url)
    assert isinstance(b, Backend)
    out = b.generate([_conv("q0"), _conv("q1")], 1, Sampling(temperature=0.5, top_p=0.9, max_tokens=33, seed=7,
                                                              stop=("STOP",)))
    assert [r[0].text for r in out] == ["q0|seed=7|i=0 ", "q1|seed=7|i=0 "]  # stop cut client-side too
    assert out[0][0].prompt_tokens == 10 and out[0][0].completion_tokens == 7
    req = server.requests[0]
    assert (req["model"], req["temperature"], req["top_p"], req["max_tokens"], req["seed"], req["stop"]) == (
        "fake-model", 0.5, 0.9, 33, 7, ["STOP"])
    assert "n" not in req
    assert server.auth[0] == f"Bearer {KEY}"
    assert b.usage.as_dict() == {"calls": 2, "cache_hits": 0, "prompt_tokens": 20, "completion_tokens": 14}
    b.close()


def test_retry_on_429_then_success(server):
    server.script = [429, 429]
    b = _backend(server.url, max_retries=3)
    out = b.generate([_conv("q")], 1, Sampling())
    assert out[0][0].text.startswith("q|seed=0")
    assert len(server.requests) == 3
    b.close()


def test_retry_on_timeout(server):
    server.slow_first = [1.0]
    b = _backend(server.url, timeout_s=0.3, max_retries=2)
    assert b.generate([_conv("q")], 1, Sampling())[0][0].text.startswith("q|")
    assert len(server.requests) == 2
    b.close()


def test_500_until_exhausted(server):
    server.script = [500] * 10
    b = _backend(server.url, max_retries=2)
    with pytest.raises(BackendError) as err:
        b.generate([_conv("q")], 1, Sampling())
    msg = str(err.value)
    assert "HTTP 500" in msg and "fake-model" in msg and server.url in msg and "3 attempts" in msg
    assert len(server.requests) == 3
    b.close()


def test_client_error_not_retried(server):
    server.script = [400]
    b = _backend(server.url, max_retries=4)
    with pytest.raises(BackendError, match="HTTP 400"):
        b.generate([_conv("q")], 1, Sampling())
    assert len(server.requests) == 1
    b.close()


def test_one_failure_cancels_the_rest_of_the_batch():
    s = FakeServer(delay_s=0.05)
    s.script = [400]
    try:
        b = _backend(s.url, max_concurrency=1)
        with pytest.raises(BackendError, match="HTTP 400"):
            b.generate([_conv(f"q{i}") for i in range(6)], 1, Sampling())
        time.sleep(0.2)
        assert len(s.requests) <= 2  # the failed one, and at most one a worker took before the cancel
        b.close()
    finally:
        s.close()


def test_unreachable_server_is_a_backend_error():
    b = _backend("http://127.0.0.1:9/v1", max_retries=1)  # port 9 (discard): nothing listens
    with pytest.raises(BackendError, match="APIConnectionError"):
        b.generate([_conv("q")], 1, Sampling())
    b.close()


def test_concurrency_cap():
    s = FakeServer(delay_s=0.15)
    try:
        b = _backend(s.url, max_concurrency=3)
        out = b.generate([_conv(f"q{i}") for i in range(9)], 1, Sampling())
        assert [r[0].text.split("|")[0] for r in out] == [f"q{i}" for i in range(9)]  # order kept
        assert s.max_active == 3
        b.close()
    finally:
        s.close()


def test_n_honoured_one_request_usage_split(server):
    b = _backend(server.url)
    out = b.generate([_conv("q")], 3, Sampling(temperature=1.0, seed=5))
    assert [c.text for c in out[0]] == [f"q|seed=5|i={i} STOP tail" for i in range(3)]
    assert len(server.requests) == 1 and server.requests[0]["n"] == 3
    assert [c.prompt_tokens for c in out[0]] == [4, 3, 3]  # 10 split evenly, sums to the real total
    assert sum(c.completion_tokens for c in out[0]) == 21
    b.close()


def test_n_fallback_when_server_ignores_n():
    s = FakeServer(honour_n=False)
    try:
        b = _backend(s.url)
        out = b.generate([_conv("q")], 3, Sampling(temperature=1.0, seed=5))
        assert [c.text for c in out[0]] == [f"q|seed={s}|i=0 STOP tail" for s in (5, 6, 7)]
        assert len(s.requests) == 3
        # learnt: the next call sends single requests straight away
        out = b.generate([_conv("r")], 2, Sampling(temperature=1.0, seed=0))
        assert [c.text for c in out[0]] == ["r|seed=0|i=0 STOP tail", "r|seed=1|i=0 STOP tail"]
        assert len(s.requests) == 5 and all("n" not in r for r in s.requests[3:])
        b.close()
    finally:
        s.close()


def test_missing_api_key_env(monkeypatch):
    monkeypatch.delenv("COWEST_TEST_KEY")
    with pytest.raises(BackendError, match="COWEST_TEST_KEY"):
        _backend("http://127.0.0.1:9/v1")


def test_key_absent_from_identity_and_error_messages(server):
    b = _backend(server.url, max_retries=0)
    assert KEY not in b.identity and "fake-model" in b.identity
    assert all(KEY not in repr(v) for v in vars(b).values())
    server.script = [401]
    with pytest.raises(BackendError) as err:
        b.generate([_conv("q")], 1, Sampling())
    assert KEY not in str(err.value) and "COWEST_TEST_KEY" in str(err.value)
    b.close()


def test_generate_inside_running_event_loop(server):
    b = _backend(server.url)

    async def caller() -> str:
        return b.generate([_conv("q")], 1, Sampling())[0][0].text

    assert asyncio.run(caller()).startswith("q|")
    b.close()


def test_close_calls_on_close_once(server):
    calls = []
    cfg = ModelConfig(backend="openai", model="m", base_url=server.url)
    b = OpenAIBackend(cfg, api_key="explicit", on_close=lambda: calls.append(1))
    b.generate([_conv("q")], 1, Sampling())
    assert server.auth[-1] == "Bearer explicit"
    b.close()
    b.close()
    assert calls == [1]
    with pytest.raises(BackendError, match="closed"):
        b.generate([_conv("q")], 1, Sampling())
