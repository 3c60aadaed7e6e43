"""The managed llama.cpp server: error paths (no model needed) and a real run on the strong GGUF (integration)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cowest import assets
from cowest.config import ModelConfig
from cowest.models.base import BackendError, Sampling
from cowest.models.llamacpp import LlamaCppServer, gguf_identity, make_llamacpp_backend


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    srv = LlamaCppServer(tmp_path / "nope.gguf")
    with pytest.raises(BackendError, match="GGUF file not found: .*nope.gguf"):
        srv.start()
    assert not srv.running
    srv.stop()  # idempotent, even when never started


def test_corrupt_gguf_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf" * 1000)
    with pytest.raises(BackendError, match="failed to start for .*bad.gguf"):
        LlamaCppServer(bad).start()


def test_unknown_asset_is_returned_as_a_path() -> None:
    with pytest.raises(BackendError, match="GGUF file not found: no-such-model"):
        make_llamacpp_backend(ModelConfig(backend="llamacpp", model="no-such-model"))


@pytest.fixture(scope="module")
def strong_gguf() -> Path:
    return assets.install([assets.STRONG_DEFAULT], progress=False)[assets.STRONG_DEFAULT]


@pytest.mark.integration
def test_server_chat_usage_and_stop(strong_gguf: Path) -> None:
    from openai import OpenAI

    with LlamaCppServer(strong_gguf, n_ctx=1024, n_parallel=1) as srv:
        port, key = srv.port, srv.api_key
        assert srv.base_url == f"http://127.0.0.1:{port}/v1"
        assert srv.start_time_s is not None and srv.start_time_s < 30
        assert _status(f"{srv.base_url}/chat/completions") == 401  # no other local user can call it
        assert _status(f"{srv.base_url}/chat/completions", "sk-local") == 401
        assert key not in Path(f"/proc/{srv.pid}/cmdline").read_text()  # no other local user can read it in `ps`
        with OpenAI(base_url=srv.base_url, api_key=key, timeout=120, max_retries=0) as client:
            r = client.chat.completions.create(
                model="anything",  # a single-model llama.cpp server ignores the name
                messages=[{"role": "user", "content": "What is 2 + 2? Answer with the number only."}],
                max_tokens=8,
                temperature=0,
            )
        assert "4" in r.choices[0].message.content  # the embedded chat template is applied
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert not srv.running and _refused(port)
    srv.stop()  # second stop is a no-op
    with srv:  # each start has its own key
        assert srv.api_key and srv.api_key != key


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.integration
def test_a_server_that_hangs_is_killed_at_its_stop(strong_gguf: Path) -> None:
    """A llama.cpp server that no longer runs (frozen here with SIGSTOP) cannot hang its owner's stop: after the
    grace period the process is killed and its port freed."""
    srv = LlamaCppServer(strong_gguf, n_ctx=512, n_parallel=1, stop_timeout_s=1.0).start()
    pid, port = srv.pid, srv.port
    assert pid is not None and pid != os.getpid() and not _refused(port)
    os.kill(pid, signal.SIGSTOP)
    srv.stop()
    assert _gone(pid) and _refused(port) and not srv.running


@pytest.mark.integration
def test_a_start_interrupted_while_the_model_loads_leaves_no_process(strong_gguf: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the model loads: the start raises it, and the half-started server's process is ended."""
    spawned: list[int] = []

    def interrupted(self: LlamaCppServer, proc: subprocess.Popen[str], t0: float) -> bool:
        spawned.append(proc.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(LlamaCppServer, "_wait_listening", interrupted)
    srv = LlamaCppServer(strong_gguf, n_ctx=512, n_parallel=1)
    with pytest.raises(KeyboardInterrupt):
        srv.start()
    assert len(spawned) == 1 and _gone(spawned[0]) and not srv.running


@pytest.mark.integration
def test_a_killed_owner_takes_its_server_with_it(strong_gguf: Path, tmp_path: Path) -> None:
    """A run killed with SIGKILL (no clean-up of its own) leaves no llama.cpp server behind holding a port and the
    model's memory: the server's process ends when its owner's end of the pipe closes."""
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from cowest.models.llamacpp import LlamaCppServer\n"
        f"srv = LlamaCppServer({str(strong_gguf)!r}, n_ctx=512, n_parallel=1).start()\n"
        "print(srv.pid, srv.port, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pid, port = map(int, owner.stdout.readline().split())
        assert not _refused(port)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30
    # a leader thread shows as a zombie while its other threads still exit, holding the socket a little longer
    while not (_gone(pid) and _refused(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(pid) and _refused(port)


def _status(url: str, key: str | None = None) -> int:
    """The HTTP status of a chat request to `url` (with `key` as bearer token, if any)."""
    import urllib.error
    import urllib.request

    body = b'{"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 2}'
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.integration
def test_make_llamacpp_backend(strong_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[int] = []
    real_stop = LlamaCppServer.stop

    def stop(self: LlamaCppServer) -> None:
        if self.running:
            stopped.append(self.port or 0)
            reused.append(self.reuse_prefix)
        real_stop(self)

    reused: list[bool] = []
    monkeypatch.setattr(LlamaCppServer, "stop", stop)
    cfg = ModelConfig(backend="llamacpp", model=assets.STRONG_DEFAULT, n_ctx=1024, n_parallel=1, reuse_prefix=True)
    backend = make_llamacpp_backend(cfg)
    try:
        assert backend.identity == gguf_identity(assets.STRONG_DEFAULT, strong_gguf)  # no port in the cache key
        [[c]] = backend.generate([[{"role": "user", "content": "Say OK."}]], n=1, sampling=Sampling(max_tokens=4))
        assert c.text and c.completion_tokens > 0
    finally:
        backend.close()
    assert len(stopped) == 1 and _refused(stopped[0]) and reused == [True]  # the recipe's knob reached the server


@pytest.mark.integration
def test_one_slot_server_is_deterministic_across_fresh_starts(strong_gguf: Path) -> None:
    """Two fresh servers given the same requests in the same order answer identically (greedy, one slot): a fresh
    re-run of a recipe reproduces the strong model's answers, not only a re-run from the call cache."""
    cfg = ModelConfig(backend="llamacpp", model=assets.STRONG_DEFAULT, n_ctx=1024, n_parallel=1, max_concurrency=4)
    convs = [[{"role": "user", "content": f"A {w} kg patient may get at most {d} mg/kg per day. Think in one "
                                          "sentence, then give the total daily dose in mg."}]
             for w, d in [(62, 3.5), (48, 7.5), (90, 0.5), (74, 2.5)]]
    answers = []
    for _ in range(2):
        backend = make_llamacpp_backend(cfg)
        try:
            answers.append([c[0].text for c in backend.generate(convs, n=1, sampling=Sampling(max_tokens=48))])
        finally:
            backend.close()
    assert answers[0] == answers[1] and all(answers[0])


@pytest.mark.integration
@pytest.mark.parametrize("reuse", [True, False])
def test_reuse_prefix_decides_whether_a_slot_recomputes_the_prompt_it_shares_with_the_last(strong_gguf: Path,
                                                                                            reuse: bool) -> None:
    """With `reuse_prefix` off the server computes every prompt whole (its answer cannot depend on the request
    before); on, it computes only what follows the prefix shared with the last request."""
    from openai import OpenAI

    head = "Clause 4.1 of the travel policy: the breakfast allowance is paid only before 07:00. "
    with LlamaCppServer(strong_gguf, n_ctx=1024, n_parallel=1, reuse_prefix=reuse) as srv:
        with OpenAI(base_url=srv.base_url, api_key=srv.api_key) as client:
            computed = []
            for q in ("Is 06:30 paid?", "Is 07:30 paid?"):
                r = client.chat.completions.create(model="s", messages=[{"role": "user", "content": head + q}],
                                                   max_tokens=2, temperature=0)
                computed.append((r.model_extra["timings"]["prompt_n"], r.usage.prompt_tokens))
    (_, _), (done, whole) = computed
    assert done == whole if not reuse else done < whole - 10


@pytest.mark.integration
def test_a_prompt_longer_than_the_context_names_the_knob(strong_gguf: Path) -> None:
    cfg = ModelConfig(backend="llamacpp", model=assets.STRONG_DEFAULT, n_ctx=256, n_parallel=1)
    backend = make_llamacpp_backend(cfg)
    try:
        long = " ".join(f"clause {i} allows taxis after 22:00." for i in range(120))
        with pytest.raises(BackendError, match=r"HTTP 400: .*exceeds the available context.*raise \w+\.n_ctx"):
            backend.generate([[{"role": "user", "content": long}]], n=1, sampling=Sampling(max_tokens=8))
    finally:
        backend.close()


def test_a_server_made_of_a_model_config_takes_its_knobs_and_the_overrides(strong_gguf: Path) -> None:
    cfg = ModelConfig(backend="llamacpp", model=str(strong_gguf), n_ctx=1024, n_parallel=2, n_threads=1,
                      reuse_prefix=True)
    srv = LlamaCppServer.of(cfg)
    assert (srv.gguf_path, srv.n_ctx, srv.n_parallel, srv.n_threads, srv.alias, srv.reuse_prefix) == (
        strong_gguf, 1024, 2, 1, str(strong_gguf), True)
    one = LlamaCppServer.of(cfg, n_parallel=1, alias=None, reuse_prefix=False)  # as the prompt-cache bench asks
    assert (one.n_parallel, one.alias, one.reuse_prefix, one.n_threads) == (1, None, False, 1) and not one.running
