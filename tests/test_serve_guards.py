"""`cowest serve`'s guards on a real uvicorn server over scripted models: JSON bodies only, the Host it answers to,
/health without a key, bounded fields (no request reaches a 500), per-key rates, and what is cached."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fakes import ScriptedBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve import KEY, QUESTION, Served, ask, body, make_service, strong_script

from cowest.models.base import Sampling
from cowest.models.cache import CachedBackend, CallCache, read_only
from cowest.serve import Limits
from cowest.serve.guards import LOOPBACK_NAMES, RateLimiter, allowed_hosts
from cowest.serve.protocol import APIError
from cowest.testing.serving import post


def raw(server: Served, data: bytes, headers: dict[str, str], path: str = "/v1/chat/completions") -> tuple[int, dict]:
    """A POST with exactly these headers (urllib adds Host unless given): status and JSON body."""
    return post(f"{server.url}{path}", data, headers)[:2]


@pytest.fixture
def open_server():
    """A keyless server, as `cowest serve` runs on loopback by default."""
    s = Served(make_service(), keys=None)
    yield s
    s.close()


def test_a_text_plain_post_is_refused_with_415(open_server):
    """A web page may send a 'simple' text/plain POST to loopback without a preflight: it must not be served."""
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        status, err = raw(open_server, body(), {"Content-Type": ctype} if ctype else {})
        assert status == 415 and err["error"]["code"] == "unsupported_media_type", ctype
    status, ok = raw(open_server, body(), {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and ok["choices"][0]["message"]["content"].endswith("B")


def test_a_forged_host_is_refused(open_server):
    """DNS rebinding: a page whose own name now points at 127.0.0.1 sends its own name as Host."""
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", ""):
        status, err = raw(open_server, body(), {"Content-Type": "application/json", "Host": host})
        assert status == 400 and err["error"]["code"] == "invalid_host", host
    assert open_server.get("/health", key=None)[0] == 200  # urllib's Host: 127.0.0.1:PORT
    for host in ("localhost:1234", "[::1]:8000", "127.0.0.1"):
        assert raw(open_server, body(), {"Content-Type": "application/json", "Host": host})[0] == 200, host


def test_allowed_hosts_follow_the_served_address():
    assert allowed_hosts("127.0.0.1") == LOOPBACK_NAMES
    assert allowed_hosts("10.1.2.3") == LOOPBACK_NAMES | {"10.1.2.3"}
    assert allowed_hosts("127.0.0.1", ["cowest.internal:8000", "Api.Example.", ""]) == LOOPBACK_NAMES | {
        "cowest.internal", "api.example"}
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None  # every interface: keys guard it
    assert allowed_hosts("0.0.0.0", ["api.example"]) == LOOPBACK_NAMES | {"api.example"}
    assert allowed_hosts("127.0.0.1", ["*"]) is None


def test_health_tells_only_that_it_is_alive_without_a_key(served, open_server):
    assert json.loads(served.get("/health", key=None)[1]) == {"status": "ok"}
    assert json.loads(served.get("/health", key="sk-wrong")[1]) == {"status": "ok"}
    full = json.loads(served.get("/health")[1])
    assert full["models"][0] == "cowest" and full["in_flight"] == 0
    assert json.loads(open_server.get("/health", key=None)[1]) == {"status": "ok"}


@pytest.fixture
def served():
    s = Served(make_service())
    yield s
    s.close()


def test_options_seeds_and_stops_are_bounded(served):
    for extra, param in (({"options": [f"o{i}" for i in range(27)]}, "options"), ({"options": []}, "options"),
                         ({"options": ["a", ""]}, "options.1"), ({"seed": 2**31}, "seed"), ({"seed": -1}, "seed"),
                         ({"seed": 10**30}, "seed"), ({"stop": ["a"] * 5}, "stop"), ({"stop": ""}, "stop"),
                         ({"model": "m" * 300}, "model")):
        status, err, _ = served.post("/v1/chat/completions", body(**extra))
        assert status == 400 and err["error"]["param"] == param, extra
    letters = [f"option {i}" for i in range(26)]
    status, ok, _ = served.post("/v1/chat/completions", body(model="strong", options=letters, seed=2**31 - 1))
    assert status == 200 and ok["choices"][0]["message"]["content"]


def test_each_key_has_its_own_rate_and_is_told_when_to_come_back():
    s = Served(make_service(limits=Limits(batch_window_s=0.0, rate_per_min=3)), keys=[KEY, "sk-other"])
    try:
        for _ in range(3):
            assert s.post("/v1/chat/completions", body())[0] == 200
        status, err, headers = s.post("/v1/chat/completions", body())
        assert status == 429 and err["error"]["code"] == "rate_limited" and 1 <= int(headers["retry-after"]) <= 60
        other = s.post("/v1/chat/completions", body(), headers={"Authorization": "Bearer sk-other"})
        assert other[0] == 200  # another key's budget is its own
    finally:
        s.close()


def test_the_rate_window_slides():
    now = [0.0]
    limit = RateLimiter(2, clock=lambda: now[0])
    limit("k")
    now[0] = 30.0
    limit("k")
    with pytest.raises(APIError) as e:
        limit("k")
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "30"
    now[0] = 60.5  # the first request left the window
    limit("k")
    RateLimiter(0)("k")  # 0: no limit


def seeded_script(conv, i, sampling: Sampling) -> str:
    return f"Final answer: B (seed {sampling.seed})"


def test_sampled_answers_without_a_seed_are_fresh_draws_and_never_cached(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    strong = CachedBackend(ScriptedBackend(seeded_script, name="strong"), cache)
    s = Served(make_service(strong=strong))
    try:
        c = s.client()
        drawn = {ask(c, "strong", temperature=0.8).choices[0].message.content for _ in range(4)}
        assert len(drawn) == 4 and len(cache) == 0  # four draws, nothing kept
        seeded = [ask(c, "strong", temperature=0.8, seed=7).choices[0].message.content for _ in range(2)]
        assert seeded[0] == seeded[1] == "Final answer: B (seed 7)" and len(cache) == 1
        assert ask(c, "strong").choices[0].message.content == "Final answer: B (seed 0)"  # greedy: seed 0
    finally:
        s.close()
        strong.close()


def test_a_served_run_reads_its_cache_and_adds_nothing(tmp_path):
    with CallCache(tmp_path / "c.sqlite") as cache:
        inner = ScriptedBackend(strong_script, name="strong")
        conv = [{"role": "user", "content": "known"}]
        CachedBackend(inner, cache).generate([conv])  # what the run itself asked
        served = read_only(CachedBackend(inner, cache))
        assert served.generate([conv])[0][0].cached
        served.generate([[{"role": "user", "content": "a client's question"}]])
        assert len(cache) == 1


# ---- no client input reaches a 500

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(),
                    st.text(max_size=20))
ANY = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                   max_leaves=8)
PART = st.fixed_dictionaries({}, optional={"type": st.one_of(st.sampled_from(["text", "image_url"]), ANY),
                                           "text": st.one_of(st.text(max_size=200), ANY)})
USER = st.fixed_dictionaries({"role": st.just("user"), "content": st.one_of(st.just(QUESTION), st.text(max_size=300))})
MESSAGE = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["user", "system", "assistant", "developer", "tool"]), ANY)},
    optional={"content": st.one_of(st.just(QUESTION), st.text(max_size=300), st.lists(PART, max_size=3), ANY),
              "name": ANY})


# each field: (values it may take, values at and past its edges)
FIELDS = {
    "model": (st.sampled_from(["cowest", "refine", "strong", "weak", "default"]), st.text(max_size=300)),
    "messages": (st.lists(MESSAGE, max_size=3).map(lambda ms: [*ms, {"role": "user", "content": "Q?"}]),
                 st.lists(MESSAGE, max_size=4)),
    "options": (st.lists(st.text(min_size=1, max_size=10), min_size=2, max_size=6),
                st.lists(st.sampled_from(["", "x", "yes"]), min_size=22, max_size=30)),  # around A..Z
    "max_tokens": (st.integers(1, 64), st.integers(-5, 5000)),
    "max_completion_tokens": (st.integers(1, 64), st.integers(-5, 5000)),
    "temperature": (st.floats(0, 2), st.floats()), "top_p": (st.floats(0.01, 1), st.floats()),
    "n": (st.integers(1, 4), st.integers(-2, 8)), "seed": (st.integers(0, 2**31 - 1), st.integers()),
    "stop": (st.lists(st.text(min_size=1, max_size=5), max_size=4), st.lists(st.text(max_size=5), max_size=6)),
    "stream": (st.booleans(), st.integers()),
    "stream_options": (st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
                       st.dictionaries(st.text(max_size=8), ANY)),
}
VALID = {k: v for k, (v, _) in FIELDS.items()}
ASKING = {"model": st.sampled_from(["cowest", "strong", "weak"]), "messages": st.lists(USER, min_size=1, max_size=2)}


def one_edge(name: str) -> st.SearchStrategy:
    """A question to a served model whose field `name` is at or past its edge (or anything), the others valid."""
    edge = st.one_of(FIELDS[name][1], ANY)
    others = {k: v for k, v in VALID.items() if k not in (name, *ASKING)}
    return st.fixed_dictionaries({**ASKING, name: edge}, optional=others)


# one field at its edge at a time (the others valid, so that it is read), any mix of fields, any JSON at all
BODY = st.one_of(*(one_edge(k) for k in FIELDS),
                 st.fixed_dictionaries({}, optional={k: st.one_of(v, e, ANY) for k, (v, e) in FIELDS.items()}), ANY)


@pytest.fixture(scope="module")
def fuzzed():
    s = Served(make_service(limits=Limits(batch_window_s=0.0, max_prompt_chars=400, max_tokens=64, rate_per_min=0)))
    yield s
    s.close()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=BODY)
def test_no_request_body_gets_a_500(fuzzed, data):
    h = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    req = urllib.request.Request(f"{fuzzed.url}/v1/chat/completions", json.dumps(data).encode(), h)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            assert r.status == 200 and r.read()  # JSON, or server-sent events
    except urllib.error.HTTPError as e:
        err = json.loads(e.read())
        assert e.code in (400, 404), (e.code, err)
        assert set(err["error"]) == {"message", "type", "param", "code"}
