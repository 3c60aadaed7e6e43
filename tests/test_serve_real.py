"""`cowest serve` on a real trained run: the real offline models, a real uvicorn server started by the CLI, and the
official openai client. The run is the session's `real_run` (the worked example: SmolLM2-135M SFT + DPO adapters, Qwen
1.5B strong)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
import yaml
from _real import ROOT, SHIPPED

from cowest import assets
from cowest.config import load_recipe
from cowest.io import read_jsonl
from cowest.models.llamacpp import LlamaCppServer
from cowest.net import free_port
from cowest.tasks import load_task
from cowest.testing.serving import post

KEY = "sk-real-serve-1"
STRONG = "qwen2.5-coder-1.5b-instruct"

pytestmark = pytest.mark.integration


class CliServer:
    """`python -m cowest serve TARGET ...` in a subprocess, until it answers /health."""

    def __init__(self, target: Path, log: Path, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "cowest", "serve", str(target), "--port", str(self.port), *args]
        full_env = {**os.environ, "COWEST_API_KEYS": KEY, **(env or {})}
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        deadline = time.monotonic() + 300  # loads the weak model(s) and starts llama.cpp
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cowest serve exited with {self.proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.close()
        raise AssertionError(f"cowest serve did not answer /health in 300 s:\n{log.read_text()[-4000:]}")

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=f"{self.url}/v1", max_retries=0, timeout=300)

    def post(self, body: bytes, key: str | None = KEY) -> tuple[int, dict]:
        h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        return post(f"{self.url}/v1/chat/completions", body, h, timeout=300)[:2]

    def close(self) -> None:
        self.proc.terminate()  # uvicorn shuts down on SIGTERM; the models are released on the way out
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(real_run, tmp_path_factory):
    s = CliServer(real_run.dir, tmp_path_factory.mktemp("serve") / "serve.log", "--max-tokens", "256")
    yield s
    s.close()


def test_served_cowest_answers_as_the_run_s_own_collaboration(server, real_run, monkeypatch):
    """The served `cowest` draft and answer equal the run's evaluation of the same question (greedy, seed 0)."""
    monkeypatch.chdir(ROOT)  # the run's data paths are relative to the repository
    recipe = load_recipe(real_run.config)
    test = {e.id: e for e in load_task(recipe.task).test}
    preds = [r for r in read_jsonl(real_run.dir / "eval" / "predictions.jsonl") if r["system"] == "cowest"]
    assert len(preds) == 6
    client = server.client()
    for i, p in enumerate(preds[:3]):
        ex = test[p["question_id"]]
        if i == 0:  # the options as the question's last lines, as a chat user would write them
            lines = [f"{chr(65 + j)}. {o}" for j, o in enumerate(ex.options)]
            r = client.chat.completions.create(model="cowest", messages=[
                {"role": "system", "content": "You are a service engineer."},
                {"role": "user", "content": "\n".join([ex.question, *lines])}])
        else:
            r = client.chat.completions.create(model="cowest", messages=[{"role": "user", "content": ex.question}],
                                               extra_body={"options": ex.options})
        extra = r.model_extra["cowest"]
        assert extra["draft"] == p["draft"], p["question_id"]
        assert r.choices[0].message.content == p["text"], p["question_id"]
        assert extra["answers"] == [p["answer"]]
        u = extra["usage"]
        assert u["weak"]["completion_tokens"] > 0 and u["strong"]["completion_tokens"] > 0
        assert r.usage.total_tokens == sum(v["prompt_tokens"] + v["completion_tokens"] for v in u.values())


