"""`cowest serve` on scripted models: a real uvicorn server on loopback, called with the official openai client."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Sequence

import openai
import pytest
from fakes import ScriptedBackend

from cowest.collab import Prompter
from cowest.config import CollabConfig, ModelConfig, Recipe, TaskConfig
from cowest.layout import RunLayout
from cowest.models.base import BackendError, Completion, Conversation, Sampling
from cowest.models.openai_compat import OpenAIBackend
from cowest.serve import Limits, ServeConfigError, serve_recipe, serve_run
from cowest.serve.app import create_app
from cowest.serve.auth import KeyCheck, check_bind, is_loopback, load_keys
from cowest.serve.protocol import APIError, split_options
from cowest.serve.service import Service
from cowest.tasks.types import MultipleChoice
from cowest.testing.faults import FaultServer
from cowest.testing.serving import ThreadedServer, post

KEY = "sk-serve-test-1"
QUESTION = "Which drug treats the fictional fever?\nA. Alpha\nB. Beta\nC. Gamma\nD. Delta"
DRAFT = "Background: Beta treats the fictional fever.\nReasoning: the fact names Beta.\nAnswer: B"
SFT_DRAFT = "Background: Gamma is a fever drug.\nReasoning: guess.\nAnswer: C"


class CountingWeak(ScriptedBackend):
    """A scripted weak model that records each `generate` batch and can hold calls until `gate` is set."""

    def __init__(self, text: str, name: str, delay_s: float = 0.0) -> None:
        super().__init__(lambda conv, i, s: text if i == 0 else f"{text} #{i}", name=name)
        self.batches: list[int] = []
        self.samplings: list[Sampling] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()

    def _generate(self, conversations: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        self.gate.wait(10)
        time.sleep(self.delay_s)
        self.batches.append(len(conversations))
        self.samplings.append(sampling)
        return super()._generate(conversations, n, sampling)


def strong_script(conv: Conversation, i: int, sampling: Sampling) -> str:
    """Agrees with a draft that answers B, and says what it was shown."""
    prompt = conv[-1]["content"]
    saw = "draft" if "--- Draft ---" in prompt else "alone"
    letter = "B" if "Answer: B" in prompt or saw == "alone" else "C"
    return f"Checked ({saw}, options {'B. Beta' in prompt}).\nFinal answer: {letter}"


class Served(ThreadedServer):
    """A Service's app on a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, service: Service, keys: list[str] | None = (KEY,)) -> None:
        self.service = service
        self.app = create_app(service, list(keys or []))
        super().__init__(self.app)

    def client(self, key: str = KEY, **kw) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=f"{self.url}/v1", max_retries=0, timeout=20, **kw)

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
        """A raw POST: (status, JSON body, headers)."""
        h = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **(headers or {})}
        return post(f"{self.url}{path}", body, h)

    def get(self, path: str, key: str | None = KEY) -> tuple[int, bytes]:
        h = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.url}{path}", headers=h), timeout=20) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()



def make_service(strong=None, limits: Limits = Limits(batch_window_s=0.0), **weak) -> Service:
    weak = weak or {"aligned": CountingWeak(DRAFT, "aligned"), "sft": CountingWeak(SFT_DRAFT, "sft")}
    strong = strong if strong is not None else ScriptedBackend(strong_script, name="strong")
    return Service(Prompter(MultipleChoice(), "cot"), CollabConfig(), strong, weak, limits, strong_concurrency=4)


@pytest.fixture
def served():
    s = Served(make_service())
    yield s
    s.close()


def ask(client: openai.OpenAI, model: str = "cowest", **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}], **kw)


# ---- answers


