"""Overlapping weak drafting with strong calls: same results as the sequential order, requests sent while drafting."""

import threading
import time

import pytest
from fakes import ScriptedBackend

from cowest.collab import Collaborator, Prompter, RuleEvaluator, mine
from cowest.config import CollabConfig, EvalConfig, MiningConfig
from cowest.evaluate import evaluate
from cowest.systems import get_systems
from cowest.models.base import BackendError, Sampling
from cowest.models.cache import CachedBackend, CallCache
from cowest.tasks.base import Example
from cowest.tasks.types import MultipleChoice

EXAMPLES = [Example(id=f"q{i}", question=f"Question {i}?", options=["yes", "no", "maybe"], gold="A") for i in range(8)]


def weak_script(conv, i, sampling):
    return f"Background: fact {i}.\nAnswer: {'ABC'[i % 3]}"


def strong_script(conv, i, sampling):
    text = conv[-1]["content"]
    if "fact 0" in text:
        return "Final answer: A"
    return "Final answer: B" if "Draft" in text else "Final answer: C"


class StreamingWeak(ScriptedBackend):
    """Scripted drafts reported one conversation at a time, `pause` seconds apart, each finish time recorded."""

    streams_results = True

    def __init__(self, script, pause=0.0):
        super().__init__(script, "weak")
        self.pause, self.done_at = pause, []

    def _generate(self, conversations, n, sampling, on_done=None):
        out = []
        for i, conv in enumerate(conversations):
            time.sleep(self.pause)
            comps = super()._generate([conv], n, sampling)[0]
            out.append(comps)
            self.done_at.append(time.monotonic())
            if on_done is not None:
                on_done(i, comps)
        return out


class TimedStrong(ScriptedBackend):
    """Scripted answers after `delay` seconds, each request's arrival time and thread recorded."""

    def __init__(self, script, delay=0.0, fail_on=None):
        super().__init__(script, "strong")
        self.delay, self.fail_on, self.arrivals = delay, fail_on, []
        self.lock = threading.Lock()

    def _generate(self, conversations, n, sampling):
        with self.lock:
            self.arrivals += [(time.monotonic(), c[-1]["content"]) for c in conversations]
        if self.fail_on and any(self.fail_on in c[-1]["content"] for c in conversations):
            raise BackendError("strong model down")
        time.sleep(self.delay)
        with self.lock:
            return super()._generate(conversations, n, sampling)


def _mine(overlap, weak=None, strong=None):
    prompter = Prompter(MultipleChoice(), "knowledge")
    collab = Collaborator(weak or StreamingWeak(weak_script), strong or TimedStrong(strong_script), prompter,
                          CollabConfig(), overlap=overlap)
    return mine(EXAMPLES, collab, RuleEvaluator(prompter), MiningConfig(k=3), seed=0)


def test_overlapped_mining_equals_sequential():
    seq, ovl = _mine(False), _mine(True)
    assert seq.pairs and ovl.pairs == seq.pairs
    assert ovl.drafts == seq.drafts and ovl.refinements == seq.refinements and ovl.scores == seq.scores
    assert ovl.stats == seq.stats


def test_refinements_are_sent_while_the_weak_model_drafts():
    for overlap in (False, True):
        weak, strong = StreamingWeak(weak_script, pause=0.05), TimedStrong(strong_script, delay=0.02)
        _mine(overlap, weak, strong)
        refine_sent = [t for t, text in strong.arrivals if "Draft" in text]
        alone_sent = [t for t, text in strong.arrivals if "Draft" not in text]
        assert len(refine_sent) == 3 * len(EXAMPLES) and len(alone_sent) == len(EXAMPLES)
        last_draft = max(weak.done_at)
        if overlap:  # the first question's drafts are refined long before the last question is drafted
            assert min(refine_sent) < last_draft - 0.2
        else:
            assert min(refine_sent) >= last_draft


def test_a_failed_background_request_fails_the_stage():
    strong = TimedStrong(strong_script, fail_on="fact 1")
    with pytest.raises(BackendError, match="strong model down"):
        _mine(True, StreamingWeak(weak_script, pause=0.01), strong)


def test_overlapped_evaluation_equals_sequential():
    systems = get_systems(["weak_sft", "weak_aligned", "strong", "refine", "cowest"])
    out = {}
    for overlap in (False, True):
        strong = TimedStrong(strong_script, delay=0.01)
        collab = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge"), CollabConfig(), overlap=overlap)
        out[overlap] = evaluate(EXAMPLES, systems, lambda v: StreamingWeak(weak_script, pause=0.01), collab,
                                EvalConfig(n_bootstrap=50))
    (rows_seq, res_seq), (rows_ovl, res_ovl) = out[False], out[True]
    assert rows_ovl == rows_seq
    for name in ("strong", "refine", "cowest"):
        assert res_ovl.systems[name].metrics == res_seq.systems[name].metrics
        # a strong call per question, plus the drafts' weak calls for the collaborations
        assert res_ovl.systems[name].calls == res_seq.systems[name].calls == len(EXAMPLES) * (
            1 if name == "strong" else 2)
    assert res_ovl.comparisons == res_seq.comparisons


def test_cached_backend_reports_each_conversation_once_as_it_finishes(tmp_path):
    inner = StreamingWeak(lambda c, i, s: f"reply to {c[-1]['content']}")
    convs = [[{"role": "user", "content": q}] for q in ("a", "b", "a", "c")]  # "a" twice: generated once
    with CallCache(tmp_path / "c.sqlite") as cache:
        CachedBackend(inner, cache).generate([convs[1]], 1, Sampling())  # "b" cached beforehand
        seen: list[tuple[int, str, bool]] = []
        backend = CachedBackend(inner, cache)
        out = backend.generate(convs, 1, Sampling(), on_done=lambda i, comps: seen.append(
            (i, comps[0].text, comps[0].cached)))
    assert sorted(i for i, _, _ in seen) == [0, 1, 2, 3]
    assert seen[0] == (1, "reply to b", True)  # the cached one is reported before any generation
    assert {i: text for i, text, _ in seen} == {0: "reply to a", 1: "reply to b", 2: "reply to a", 3: "reply to c"}
    assert [c[0].text for c in out] == ["reply to a", "reply to b", "reply to a", "reply to c"]
    assert [r[-1]["content"] for r in inner.requests] == ["b", "a", "c"]
    assert backend.usage.calls == 2 and backend.usage.cache_hits == 2
