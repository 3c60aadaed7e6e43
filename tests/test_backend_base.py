"""BaseBackend: the checks and usage counting every backend shares."""

from __future__ import annotations

from typing import Sequence

import pytest
from fakes import ScriptedBackend

from cowest.models.base import Backend, BaseBackend, Completion, Conversation, Sampling
from cowest.models.cache import CachedBackend, CallCache


class Recording(BaseBackend):
    """Returns a cache hit and a miss per conversation (n times over); records each `_generate` call."""

    identity = "fake:recording"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def _generate(self, conversations: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        self.calls.append(len(conversations))
        return [[Completion("x", 3, 2, cached=i % 2 == 1) for i in range(n)] for _ in conversations]

    def close(self) -> None:
        pass


CONVS = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]


def _backends(tmp_path) -> list[BaseBackend]:
    cached = CachedBackend(ScriptedBackend(lambda c, i, s: "y"), CallCache(tmp_path / "c.sqlite"))
    return [Recording(), ScriptedBackend(lambda c, i, s: "x"), cached]


def test_rejects_n_below_one_and_empty_batch_is_free(tmp_path):
    for b in _backends(tmp_path):
        assert isinstance(b, Backend)
        for n in (0, -1):
            with pytest.raises(ValueError, match="n must be >= 1"):
                b.generate(CONVS, n)
        assert b.generate([], 3) == []
        assert b.usage.as_dict() == {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0}
        b.close()


def test_usage_counts_each_returned_completion_once(tmp_path):
    rec = Recording()
    out = rec.generate(CONVS, 3)
    assert rec.calls == [2] and [len(r) for r in out] == [3, 3]
    assert rec.usage.as_dict() == {"calls": 4, "cache_hits": 2, "prompt_tokens": 18, "completion_tokens": 12}

    cached = _backends(tmp_path)[2]
    cached.generate(CONVS, 2)
    cached.generate(CONVS, 2)  # all hits now: counted, but not as calls
    assert cached.usage.as_dict() == {"calls": 4, "cache_hits": 4, "prompt_tokens": 80, "completion_tokens": 40}
    assert cached.inner.usage.calls == 4  # the inner backend counts only what it generated
    cached.close()


def test_every_backend_uses_the_shared_generate():
    from cowest.models import HFBackend, OpenAIBackend

    for cls in (HFBackend, OpenAIBackend, CachedBackend, ScriptedBackend):
        assert issubclass(cls, BaseBackend) and cls.generate is BaseBackend.generate