def test_cowest_answer_carries_the_draft_and_both_models_usage(served):
    r = ask(served.client())
    text = r.choices[0].message.content
    assert text.endswith("Final answer: B") and "Checked (draft, options True)" in text
    extra = r.model_extra["cowest"]
    assert extra["system"] == "cowest" and extra["draft"] == DRAFT and extra["answers"] == ["B"]
    # weak 10 + 5, strong 10 + 5 (ScriptedBackend's counts)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (20, 10, 30)
    assert extra["usage"] == {"weak": {"prompt_tokens": 10, "completion_tokens": 5},
                              "strong": {"prompt_tokens": 10, "completion_tokens": 5}}
    assert r.model == "cowest" and r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    # the weak model got the method's draft prompt: the question, its options as in training, the cot instruction
    weak_prompt = served.service.weak["aligned"].requests[0][0]["content"]
    assert weak_prompt.startswith("Question: Which drug") and "\nB. Beta\n" in weak_prompt and "Reasoning" in weak_prompt


def test_each_model_name_is_its_own_system(served):
    c = served.client()
    assert [m.id for m in c.models.list().data] == ["cowest", "refine", "strong", "weak"]
    refine = ask(c, "refine")
    assert refine.model_extra["cowest"]["draft"] == SFT_DRAFT and refine.choices[0].message.content.endswith(": C")
    strong = ask(c, "strong")
    assert strong.model_extra["cowest"]["draft"] is None and "alone" in strong.choices[0].message.content
    assert strong.usage.total_tokens == 15
    weak = ask(c, "weak")
    assert weak.choices[0].message.content == DRAFT and weak.model_extra["cowest"]["answers"] == ["B"]
    with pytest.raises(openai.NotFoundError) as e:
        ask(c, "gpt-4o")
    assert e.value.code == "model_not_found" and "cowest, refine, strong, weak" in e.value.message


def test_sampling_fields_reach_the_models(served):
    strong = served.service.strong
    seen: list[Sampling] = []
    strong.script = lambda conv, i, s: seen.append(s) or f"Final answer: B (seed {s.seed})"
    r = ask(served.client(), max_tokens=50, temperature=0.7, n=2, seed=5)
    assert [c.message.content for c in r.choices] == ["Final answer: B (seed 5)", "Final answer: B (seed 6)"]
    assert {(s.max_tokens, s.temperature) for s in seen} == {(50, 0.7)}
    # the draft stays the method's greedy draft; the caller's sampling shapes the final answer
    assert served.service.weak["aligned"].samplings == [Sampling(max_tokens=CollabConfig().draft_max_tokens)]
    weak = ask(served.client(), "weak", max_tokens=20, temperature=0.5, n=2, seed=3)
    assert [c.message.content for c in weak.choices] == [DRAFT, f"{DRAFT} #1"]
    assert served.service.weak["aligned"].samplings[-1] == Sampling(temperature=0.5, max_tokens=20, seed=3)


