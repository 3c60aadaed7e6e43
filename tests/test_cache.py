"""CallCache and CachedBackend: hits, partial n, seeds, concurrent writers, corrupt files, build_backend."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sqlite3
import time
from pathlib import Path
from typing import Sequence

import pytest

from cowest.config import ModelConfig
from cowest.models import build_backend
from cowest.models.base import Backend, Completion, Conversation, Sampling, Usage
from cowest.models.cache import CachedBackend, CacheError, CallCache, cache_key


class FakeBackend:
    """Deterministic backend: sample j of a call with seed s reads "<question>/s+j"; records every call."""

    def __init__(self, identity: str = "fake:model") -> None:
        self.identity = identity
        self.usage = Usage()
        self.calls: list[tuple[list[str], int, int]] = []  # (questions, n, seed)
        self.closed = False

    def generate(self, conversations: Sequence[Conversation], n: int = 1, sampling: Sampling = Sampling()):
        qs = [c[-1]["content"] for c in conversations]
        self.calls.append((qs, n, sampling.seed))
        return [[Completion(f"{q}/{sampling.seed + j}", 5, 3, "stop") for j in range(n)] for q in qs]

    def close(self) -> None:
        self.closed = True


def _convs(*qs: str) -> list[Conversation]:
    return [[{"role": "user", "content": q}] for q in qs]


SAMPLING = Sampling(temperature=0.8, top_p=0.95, max_tokens=32, seed=10)


def test_repeat_call_costs_zero_inner_calls(tmp_path):
    fake = FakeBackend()
    backend = CachedBackend(fake, CallCache(tmp_path / "cache.sqlite"))
    assert isinstance(backend, Backend)
    first = backend.generate(_convs("a", "b", "c"), 2, SAMPLING)
    assert len(fake.calls) == 1 and not any(c.cached for r in first for c in r)
    again = backend.generate(_convs("a", "b", "c"), 2, SAMPLING)
    assert len(fake.calls) == 1
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in first]
    assert all(c.cached and c.prompt_tokens == 5 and c.completion_tokens == 3 for r in again for c in r)
    assert backend.usage.as_dict() == {"calls": 6, "cache_hits": 6, "prompt_tokens": 60, "completion_tokens": 36}
    backend.close()
    assert fake.closed

    # a new process (new cache object) re-running the same requests: still zero calls
    fake2 = FakeBackend()
    again2 = CachedBackend(fake2, CallCache(tmp_path / "cache.sqlite")).generate(_convs("a", "b", "c"), 2, SAMPLING)
    assert fake2.calls == [] and [[c.text for c in r] for r in again2] == [[c.text for c in r] for r in first]


def test_only_misses_reach_inner_in_one_call(tmp_path):
    fake = FakeBackend()
    backend = CachedBackend(fake, CallCache(tmp_path / "c.sqlite"))
    backend.generate(_convs("a", "c"), 1, SAMPLING)
    out = backend.generate(_convs("a", "b", "c", "d"), 1, SAMPLING)
    assert fake.calls[1] == (["b", "d"], 1, 10)
    assert [r[0].cached for r in out] == [True, False, True, False]
    assert [r[0].text for r in out] == ["a/10", "b/10", "c/10", "d/10"]


def test_partial_n_asks_only_for_missing_samples_with_shifted_seed(tmp_path):
    fake = FakeBackend()
    backend = CachedBackend(fake, CallCache(tmp_path / "c.sqlite"))
    two = backend.generate(_convs("a", "b"), 2, SAMPLING)
    four = backend.generate(_convs("a", "b"), 4, SAMPLING)
    assert fake.calls == [(["a", "b"], 2, 10), (["a", "b"], 2, 12)]
    # index i is the draw "seed + i" whichever way it was reached
    assert [c.text for c in four[0]] == ["a/10", "a/11", "a/12", "a/13"]
    assert [c.cached for c in four[1]] == [True, True, False, False]
    assert [c.text for c in four[0][:2]] == [c.text for c in two[0]]
    # different cached depths: one inner call per group, each from its own first missing index
    backend.generate(_convs("c"), 1, SAMPLING)
    out = backend.generate(_convs("a", "c", "e"), 3, SAMPLING)
    assert sorted(fake.calls[3:]) == [(["c"], 2, 11), (["e"], 3, 10)]
    assert [[c.text for c in r] for r in out] == [["a/10", "a/11", "a/12"], ["c/10", "c/11", "c/12"],
                                                   ["e/10", "e/11", "e/12"]]


def test_identity_or_sampling_change_misses(tmp_path):
    fake = FakeBackend("fake:model|adapter:aaaa")
    backend = CachedBackend(fake, CallCache(tmp_path / "c.sqlite"))
    backend.generate(_convs("a"), 1, SAMPLING)
    fake.identity = "fake:model|adapter:bbbb"  # a retrained adapter
    backend.generate(_convs("a"), 1, SAMPLING)
    backend.generate(_convs("a"), 1, Sampling(temperature=0.8, top_p=0.95, max_tokens=33, seed=10))
    assert len(fake.calls) == 3
    backend.generate(_convs("a"), 1, SAMPLING)
    assert len(fake.calls) == 3


def test_cache_key_covers_every_part():
    conv = _convs("a")[0]
    base = cache_key("id", conv, SAMPLING, 0)
    assert base == cache_key("id", [dict(conv[0])], Sampling(**vars(SAMPLING)), 0)
    others = {
        cache_key("id2", conv, SAMPLING, 0),
        cache_key("id", _convs("b")[0], SAMPLING, 0),
        cache_key("id", [{"role": "system", "content": "a"}], SAMPLING, 0),
        cache_key("id", conv, Sampling(temperature=0.8, top_p=0.95, max_tokens=32, seed=11), 0),
        cache_key("id", conv, Sampling(temperature=0.8, top_p=0.95, max_tokens=32, seed=10, stop=("x",)), 0),
        cache_key("id", conv, SAMPLING, 1),
    }
    assert base not in others and len(others) == 6


def _writer(path: str, worker: int, n: int) -> None:
    cache = CallCache(path)
    for i in range(n):
        # half the keys are shared by both workers: contended writes of the same rows
        key = f"shared-{i}" if i % 2 else f"w{worker}-{i}"
        cache.put_many([(key, "id", Completion(f"{worker}:{i}", 1, 1, "stop"))])
        assert key in cache.get_many([key])
    cache.close()


def test_concurrent_writers_from_two_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")  # no fork: the parent may hold torch threads
    procs = [ctx.Process(target=_writer, args=(str(path), w, 60)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with CallCache(path) as cache:
        assert len(cache) == 30 + 30 + 30  # two private halves and one shared half


def _opener(folder: str, barrier, files: int) -> None:
    for i in range(files):
        barrier.wait(timeout=60)  # both processes open the same new file at once, as the processes of a launch do
        CallCache(Path(folder) / f"{i}.sqlite").close()


def test_processes_opening_a_new_cache_at_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_opener, args=(str(tmp_path), barrier, 30)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(CacheError) as err:
        CallCache(path)
    msg = str(err.value)
    assert str(path) in msg and "delete" in msg


def test_an_emptied_cache_file_is_named_in_a_warning(tmp_path, caplog):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="cowest.models.cache"):
        CallCache(path).close()  # just made: another process may be creating it, so no word
        assert not caplog.records
        path.write_bytes(b"")
        os.utime(path, (time.time() - 60, time.time() - 60))
        CallCache(path).close()
    assert len(caplog.records) == 1 and f"{path}: the call cache file is empty" in caplog.records[0].getMessage()


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "cache.sqlite"
    CallCache(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(CacheError, match="schema version 99"):
        CallCache(path)


def test_forwards_other_attributes(tmp_path):
    fake = FakeBackend()
    fake.logprobs_of_options = lambda convs, options: [[0.0] * len(options) for _ in convs]
    backend = CachedBackend(fake, CallCache(tmp_path / "c.sqlite"))
    assert backend.logprobs_of_options(_convs("a"), ["A", "B"]) == [[0.0, 0.0]]
    assert backend.identity == "fake:model"


def test_build_backend_wraps_in_cache_unless_off(tmp_path, monkeypatch):
    monkeypatch.setenv("COWEST_TEST_KEY", "k")
    cfg = dict(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="COWEST_TEST_KEY")
    off = build_backend(ModelConfig(**cfg, cache="off"), cache_path=tmp_path / "run.sqlite")
    assert type(off).__name__ == "OpenAIBackend"
    off.close()
    cached = build_backend(ModelConfig(**cfg), cache_path=tmp_path / "run.sqlite")
    assert isinstance(cached, CachedBackend) and cached.cache.path == tmp_path / "run.sqlite"
    cached.close()
    own = build_backend(ModelConfig(**cfg, cache=str(tmp_path / "own.sqlite")), cache_path=tmp_path / "run.sqlite")
    assert isinstance(own, CachedBackend) and own.cache.path == Path(tmp_path / "own.sqlite")
    own.close()
    plain = build_backend(ModelConfig(**cfg))  # no cache configured anywhere
    assert not isinstance(plain, CachedBackend)
    plain.close()


def test_identical_requests_in_one_batch_are_generated_once(tmp_path):
    from fakes import ScriptedBackend

    from cowest.models import CachedBackend, CallCache
    from cowest.models.base import Sampling

    counter = iter(range(100))
    inner = ScriptedBackend(lambda conv, i, s: f"answer {next(counter)}")
    backend = CachedBackend(inner, CallCache(tmp_path / "c.sqlite"))
    a, b = [{"role": "user", "content": "same"}], [{"role": "user", "content": "other"}]
    out = backend.generate([a, b, a], n=2, sampling=Sampling(temperature=0.7))
    assert [c.text for c in out[0]] == [c.text for c in out[2]]
    assert len(inner.requests) == 2 and backend.usage.calls == 4 and backend.usage.cache_hits == 2
