"""OpenAIBackend against a real local HTTP server speaking the chat-completions JSON."""

from __future__ import annotations

import asyncio
import time

import pytest

from cowest.config import ModelConfig
from cowest.errors import CowestError
from cowest.models.base import Backend, BackendError, Sampling
from cowest.models.openai_compat import OpenAIBackend
from cowest.testing.faults import FaultServer

KEY = "sk-test-secret-4242"


def stand_in(honour_n: bool = True, delay_s: float = 0.0) -> FaultServer:
    """The stand-in chat server without faults: each choice echoes the question, seed and index, then ' STOP tail'."""
    return FaultServer(delay_s=delay_s, honour_n=honour_n, completion_tokens=7, answer=lambda body, i: (
        f"{body['messages'][-1]['content']}|seed={body.get('seed')}|i={i} STOP tail"))


@pytest.fixture
def server():
    s = stand_in()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("COWEST_TEST_KEY", KEY)


def _backend(url: str, **kw) -> OpenAIBackend:
    fast = dict(retry_initial_s=0.01, retry_max_s=0.05)  # fast tests
    cfg = ModelConfig(backend="openai", model="fake-model", base_url=url, api_key_env="COWEST_TEST_KEY",
                      **{**fast, **kw})
    return OpenAIBackend(cfg)


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
    s = stand_in(delay_s=0.05)
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


def test_a_refused_connection_is_one_line_naming_the_field():
    # port 9 (discard): nothing listens. A dozen questions, yet one failed request (3 attempts) ends the batch.
    cfg = ModelConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=20,
                      connect_retries=2, retry_initial_s=0.01, max_concurrency=1)
    b = OpenAIBackend(cfg, api_key=KEY, field="strong")
    with pytest.raises(BackendError) as err:
        b.generate([_conv(f"q{i}") for i in range(12)], 1, Sampling())
    b.close()
    assert isinstance(err.value, CowestError) and "\n" not in str(err.value)
    assert str(err.value).startswith("strong.base_url: http://127.0.0.1:9/v1 refused the connection after 3 attempts")


def test_concurrency_cap():
    s = stand_in(delay_s=0.15)
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
    s = stand_in(honour_n=False)
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
    cfg = ModelConfig(backend="openai", model="m", api_key_env="COWEST_TEST_KEY")
    with pytest.raises(BackendError, match=r"^judge\.api_key_env: environment variable COWEST_TEST_KEY is not set"):
        OpenAIBackend(cfg, field="judge")


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


def test_a_reasoning_model_s_refusals_are_learnt_once_and_kept_for_the_run(caplog):
    """OpenAI's reasoning models refuse max_tokens and temperature other than 1 with a 400 naming the parameter: the
    backend sends max_completion_tokens and leaves temperature out from then on, and a backend opened again on the
    same endpoint (as a run does around training) does not ask again."""
    with FaultServer(reasoning=True) as s:
        b = _backend(s.url, max_concurrency=1)
        out = b.generate([_conv("q0"), _conv("q1")], 1, Sampling(temperature=0.0, max_tokens=33, seed=7))
        assert [r[0].text for r in out] == ["q0|seed=7|i=0", "q1|seed=7|i=0"]
        assert s.refused == ["max_tokens", "temperature"]  # one 400 each, then every request taken
        taken = s.requests[2:]
        assert all(r["max_completion_tokens"] == 33 and "max_tokens" not in r and "temperature" not in r
                   and r["top_p"] == 1.0 for r in taken)
        b.close()
        again = _backend(s.url)
        again.generate([_conv("q2")], 1, Sampling(temperature=0.7, max_tokens=5))
        assert s.refused == ["max_tokens", "temperature"] and s.requests[-1]["max_completion_tokens"] == 5
        again.close()
    refusals = [r.getMessage() for r in caplog.records if "refuses" in r.getMessage()]
    assert len(refusals) == 2 and "max_completion_tokens" in refusals[0] and "model's default" in refusals[1]


def test_a_refusal_of_what_cannot_be_left_out_is_an_error():
    """A 400 that names no parameter to rename or leave out is not retried: it fails with the server's words."""
    with FaultServer() as s:
        s.script = [400]
        b = _backend(s.url)
        with pytest.raises(BackendError, match="HTTP 400"):
            b.generate([_conv("q")], 1)
        assert len(s.requests) == 1
        b.close()


def test_openai_base_url_is_the_endpoint_when_the_recipe_names_none(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert ModelConfig(backend="openai", model="m").endpoint() == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.internal:4000/v1")
    assert ModelConfig(backend="openai", model="m").endpoint() == "http://gateway.internal:4000/v1"
    assert ModelConfig(backend="openai", model="m", base_url="http://vllm:8000/v1").endpoint() == "http://vllm:8000/v1"
    monkeypatch.setenv("COWEST_TEST_KEY", KEY)
    b = OpenAIBackend(ModelConfig(backend="openai", model="m", api_key_env="COWEST_TEST_KEY"))
    assert b.base_url == "http://gateway.internal:4000/v1" and b.identity == "openai:m@http://gateway.internal:4000/v1"
    b.close()


def test_progress_counts_every_call_across_batches():
    s = stand_in()
    try:
        b = _backend(s.url, max_concurrency=3)
        for i in range(4):  # overlapped stages send one question's calls at a time
            b.generate([_conv(f"q{i}")], 1, Sampling())
        b.generate([_conv(f"r{i}") for i in range(5)], 1, Sampling())
        assert (b.progress.n_sent, b.progress.n_done) == (9, 9)
        b.close()
    finally:
        s.close()