def test_served_systems_and_sampling_on_the_real_models(server, real_run, monkeypatch):
    monkeypatch.chdir(ROOT)  # the run's data paths are relative to the repository
    client = server.client()
    served = {m.id: m for m in client.models.list().data}
    assert set(served) == {"cowest", "refine", "strong", "weak", "default"}
    # `default` answers as one of the collaboration's systems, named in its description
    assert served["default"].model_extra["description"].split(":")[0] in {"cowest", "refine", "strong"}
    ex = load_task(load_recipe(real_run.config).task).test[3]
    msgs = [{"role": "user", "content": ex.question}]
    opts = {"options": ex.options}

    weak = client.chat.completions.create(model="weak", messages=msgs, extra_body=opts, max_tokens=24)
    assert weak.model_extra["cowest"]["draft"] is None and "strong" not in weak.model_extra["cowest"]["usage"]
    assert 0 < weak.usage.completion_tokens <= 24

    strong = client.chat.completions.create(model="strong", messages=msgs, extra_body=opts)
    assert strong.model_extra["cowest"]["answers"][0] in list("ABCD")
    assert "weak" not in strong.model_extra["cowest"]["usage"]

    # two sampled answers (seed, seed + 1) refining one greedy draft. The same request again refines the same draft;
    # its sampled answers are new draws (a served run keeps no client answers, and llama.cpp's reused prompt prefix
    # may change the arithmetic), so only their number and form are checked.
    kw = dict(model="refine", messages=msgs, extra_body=opts, n=2, temperature=0.8, seed=7, max_tokens=64)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert len(a.choices) == len(b.choices) == 2
    assert a.model_extra["cowest"]["draft"] == b.model_extra["cowest"]["draft"]
    assert all(c.finish_reason in ("stop", "length") for c in a.choices)
    assert a.model_extra["cowest"]["draft"] and a.usage.completion_tokens >= 2

    plain = client.chat.completions.create(model="cowest", messages=msgs, extra_body=opts)
    stream = client.chat.completions.create(model="cowest", messages=msgs, extra_body=opts, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == plain.choices[0].message.content
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_keys_limits_and_bad_requests_on_the_real_server(server):
    with pytest.raises(openai.AuthenticationError):
        server.client(key="sk-wrong").models.list()
    status, body = server.post(b'{"model": "cowest", "messages": []}', key=None)
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    status, body = server.post(b'{"model": "cowest", "messages": [')
    assert status == 400 and "JSON" in body["error"]["message"]
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model="cowest", messages=[{"role": "user", "content": "Q?"}],
                                                max_tokens=100_000)
    assert e.value.param == "max_tokens" and "256" in e.value.message
    status, body = server.post(json.dumps({"model": "cowest", "messages": [
        {"role": "user", "content": "x" * 2_000_000}]}).encode())
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_stopped_strong_server_fails_requests_and_the_server_recovers(real_run, tmp_path):
    """The strong model behind a llama.cpp server we stop and start again: 503 while it is down, answers after."""
    gguf = assets.resolve_model(STRONG, "gguf")
    port = free_port()
    # an endpoint of our own (not cowest's managed server): a fixed key, the one the recipe's environment holds
    llama = LlamaCppServer(gguf, n_ctx=2048, n_parallel=1, port=port, alias=STRONG, api_key="sk-local").start()
    over = ["--set", "strong.backend=openai", "--set", f"strong.model={STRONG}", "--set",
            f"strong.base_url=http://127.0.0.1:{port}/v1", "--set", "strong.cache=off", "--set", "strong.max_retries=0"]
    served = CliServer(real_run.dir, tmp_path / "serve.log", "--models", "strong", *over,
                       env={"OPENAI_API_KEY": "sk-local"})
    ask = dict(model="strong", messages=[{"role": "user", "content": "Which is a prime number?\nA. 4\nB. 6\nC. 7\n"
                                                                     "D. 9"}], max_tokens=48)
    try:
        client = served.client()
        assert client.chat.completions.create(**ask).model_extra["cowest"]["answers"] == ["C"]
        llama.stop()
        for _ in range(2):  # every request while it is down fails alone; the server itself stays up
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(**ask)
            assert e.value.status_code == 503 and e.value.code == "upstream_unavailable"
            assert "127.0.0.1" not in e.value.message  # internal addresses stay in the server log
        with urllib.request.urlopen(f"{served.url}/health", timeout=5) as r:
            assert r.status == 200
        llama = LlamaCppServer(gguf, n_ctx=2048, n_parallel=1, port=port, alias=STRONG,
                               api_key="sk-local").start()
        assert client.chat.completions.create(**ask).model_extra["cowest"]["answers"] == ["C"]
    finally:
        served.close()
        llama.stop()
    assert "strong model failed" in (tmp_path / "serve.log").read_text()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """`cowest serve RECIPE --models strong` as a user starts it: loopback, no keys, the strong model behind cowest's
    own managed llama.cpp server (nothing to train, so a recipe will do)."""
    root = tmp_path_factory.mktemp("open")
    recipe = root / "e2e.yaml"
    recipe.write_text(yaml.safe_dump({**SHIPPED, "output_dir": str(root / "runs")}))
    s = CliServer(recipe, root / "serve.log", "--models", "strong", "--max-tokens", "16", env={"COWEST_API_KEYS": ""})
    yield s
    s.close()


def send(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """A POST with exactly these headers (urllib adds Host unless given): status and JSON body."""
    return post(url, data, headers, timeout=300)[:2]


def test_each_attack_on_the_keyless_server_is_refused(open_server):
    """What a web page or another local user could do to `cowest serve` on loopback without keys: each refused, while
    the same question asked properly is answered by the real strong model."""
    url = f"{open_server.url}/v1/chat/completions"
    ask = {"model": "strong", "messages": [{"role": "user", "content": "Which is a prime number?\nA. 4\nB. 7"}]}
    data, as_json = json.dumps(ask).encode(), {"Content-Type": "application/json"}
    status, ok = send(url, data, as_json)
    assert status == 200 and ok["choices"][0]["message"]["content"]
    attacks = {  # what each sends, and the refusal it gets
        "text/plain POST (a page's simple request)": ((data, {"Content-Type": "text/plain"}), 415),
        "forged Host (DNS rebinding)": ((data, {**as_json, "Host": "attacker.example:8000"}), 400),
        "27 options": ((json.dumps({**ask, "options": [f"o{i}" for i in range(27)]}).encode(), as_json), 400),
        "huge seed": ((json.dumps({**ask, "seed": 10**30}).encode(), as_json), 400),
    }
    for name, ((body, headers), expected) in attacks.items():
        status, err = send(url, body, headers)
        assert status == expected and "choices" not in err and err["error"]["message"], (name, status, err)
    assert send(url, json.dumps({**ask, "options": ["a"] * 27}).encode(), as_json)[1]["error"]["param"] == "options"
    assert send(url, json.dumps({**ask, "seed": 10**30}).encode(), as_json)[1]["error"]["param"] == "seed"
    with urllib.request.urlopen(f"{open_server.url}/health", timeout=5) as r:
        assert json.loads(r.read()) == {"status": "ok"}  # alive, and nothing more


def test_the_managed_llama_cpp_port_refuses_calls_without_its_key(open_server):
    """Another local user calling the strong model's own port, around cowest: refused, with or without a guessed
    key (the server's key is random at each start and never written down)."""
    found = re.search(r"llama\.cpp server for \S+ on (http://127\.0\.0\.1:\d+/v1)", open_server.log.read_text())
    assert found, open_server.log.read_text()[-2000:]
    url = f"{found.group(1)}/chat/completions"
    data = json.dumps({"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2}).encode()
    for headers in ({}, {"Authorization": "Bearer sk-local"}, {"Authorization": "Bearer sk-cowest"}):
        status, _ = send(url, data, {"Content-Type": "application/json", **headers})
        assert status == 401, headers