def test_streaming_sends_the_answer_as_server_sent_events(served):
    plain = ask(served.client())
    chunks = list(ask(served.client(), stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].model_extra["cowest"]["draft"] == DRAFT
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == 30 and not chunks[-1].choices


def test_health_and_metrics(served):
    status, body = served.get("/health", key=None)
    assert status == 200 and json.loads(body)["status"] == "ok"
    ask(served.client())
    assert served.get("/metrics", key=None)[0] == 401
    status, text = served.get("/metrics")
    text = text.decode()
    assert status == 200
    assert sample(text, "cowest_requests_total", model="cowest", status="200") == 1
    assert sample(text, "cowest_tokens_total", role="strong", kind="prompt") == 10
    assert sample(text, "cowest_draft_batch_size_count", variant="aligned") == 1


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from Prometheus exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


# ---- access


def test_keys_are_required_and_checked(served):
    with pytest.raises(openai.AuthenticationError) as e:
        ask(served.client(key="sk-wrong"))
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
    status, body, _ = served.post("/v1/chat/completions", b"{}", headers={"Authorization": ""})
    assert status == 401 and "missing API key" in body["error"]["message"]
    assert served.get("/v1/models", key=None)[0] == 401


def test_several_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_KEYS", " sk-a, sk-b ,,")
    keys = load_keys("MY_KEYS")
    assert keys == ["sk-a", "sk-b"]
    check = KeyCheck(keys)
    check("Bearer sk-b")
    for bad in (None, "Bearer", "Basic sk-a", "Bearer sk-c", "Bearer sk-a2"):
        with pytest.raises(APIError) as e:
            check(bad)
        assert e.value.status == 401
    KeyCheck([])(None)  # no keys configured: open


def test_no_keys_means_loopback_only():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    check_bind("127.0.0.1", [])
    check_bind("0.0.0.0", ["sk-x"])
    with pytest.raises(ServeConfigError, match="COWEST_API_KEYS"):
        check_bind("0.0.0.0", [])
    recipe = Recipe(task=TaskConfig(name="formulary"), weak=ModelConfig(backend="hf", model="missing-model"),
                    strong=ModelConfig(backend="openai", model="m"))
    with pytest.raises(ServeConfigError):  # refused before any model is loaded
        serve_run(recipe, host="0.0.0.0", keys_env="COWEST_TEST_NO_SUCH_VAR")


def test_serving_cuts_the_strong_deadline_to_the_request_deadline():
    recipe = Recipe(task=TaskConfig(name="formulary"), weak=ModelConfig(backend="hf", model="w"),
                    strong=ModelConfig(backend="openai", model="m", deadline_s=600, timeout_s=300))
    served = serve_recipe(recipe, Limits(deadline_s=30))
    assert (served.strong.deadline_s, served.strong.timeout_s) == (30, 30) and recipe.strong.deadline_s == 600


# ---- limits


def body(**kw) -> bytes:
    return json.dumps({"model": "cowest", "messages": [{"role": "user", "content": QUESTION}], **kw}).encode()


def test_limits_and_bad_requests_get_clear_errors():
    limits = Limits(max_body_bytes=2000, max_messages=3, max_prompt_chars=200, max_tokens=64, batch_window_s=0.0)
    s = Served(make_service(limits=limits))
    try:
        status, err, _ = s.post("/v1/chat/completions", body(pad="x" * 3000))
        assert status == 413 and "2000 bytes" in err["error"]["message"]
        status, err, _ = s.post("/v1/chat/completions", b'{"model": "cowest", "messages": [')
        assert status == 400 and err["error"]["code"] == "invalid_json"
        status, err, _ = s.post("/v1/chat/completions", body(max_tokens=65))
        assert status == 400 and err["error"]["param"] == "max_tokens" and "limit of 64" in err["error"]["message"]
        many = [{"role": "user", "content": "hi"}] * 4
        status, err, _ = s.post("/v1/chat/completions", json.dumps({"model": "cowest", "messages": many}).encode())
        assert status == 400 and err["error"]["code"] == "too_many_messages"
        long = [{"role": "user", "content": "why? " * 50}]
        status, err, _ = s.post("/v1/chat/completions", json.dumps({"model": "cowest", "messages": long}).encode())
        assert status == 400 and err["error"]["code"] == "prompt_too_long"
        status, err, _ = s.post("/v1/chat/completions", body(temperature=5))
        assert status == 400 and err["error"]["param"] == "temperature"
        only_system = [{"role": "system", "content": "be brief"}]
        status, err, _ = s.post("/v1/chat/completions", json.dumps({"model": "cowest", "messages": only_system}).encode())
        assert status == 400 and "no user message" in err["error"]["message"]
        with pytest.raises(openai.BadRequestError):
            ask(s.client(), max_tokens=1000)
        assert ask(s.client(), max_tokens=64).choices[0].message.content.endswith("B")  # the server is still fine
    finally:
        s.close()


def test_a_body_far_over_the_limit_gets_its_413_not_a_reset():
    """Refusing before reading the body used to close on unread bytes: the sender saw a reset in ~60% of tries."""
    s = Served(make_service(limits=Limits(max_body_bytes=2000, batch_window_s=0.0)))
    try:
        for _ in range(20):
            status, err, _ = s.post("/v1/chat/completions", body(pad="x" * 4_000_000))
            assert status == 413 and err["error"]["code"] == "request_too_large"
        assert ask(s.client()).choices[0].message.content.endswith("B")
    finally:
        s.close()


def test_a_full_server_answers_429_and_a_slow_one_504():
    weak = CountingWeak(DRAFT, "aligned")
    s = Served(make_service(limits=Limits(max_in_flight=1, deadline_s=1.0, batch_window_s=0.0), aligned=weak))
    try:
        weak.gate.clear()  # the first request holds the only slot
        first: list = []
        t = threading.Thread(target=lambda: first.append(s.post("/v1/chat/completions", body())))
        t.start()
        until = time.monotonic() + 5
        while json.loads(s.get("/health")[1])["in_flight"] < 1 and time.monotonic() < until:
            time.sleep(0.02)
        status, err, headers = s.post("/v1/chat/completions", body())
        assert status == 429 and headers.get("retry-after") == "1" and err["error"]["type"] == "rate_limit_error"
        t.join(10)
        assert first[0][0] == 504 and err["error"]["code"] == "server_busy"
        assert first[0][1]["error"]["code"] == "deadline_exceeded"
        weak.gate.set()
        status, ok, _ = s.post("/v1/chat/completions", body())
        assert status == 200 and ok["choices"][0]["message"]["content"].endswith("B")
    finally:
        weak.gate.set()
        s.close()


# ---- the strong model failing, and coming back


def test_strong_backend_errors_are_per_request_and_the_server_recovers():
    fs = FaultServer(faults=("500",), rate=0.0)
    cfg = ModelConfig(backend="openai", model="fault-model", base_url=fs.url, max_retries=0, timeout_s=5, deadline_s=5)
    strong = OpenAIBackend(cfg, api_key="sk-local")
    s = Served(make_service(strong=strong))
    try:
        c = s.client()
        assert ask(c).choices[0].message.content.startswith("Question: Which drug")  # the refine prompt, echoed
        fs.rate = 1.0  # every strong call answers HTTP 500
        with pytest.raises(openai.InternalServerError) as e:
            ask(c)
        assert e.value.status_code == 502 and e.value.code == "upstream_error"
        assert "127.0.0.1" not in e.value.message  # internal addresses stay in the server log
        fs.rate = 0.0
        assert ask(c).choices[0].message.content
        fs.close()  # the strong server stops
        with pytest.raises(openai.APIStatusError) as e:
            ask(c)
        assert e.value.status_code == 503 and e.value.code == "upstream_unavailable"
        assert ask(c, "weak").choices[0].message.content == DRAFT  # the weak system does not need it
        assert s.get("/health", key=None)[0] == 200
        fs.restart()
        assert ask(c).model_extra["cowest"]["draft"] == DRAFT
    finally:
        s.close()
        strong.close()
        fs.close()


# ---- batching


def test_concurrent_drafts_go_to_the_weak_model_together():
    weak = CountingWeak(DRAFT, "aligned", delay_s=0.05)
    s = Served(make_service(limits=Limits(batch_window_s=0.5, max_batch=16), aligned=weak))
    try:
        c = s.client()
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(ask(c))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert len(results) == 8 and all(r.model_extra["cowest"]["draft"] == DRAFT for r in results)
        assert sum(weak.batches) == 8 and len(weak.batches) <= 2 and max(weak.batches) >= 4, weak.batches
        before = len(weak.batches)
        for _ in range(2):  # one at a time: a batch each
            ask(c)
        assert weak.batches[before:] == [1, 1]
        text = s.get("/metrics")[1].decode()
        assert sample(text, "cowest_draft_batch_size_count", variant="aligned") == len(weak.batches)
    finally:
        s.close()


def test_a_failing_weak_batch_fails_only_its_requests():
    calls = {"n": 0}

    def flaky(conv, i, s):
        calls["n"] += 1
        if calls["n"] == 1:
            raise BackendError("weak model crashed")
        return DRAFT

    s = Served(make_service(aligned=ScriptedBackend(flaky, name="flaky")))
    try:
        with pytest.raises(openai.InternalServerError) as e:
            ask(s.client())
        assert e.value.status_code == 502 and "weak model" in e.value.message
        assert ask(s.client()).model_extra["cowest"]["draft"] == DRAFT
    finally:
        s.close()


# ---- the question


def test_options_are_read_from_the_question_or_the_options_field(served):
    assert split_options(QUESTION) == ("Which drug treats the fictional fever?", ["Alpha", "Beta", "Gamma", "Delta"])
    assert split_options("What is 2+2?") == ("What is 2+2?", None)
    assert split_options("A. only one option") == ("A. only one option", None)
    assert split_options("Pick one\nB. x\nC. y")[1] is None  # not from A
    r = served.client().chat.completions.create(
        model="strong", messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "Which?"}],
        extra_body={"options": ["Alpha", "Beta"]})
    assert "options True" in r.choices[0].message.content


