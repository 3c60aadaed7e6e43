"""OpenAIBackend and CachedBackend against the fault-injecting stand-in: answers, bounds, durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydantic
import pytest

import cowest
from cowest.config import ModelConfig
from cowest.models.base import BackendError, Completion, Sampling
from cowest.models.cache import CachedBackend, CallCache
from cowest.models.openai_compat import OpenAIBackend
from cowest.testing.faults import FAULTS, FaultServer, dead_url, questions

SAMPLING = Sampling(temperature=1.0, seed=3)


def _backend(url: str, **kw) -> OpenAIBackend:
    fast = dict(retry_initial_s=0.01, retry_max_s=0.05)  # fast tests
    cfg = ModelConfig(backend="openai", model="fault-model", base_url=url, **{**fast, **kw})
    return OpenAIBackend(cfg, api_key="sk-local")


def _texts(out) -> list[list[str]]:
    return [[c.text for c in row] for row in out]


def _clean(count: int, n: int) -> list[list[str]]:
    with FaultServer() as s:
        b = _backend(s.url)
        try:
            return _texts(b.generate(questions(count), n, SAMPLING))
        finally:
            b.close()


@pytest.mark.parametrize("n", [1, 3])
def test_answers_under_every_fault_match_a_clean_run(n):
    clean = _clean(12, n)
    for fault in FAULTS:
        with FaultServer([fault], rate=0.3, seed=1) as s:
            b = _backend(s.url, timeout_s=0.3, max_retries=8, max_concurrency=4)
            try:
                assert _texts(b.generate(questions(12), n, SAMPLING)) == clean, fault
            finally:
                b.close()
            assert s.injected[fault] > 0, fault
            assert max(s.attempts.values()) <= 9, fault  # max_retries + 1
            assert all("n" in r for r in s.requests) == (n > 1), fault  # never fell back to one request per sample


def test_a_failed_request_keeps_every_finished_one_and_nothing_malformed_is_cached(tmp_path):
    with FaultServer(["html", "null-content", "empty-choices"], rate=0.3, seed=2) as s:
        backend = CachedBackend(_backend(s.url, max_retries=0, max_consecutive_failures=100),
                                CallCache(tmp_path / "c.sqlite"))
        with pytest.raises(BackendError, match=r"requests failed \(the other \d+ finished\)") as err:
            backend.generate(questions(30), 1, SAMPLING)
        failed = sum(s.injected.values())
        assert 0 < failed < 30 and f"{failed} of 30 requests failed" in str(err.value)
        assert len(backend.cache) == 30 - failed
        s.rate = 0.0
        before = len(s.requests)
        out = backend.generate(questions(30), 1, SAMPLING)
        assert len(s.requests) - before == failed  # only the failed ones are asked again
        assert _texts(out) == _clean(30, 1)
        backend.close()


def test_empty_text_is_never_cached(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([("k1", "id", Completion("")), ("k2", "id", Completion("yes"))])
        assert len(cache) == 1 and set(cache.get_many(["k1", "k2"])) == {"k2"}


def _fails(b: OpenAIBackend, count: int, match: str) -> str:
    """Run a batch of `count` that must fail with `match`; its message. How long it takes is measured in
    bench/bench_faults.py, not asserted: the request counts below bound it."""
    try:
        with pytest.raises(BackendError, match=match) as err:
            b.generate(questions(count), 1, SAMPLING)
        return str(err.value)
    finally:
        b.close()


def test_dead_server_stops_the_batch_at_the_first_refused_request():
    # nothing listens: retrying 429s and 5xx (max_retries) does not apply, connect_retries does
    msg = _fails(_backend(dead_url(), max_retries=30, connect_retries=1, max_concurrency=4), 200, "refused")
    assert msg.startswith("model.base_url: ") and "after 2 attempts" in msg  # it takes well under a second


def test_hung_server_stops_the_batch_after_a_bounded_number_of_attempts():
    with FaultServer(["hang"], rate=1.0) as s:
        # two waves of 3 attempts x 0.3 s; without the breaker it would be 100 x 3 x 0.3 / 4 = 22 s
        _fails(_backend(s.url, timeout_s=0.3, max_retries=2, max_concurrency=4), 100, "in a row failed")
        # The breaker trips after 5 failed requests; those in flight then (up to one wave of 4 more, and one more
        # started in the race with the trip under load) finish their 3 attempts: far from the 300 of all requests.
        assert len(s.requests) <= (5 + 2 * 4) * 3


def test_deadline_bounds_all_attempts_of_one_request():
    with FaultServer(["hang"], rate=1.0) as s:
        # about 1 s, not 51 x 0.4 s
        _fails(_backend(s.url, timeout_s=0.4, max_retries=50, deadline_s=1.0), 1, "APITimeoutError")
        assert len(s.requests) <= 4


def test_a_rate_limited_api_gets_every_call_answered_and_its_retry_after_honoured():
    """A client over the API's concurrency gets 429 + Retry-After; each such call waits at least that long."""
    with FaultServer(delay_s=0.1, max_in_flight=2, retry_after_s=0.3) as s:
        b = _backend(s.url, max_concurrency=6, max_retries=10, retry_max_s=2.0)
        try:
            out = b.generate(questions(12), 1, SAMPLING)
        finally:
            b.close()
    assert _texts(out) == _clean(12, 1)
    assert s.limited, "the client never went over the limit: the test does not test it"
    for t, key in s.limited:
        retry = min(a for a, k in s.arrivals if k == key and a > t)
        assert retry - t >= 0.3
    assert s.in_flight == 0


