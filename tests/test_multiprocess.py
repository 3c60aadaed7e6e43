"""`cowest run` under `accelerate launch` with 2 CPU processes: the same drafts, pairs and adapters as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_run import recipe_dict, strong_answer, write_recipe

from cowest.config import load_recipe
from cowest.io import read_json, read_jsonl
from cowest.net import free_port
from cowest.tasks import load_task
from cowest.testing.faults import FaultServer

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def strong_server():
    """The strong model as an HTTP stand-in: an even-length draft leads it to the gold letter (test_run's script)."""
    golds: dict[str, str] = {}

    with FaultServer(answer=lambda body, i: strong_answer(body["messages"], golds)) as server:
        server.golds = golds
        yield server


def launch(tmp_path: Path, tiny_path: Path, server: FaultServer, processes: int) -> tuple[Path, int]:
    """The method in `processes` processes (several: stage by stage, then `run`); the run and its strong requests."""
    d = recipe_dict(tiny_path, tmp_path / f"runs{processes}")
    d["strong"] = {"backend": "openai", "model": "stand-in", "base_url": server.url, "max_concurrency": 4}
    d["lora"] |= {"lora_dropout": 0.0}  # dropout masks are drawn per process: the one thing that would differ
    # Epochs, not max_steps: the number of steps then shows whether the processes shared one batch or each took one.
    # fp32: bf16 rounds the two halves of a batch differently (4% of this model's SFT update), enough to change a
    # sampled draft of a random tiny model. A batch of 2 rows divides the 4 SFT rows and the 6 pairs: with a last
    # partial batch, accelerate fills each process's share with rows from the start. Random order: length grouping
    # (the default) sorts within groups sized by the per-process batch, so it groups the rows differently.
    # `global_batch_size` (cowest's own): 2 rows a step in one process, 1 on each of two (TRL's per-device batch
    # would be 2 on each, 4 a step).
    d["sft"] = {"num_train_epochs": 3, "global_batch_size": 2, "max_length": 512, "bf16": False,
                "train_sampling_strategy": "random"}
    d["dpo"] = {"num_train_epochs": 2, "global_batch_size": 2, "max_length": 512}
    d["eval"]["limit"] = 3
    recipe = write_recipe(tmp_path, d | {"name": f"mp{processes}"})
    run_dir = load_recipe(recipe).run_dir
    task = load_task(load_recipe(recipe).task)
    server.golds.update({f"Question: {e.question}": e.gold for e in task.train + task.test})
    launcher = [*accelerate_launch(processes), "-m"]
    commands = [["run"]] if processes == 1 else [["sft"], ["mine"], ["dpo"], ["run"]]
    before = len(server.requests)
    env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OMP_NUM_THREADS": "1"}
    for command in commands:
        cmd = [*(launcher if processes > 1 else [sys.executable, "-m"]), "cowest", *command, str(recipe)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        (tmp_path / f"launch{processes}-{command[0]}.log").write_text(proc.stderr)
        assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir, len(server.requests) - before


def accelerate_launch(processes: int) -> list[str]:
    """`accelerate launch` of `processes` CPU processes on a free port, ready for a script or `-m module`."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port())]


def adapter(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "adapter_model.safetensors"))


def batch(run_dir: Path, stage: str) -> tuple[int, int]:
    """The per-device batch and accumulation steps a stage trained with."""
    trainer = read_json(run_dir / stage / "trainer_config.json")["trainer"]
    return trainer["per_device_train_batch_size"], trainer["gradient_accumulation_steps"]


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and "cache.sqlite" not in p.name}


def test_two_processes_give_what_one_gives(tmp_path, tiny_lm, strong_server):
    one, calls_one = launch(tmp_path, tiny_lm.path, strong_server, 1)
    two, calls_two = launch(tmp_path, tiny_lm.path, strong_server, 2)

    # every stage ran in two processes; the recipe's global batch of 2 rows a step is 1 row on each: the same steps
    for stage in ("sft", "round_1/mine", "round_1/dpo", "eval", "eval_recall"):
        head, _, tail = stage.partition("/")
        manifest = lambda d: read_json(d / head / (f"{tail}.manifest.json" if tail else "manifest.json"))  # noqa: E731
        assert (manifest(one)["processes"], manifest(two)["processes"]) == (1, 2), stage
    assert not read_json(one / "sft" / "trainer_config.json")["trainer"]["bf16"]
    for stage in ("sft", "round_1"):
        assert (batch(one, stage), batch(two, stage)) == ((2, 1), (1, 1)), stage
    for stage in ("sft", "round_1"):
        log = lambda d: [(r["step"], r["loss"]) for r in read_jsonl(d / stage / "train_log.jsonl") if "loss" in r]  # noqa: E731
        assert [s for s, _ in log(two)] == [s for s, _ in log(one)] and len(log(one)) >= 6, stage
        for (_, a), (_, b) in zip(log(one), log(two)):
            assert b == pytest.approx(a, rel=1e-4), stage
    # drafting split over two processes and gathered in order: the same sampled drafts, refinements and pairs
    def rows(d: Path, name: str) -> list[dict]:  # a pair names its adapter's hash: equal weights up to a tolerance
        return [{k: v for k, v in r.items() if k != "weak_model"} for r in read_jsonl(d / "round_1" / f"{name}.jsonl")]

    for name in ("drafts", "refinements", "scores", "pairs", "pairs_heldout"):
        assert rows(two, name) == rows(one, name), name
    assert len(read_jsonl(one / "round_1" / "pairs.jsonl")) > 0
    # data-parallel training on half the rows each: the same weights up to the order of fp32 sums
    for stage in ("sft", "round_1"):
        a, b = adapter(one / stage / "adapter"), adapter(two / stage / "adapter")
        assert a.keys() == b.keys() and any("lora_B" in k for k in a)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5 * float(a[k].abs().max()) + 1e-7)
    for name in ("eval", "eval_recall"):
        assert read_jsonl(two / name / "predictions.jsonl") == read_jsonl(one / name / "predictions.jsonl"), name
    # the strong model is called by the main process only, and the second process wrote nothing of its own
    assert calls_two == calls_one > 0
    assert files(two) == files(one)
    # `run` after the stage commands found sft, mining and DPO up to date (a process that disagreed would hang)
    for stage in ("sft", "round_1/mine", "round_1/dpo"):
        assert f"{stage}: up to date, skipped" in (tmp_path / "launch2-run.log").read_text(), stage


EXIT_SCRIPT = """
import torch
from accelerate import Accelerator
from cowest import dist

accelerator = Accelerator(cpu=True)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.01))
for _ in range(5):
    accelerator.backward(model(torch.randn(8, 64)).pow(2).mean())
    optimizer.step()
    optimizer.zero_grad()
holder = type("Holder", (), {})()
holder.self, holder.model = holder, model  # a reference cycle, as a finished trainer leaves behind
del holder, model, accelerator, optimizer
dist.finish()
"""


def test_processes_exit_cleanly_after_data_parallel_training(tmp_path):
    # Without `finish` collecting the trainer's cycle and waiting for the other process, one launch in about seven
    # aborted on exit ("terminate called without an active exception"): eight launches catch that most of the time.
    script = tmp_path / "train_and_exit.py"
    script.write_text(EXIT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for i in range(8):
        proc = subprocess.run([*accelerate_launch(2), str(script)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"launch {i}: {proc.stderr[-2000:]}"