def test_cli_serve_needs_a_run_directory_with_its_recipe(tmp_path):
    from typer.testing import CliRunner

    from cowest.cli import app

    res = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert res.exit_code == 2 and "no config.yaml" in res.output
    assert "--max-in-flight" in CliRunner().invoke(app, ["serve", "--help"]).output


class StubRun:
    """What service_from_run reads of a Run: adapters on disk, models on demand."""

    def __init__(self, tmp_path, trained: Sequence[str]) -> None:
        tmp_path.mkdir()
        self.dir, self.layout, self.opened = tmp_path, RunLayout(tmp_path), []
        for v in trained:
            (tmp_path / v).mkdir()
        self.recipe = Recipe(task=TaskConfig(name="formulary"), weak=ModelConfig(backend="hf", model="w"),
                             strong=ModelConfig(backend="llamacpp", model="s", max_concurrency=8, n_parallel=2))
        self.prompter = Prompter(MultipleChoice(), "cot")
        self.strong = ScriptedBackend(strong_script, name="strong")

    def weak_config(self, variant: str) -> ModelConfig:
        return self.recipe.weak.model_copy(update={"adapter": str(self.dir / variant)})

    def weak(self, variant: str):
        self.opened.append(variant)
        return CountingWeak(DRAFT, variant)