def test_stand_in_listens_on_loopback_only():
    with FaultServer() as s:
        assert s.httpd.server_address[0] == "127.0.0.1" and s.url.startswith("http://127.0.0.1:")
    assert dead_url().startswith("http://127.0.0.1:")


@pytest.mark.slow  # a client process killed mid-batch, then resumed
def test_kill_9_repeats_no_finished_call(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(cowest.__file__).parents[1]))
    with FaultServer(delay_s=0.05) as s:
        cmd = [sys.executable, "-m", "cowest.testing.faults", s.url, str(tmp_path / "c.sqlite"), "60", "2"]
        proc = subprocess.Popen(cmd, env=env)
        try:
            deadline = time.monotonic() + 60
            while len(s.answered) < 15 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
        finally:
            proc.wait()
        before = {k for t, k in s.answered if t < killed_at}
        seen = len(s.requests)
        subprocess.run(cmd, env=env, check=True, timeout=120)
        again = {s.key(r) for r in s.requests[seen:]}
        assert len(before) >= 15 and len(again) < 60  # requests in flight at the kill are asked again: not finished
        # goal 0; a reply the client read but had not committed at the kill can come back (at most one per worker)
        assert len(before & again) <= 2
        assert len(CallCache(tmp_path / "c.sqlite")) == 60


@pytest.mark.parametrize("knob,value", [
    ("timeout_s", 0), ("deadline_s", -1), ("max_retries", -1), ("max_concurrency", 0),
    ("max_consecutive_failures", 0), ("n_ctx", 0), ("n_parallel", 0), ("batch_size", 0), ("n_threads", 0),
])
def test_model_config_range_checks(knob, value):
    with pytest.raises(pydantic.ValidationError, match=knob):
        ModelConfig(backend="openai", model="m", **{knob: value})


def test_call_policy_knobs_round_trip_and_change_no_stage_key():
    from cowest.config import Recipe
    from cowest.ledger import declared_inputs

    set_ = ModelConfig(backend="openai", model="m", deadline_s=30, max_consecutive_failures=2)
    assert ModelConfig(**set_.model_dump(mode="json")) == set_
    base = {"task": {"name": "formulary"}, "weak": {"backend": "hf", "model": "w"}}
    a = Recipe.model_validate({**base, "strong": {"backend": "openai", "model": "m"}})
    b = Recipe.model_validate({**base, "strong": set_.model_dump(mode="json")})
    assert declared_inputs(a, "mine") == declared_inputs(b, "mine")  # how calls are made, not what they return