def test_the_served_systems_follow_the_run_s_trained_models(tmp_path):
    from cowest.serve.service import service_from_run

    sft_only = StubRun(tmp_path / "a", ["sft"])
    svc = service_from_run(sft_only, None, Limits())
    assert [s.name for s in svc.available()] == ["refine", "strong", "weak", "default"] and sft_only.opened == ["sft"]
    assert svc.system("default").kind == "collab" and svc.system("default").variant == "sft"  # no validation: refine
    assert svc.strong_concurrency == 2  # the llama.cpp server's slots
    with pytest.raises(ServeConfigError, match="cowest: the run"):
        service_from_run(StubRun(tmp_path / "b", ["sft"]), ["cowest"], Limits())
    with pytest.raises(ServeConfigError, match="unknown model gpt"):
        service_from_run(StubRun(tmp_path / "c", []), ["gpt"], Limits())
    both = StubRun(tmp_path / "d", ["sft", "aligned"])
    svc = service_from_run(both, ["cowest", "strong"], Limits())
    assert [s.name for s in svc.available()] == ["cowest", "strong", "default"] and both.opened == ["aligned"]
    assert svc.cfg.strong_max_tokens == both.recipe.collab.strong_max_tokens
    budget = StubRun(tmp_path / "e", ["aligned"])  # answers get the evaluation's token cap, as `cowest eval` gives
    budget.recipe = budget.recipe.model_copy(update={"eval": budget.recipe.eval.model_copy(
        update={"strong_max_tokens": 384})})
    assert service_from_run(budget, ["cowest"], Limits()).cfg.strong_max_tokens == 384


def test_the_default_model_is_the_system_validation_chose(tmp_path):
    """When drafts made the strong model worse on the run's validation questions, `default` is the strong model."""
    from cowest.io import write_json
    from cowest.serve.service import service_from_run

    run = StubRun(tmp_path / "r", ["sft", "aligned"])
    write_json(run.layout.manifest("eval_valid"), {"counts": {"served_default": "strong"}})
    svc = service_from_run(run, None, Limits())
    default = svc.system("default")
    assert default.kind == "strong" and "validation" in default.description
    listed = {s.name: s for s in svc.available()}
    assert listed["default"].description.startswith("strong: ")
    write_json(run.layout.manifest("eval_valid"), {"counts": {"served_default": "cowest"}})
    assert service_from_run(run, None, Limits()).system("default").variant == "aligned"
