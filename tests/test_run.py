"""The run orchestrator on tiny random models: every stage, manifests, skipping, and SIGKILL resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fakes import ScriptedBackend

from cowest import context as context_mod
from cowest import run as run_mod
from cowest.config import AblationConfig, dump_recipe, load_recipe
from cowest.checks import StageCheckError
from cowest.io import adapter_hash, read_json, read_jsonl
from cowest.models import CachedBackend, CallCache

pytestmark = pytest.mark.slow  # every test here trains through the pipeline on tiny models

TASK = {"name": "formulary", "options": {"n_drugs": 4, "wordings_per_fact": 2, "n_mining": 6, "n_test": 4}}


def recipe_dict(tiny_path: Path, out: Path, name: str = "tiny", strong_path: Path | None = None, **over) -> dict:
    weak = {"backend": "hf", "model": str(tiny_path), "batch_size": 8}
    d = {
        "name": name, "output_dir": str(out), "seed": 0, "task": TASK,
        "weak": weak, "strong": {**weak, "model": str(strong_path or tiny_path), "batch_size": 16},
        "collab": {"draft_max_tokens": 16, "strong_max_tokens": 16, "reask_max_tokens": 4},
        "mining": {"k": 3, "where": {"kind": "reasoning"}, "share": 1.0},
        "sft_recall": {"target": None},  # a random tiny model recalls nothing: measure, never extend
        "checks": {"min_sft_recall": 0.0, "min_pairs": 1},
        "sft": {"max_steps": 3, "per_device_train_batch_size": 4, "max_length": 512},
        "dpo": {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 512},
        "lora": {"r": 4, "lora_alpha": 8},
        "eval": {"systems": ["weak_sft", "weak_aligned", "strong", "refine", "cowest"], "n_bootstrap": 100},
    }
    d.update(over)
    return d


def write_recipe(tmp_path: Path, d: dict) -> Path:
    p = tmp_path / f"{d['name']}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def strong_script(conv, i, sampling):
    """Deterministic stand-in for the strong model: a draft of even length leads it to the right option."""
    text = conv[-1]["content"]
    if "--- Draft ---" in text:
        draft = text.split("--- Draft ---")[1].split("--- End of draft ---")[0]
        return "Final answer: GOLD" if len(draft.strip()) % 2 == 0 else "Final answer: WRONG"
    return "Final answer: WRONG"


def strong_answer(conv, golds: dict[str, str]) -> str:
    """`strong_script` with each question's gold letter filled in (Z for a wrong answer, A for an unknown question)."""
    q = conv[-1]["content"].split("\n")[0]
    return strong_script(conv, 0, None).replace("GOLD", golds.get(q, "A")).replace("WRONG", "Z")


@pytest.fixture
def scripted_strong(monkeypatch):
    """Replace the strong model of in-process runs by the script, behind the real SQLite cache."""
    built = []
    real = context_mod.build_backend

    def fake_build(cfg, cache_path=None, field="model"):
        if cfg.batch_size == 16:  # the strong config in recipe_dict
            golds, caps = {}, []

            def script(conv, i, sampling):
                caps.append((conv[-1]["content"].startswith("Question:"), sampling.max_tokens))
                return strong_answer(conv, golds)

            b = CachedBackend(ScriptedBackend(script, f"strong:{Path(cfg.model).name}"), CallCache(cache_path))
            b.golds, b.caps = golds, caps
            built.append(b)
            return b
        return real(cfg, cache_path=cache_path)

    monkeypatch.setattr(context_mod, "build_backend", fake_build)
    return built


@pytest.fixture
def strong_knows_golds(scripted_strong, monkeypatch):
    """The script answers with each question's gold letter when the draft helps."""
    orig = run_mod.Run.strong.fget

    def strong(self):
        b = orig(self)
        for e in self.task.train + self.task.test:
            b.golds[f"Question: {e.question}"] = e.gold
        return b

    monkeypatch.setattr(run_mod.Run, "strong", property(strong))
    return scripted_strong


def test_whole_run_on_tiny_models_then_skip(tmp_path, tiny_lm, strong_knows_golds):
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task={**TASK, "sft_corpus": True})
    d["eval"]["limit"] = 3  # the recipe's split only: the recall probe stays whole
    recipe = load_recipe(write_recipe(tmp_path, d))
    run = run_mod.Run(recipe)
    run.run_all()
    d = recipe.run_dir
    for f in ["config.yaml", "sft/adapter/adapter_config.json", "sft/merged/config.json", "sft/train.jsonl",
              "round_1/drafts.jsonl", "round_1/refinements.jsonl", "round_1/scores.jsonl", "round_1/pairs.jsonl",
              "round_1/mining_stats.json", "round_1/adapter/adapter_config.json", "round_1/train_log.jsonl",
              "eval/predictions.jsonl", "eval/results.json", "eval/results.md", "eval/results.csv",
              "eval_recall/results.json", "report.md"]:
        assert (d / f).exists(), f
    sft_rows = read_jsonl(d / "sft/train.jsonl")
    recited = [r["completion"][0]["content"] for r in sft_rows if r["prompt"][0]["content"].startswith("Recite")]
    q = run.questions
    assert sorted(f for r in recited for f in r.split("\n")) == sorted(run.task.corpus)  # each fact once, packed
    assert len(sft_rows) == len(q.sft) + len(recited) and len(recited) < len(run.task.corpus)
    assert all(r["completion"][0]["content"].startswith("Background:") for r in sft_rows[: len(q.sft)])
    # SFT never sees a mined or a validation question; the three roles cover the training split
    trained = {r["prompt"][0]["content"] for r in sft_rows}
    assert not trained & {run.prompter.draft_prompt(e)[0]["content"] for e in q.mining + q.sft_valid}
    assert sorted(e.id for e in q.sft + q.sft_valid + q.mining) == sorted(e.id for e in run.task.train)
    assert len(q.mining) == 6 and len(q.sft_valid) == 4  # every reasoning question (share 1.0); the least valid
    assert read_json(d / "sft/manifest.json")["counts"]["recall"] is not None
    assert len(read_jsonl(d / "sft/recall.jsonl")) == 4
    stats = read_json(d / "round_1/mining_stats.json")
    pairs = read_jsonl(d / "round_1/pairs.jsonl")
    assert stats["candidates"] == 6 and stats["drafts_sampled"] >= 18 and stats["pairs"] == len(pairs) > 0
    assert stats["train_pairs"] == len(pairs) and stats["pairs_capped_per_fact"] == 0  # no draft states a fact line
    assert all(p["chosen_delta"] > 0 >= p["rejected_delta"] for p in pairs)
    results = read_json(d / "eval/results.json")
    assert set(results["systems"]) == {"weak_sft", "weak_aligned", "strong", "refine", "cowest"}
    for r in results["systems"].values():
        m = r["metrics"]["accuracy"]
        assert m["lo"] <= m["value"] <= m["hi"]
    assert results["systems"]["strong"]["metrics"]["accuracy"]["value"] == 0.0
    assert results["n"] == 3 and read_json(d / "eval_recall/results.json")["n"] == len(run.task.extra["recall"]) > 3
    assert "cowest - refine" in results["comparisons"]
    manifest = read_json(d / "round_1/mine.manifest.json")
    assert manifest["counts"]["pairs"] == len(pairs) and manifest["wall_s"] >= 0
    assert "## Stages" in (d / "report.md").read_text()
    html = (d / "report.html").read_text()
    assert 'id="results-table"' in html and "drill-data" in html
    assert all((d / "plots" / f"{p}.png").stat().st_size > 1000 for p in ("accuracy", "deltas", "cost_accuracy"))

    # `cowest report` rebuilds the report from the artifacts alone.
    from typer.testing import CliRunner

    from cowest.cli import app

    (d / "report.md").unlink()
    res = CliRunner().invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    assert "Mining, round 1" in (d / "report.md").read_text() and "CoWest" in res.output
    assert (d / "report.html").exists()

    # A second run skips every stage and makes no model calls.
    before = {p: p.stat().st_mtime_ns for p in d.rglob("*.jsonl")}
    run2 = run_mod.Run(recipe)
    run2.run_all()
    assert all(t == 0.0 for t in run2.timings.values())
    assert {p: p.stat().st_mtime_ns for p in d.rglob("*.jsonl")} == before


def test_ablations_formats_pair_subsets_and_strong_swap(tmp_path, tiny_lm, strong_knows_golds):
    alt = tmp_path / "alt_strong"
    shutil.copytree(tiny_lm.path, alt)
    abl = {"formats": ["direct", "cot"], "pair_fractions": [0.5, 1.0],
           "strong": {"backend": "hf", "model": str(alt), "batch_size": 16}}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", ablations=abl,
                    eval={"systems": ["strong", "refine", "cowest"], "n_bootstrap": 50})
    recipe = load_recipe(write_recipe(tmp_path, d))
    run = run_mod.Run(recipe)
    run.run_all()
    a = read_json(run.dir / "ablations/results.json")
    main = read_json(run.dir / "eval/results.json")["systems"]

    def acc(system):
        return main[system]["metrics"]["accuracy"]

    # Formats: the recipe's own format (cot) reuses the main evaluation; another format is a whole sub-run.
    assert [f["format"] for f in a["formats"]] == ["direct", "cot"]
    assert a["formats"][1] == {"format": "cot", "unaligned": acc("refine"), "aligned": acc("cowest")}
    sub = run.dir / "ablations/format-direct"
    assert all(r["completion"][0]["content"].startswith("Answer:") for r in read_jsonl(sub / "sft/train.jsonl"))
    assert {"refine", "cowest"} == set(read_json(sub / "eval/results.json")["systems"])
    assert not (run.dir / "ablations/format-cot").exists()
    # Pair subsets: 0 pairs is refinement, all pairs is CoWest, a half is its own DPO run on a nested subset.
    pairs = read_jsonl(run.dir / "round_1/pairs.jsonl")
    curve = a["pairs"]
    assert [c["n_pairs"] for c in curve] == [0, max(1, round(len(pairs) / 2)), len(pairs)]
    assert curve[0]["value"] == acc("refine")["value"] and curve[-1]["value"] == acc("cowest")["value"]
    half = read_jsonl(run.dir / "ablations/pairs-0.5/round_1/pairs.jsonl")
    assert all(p in pairs for p in half) and len(half) == curve[1]["n_pairs"]
    assert (run.dir / "ablations/pairs-0.5/round_1/adapter/adapter_config.json").exists()
    assert (run.dir / "ablations/pairs-0.5/sft").resolve() == (run.dir / "sft").resolve()
    # Strong swap: the same weak adapters, the other strong model.
    swap = a["strong_swap"]
    assert swap["strong_model"] == str(alt) and set(swap["systems"]) == {"strong", "refine", "cowest"}
    assert not list((run.dir / "ablations").rglob("cache.sqlite"))  # sub-runs share the run's call cache
    usage = read_json(run.dir / "ablations/strong-swap/eval/manifest.json")["usage"]
    assert any("alt_strong" in m for m in usage) and not any(m.endswith(":strong:" + tiny_lm.path.name) for m in usage)
    report = (run.dir / "report.md").read_text()
    assert "### Draft formats" in report and "### Number of preference pairs" in report and str(alt) in report
    assert (run.dir / "plots/pairs_curve.png").exists()
    # Re-running finds every sub-stage up to date.
    before = {p: p.stat().st_mtime_ns for p in (run.dir / "ablations").rglob("*.json")}
    run_mod.Run(recipe).ablate()
    after = {p: p.stat().st_mtime_ns for p in (run.dir / "ablations").rglob("*.json")}
    assert {p: t for p, t in after.items() if p.name != "results.json"} == {
        p: t for p, t in before.items() if p.name != "results.json"}


def test_changed_config_reruns_only_downstream(tmp_path, tiny_lm, scripted_strong):
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", eval={"systems": ["weak_sft"], "n_bootstrap": 50})
    recipe = load_recipe(write_recipe(tmp_path, d))
    run_mod.Run(recipe).sft()
    sft_manifest = read_json(recipe.run_dir / "sft/manifest.json")
    changed = load_recipe(write_recipe(tmp_path, d), ["mining.k=2"])
    r = run_mod.Run(changed)
    r.sft()
    assert r.timings["sft"] == 0.0  # mining knobs do not touch SFT
    assert read_json(recipe.run_dir / "sft/manifest.json") == sft_manifest


# ---------------------------------------------------------------- SIGKILL and resume, in subprocesses


def _cowest(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cowest", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(p: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-3000:]
    return out


def _kill_when(p: subprocess.Popen, ready, timeout: float = 300) -> None:
    t0 = time.time()
    while not ready():
        assert p.poll() is None, "finished before it could be killed: " + p.stdout.read()[-2000:]
        assert time.time() - t0 < timeout, "never reached the kill point"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()


def _rows(cache: Path, identity: str = "") -> int:
    """Completions in the call cache (of models whose identity contains `identity`)."""
    try:
        with sqlite3.connect(cache) as c:
            return c.execute("SELECT COUNT(*) FROM completions WHERE identity LIKE ?", (f"%{identity}%",)).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.integration
def test_sigkill_during_sft_and_mining_resumes_to_the_same_artifacts(tmp_path, tiny_lm):
    slow = {"sft": {"max_steps": 60, "per_device_train_batch_size": 4, "max_length": 512, "logging_steps": 1},
            "mining": {"k": 4, "n_questions": 6},
            "collab": {"draft_max_tokens": 48, "strong_max_tokens": 48, "reask_max_tokens": 4},
            "task": {**TASK, "options": {**TASK["options"], "n_mining": 24}}}
    strong = tmp_path / "strong_lm"  # a second copy, so the two roles have their own identity and usage
    shutil.copytree(tiny_lm.path, strong)
    ref = write_recipe(tmp_path, recipe_dict(tiny_lm.path, tmp_path / "runs", name="ref", strong_path=strong, **slow))
    killed = write_recipe(tmp_path, recipe_dict(tiny_lm.path, tmp_path / "runs", name="killed", strong_path=strong, **slow))
    kdir = tmp_path / "runs" / "killed"

    # Reference: uninterrupted.
    _finish(_cowest("sft", str(ref)))
    _finish(_cowest("mine", str(ref)))

    # SIGKILL in the middle of SFT training, then resume.
    p = _cowest("sft", str(killed))
    log = kdir / "sft" / "train_log.jsonl"
    _kill_when(p, lambda: log.exists() and len(log.read_text().splitlines()) >= 3)
    assert not (kdir / "sft" / "manifest.json").exists() and not (kdir / "sft" / "adapter").exists()
    _finish(_cowest("sft", str(killed)))
    rdir = tmp_path / "runs" / "ref"
    assert adapter_hash(kdir / "sft" / "adapter") == adapter_hash(rdir / "sft" / "adapter")
    # The resumed run's log holds its own 60 steps, not the killed run's too.
    assert len([r for r in read_jsonl(kdir / "sft" / "train_log.jsonl") if "loss" in r]) == 60

    # SIGKILL in the middle of mining (after some model calls were cached), then resume.
    p = _cowest("mine", str(killed))
    _kill_when(p, lambda: _rows(kdir / "cache.sqlite", "strong_lm") > 0)  # the weak model drafts first
    assert not (kdir / "round_1" / "mine.manifest.json").exists()
    cached_before = _rows(kdir / "cache.sqlite")
    _finish(_cowest("mine", str(killed)))
    for f in ("drafts", "refinements", "scores", "pairs"):
        assert read_jsonl(kdir / "round_1" / f"{f}.jsonl") == read_jsonl(rdir / "round_1" / f"{f}.jsonl"), f
    # The resumed run did not repeat the calls that finished before the kill.
    usage = read_json(kdir / "round_1" / "mine.manifest.json")["usage"]
    ref_usage = read_json(rdir / "round_1" / "mine.manifest.json")["usage"]
    strong_usage = next(u for m, u in usage.items() if "strong_lm" in m)
    ref_strong = next(u for m, u in ref_usage.items() if "strong_lm" in m)
    assert cached_before > 0 and strong_usage["cache_hits"] > 0
    assert strong_usage["calls"] < ref_strong["calls"]


def test_validation_slices_heldout_pairs_and_draft_diagnostics(tmp_path, tiny_lm, strong_knows_golds):
    """SFT keeps its best epoch on held-out fact wordings; DPO never trains on the held-out mined questions, logs
    held-out reward figures per epoch, and `eval_valid` refines SFT vs aligned drafts on exactly those questions."""
    task = {**TASK, "options": {**TASK["options"], "validation_wordings": 1, "n_mining": 8, "n_sft_reasoning": 4}}
    ev = {"systems": ["weak_sft", "weak_aligned", "strong", "refine", "cowest"], "n_bootstrap": 100,
          "strong_max_tokens": 24}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task=task, eval=ev,
                    mining={"k": 3, "where": {"kind": "reasoning"}, "heldout_fraction": 0.25, "mode": "rank",
                            "strategy": "exhaustive"},
                    sft={"num_train_epochs": 2, "per_device_train_batch_size": 8, "max_length": 512},
                    dpo={"num_train_epochs": 2, "per_device_train_batch_size": 2, "max_length": 512})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    run.train_and_evaluate()
    out = run.dir
    # Mining keeps collab.strong_max_tokens (16); every evaluation call gets eval.strong_max_tokens (24).
    # strong backends are rebuilt after training; re-asks have their own cap
    firsts = [cap for b in strong_knows_golds for first, cap in b.caps if first]
    mined = 8 * (1 + 3)  # strong alone + k=3 refinements per mined question, before any evaluation
    assert set(firsts[:mined]) == {16} and set(firsts[mined:]) == {24} and len(firsts) > mined
    sft_log = read_jsonl(out / "sft/train_log.jsonl")
    assert [r["epoch"] for r in sft_log if "eval_loss" in r] == [1.0, 2.0]
    assert not list((out / "sft").glob("checkpoint-*"))
    taught = [e for e in run.task.train if e.metadata["kind"] != "reasoning"]  # the mined questions stay unseen
    assert len(read_jsonl(out / "sft/train.jsonl")) == len(taught) == len(run.task.train) - 8
    valid_ids = {e.id for e in run.task.extra["sft_valid"]}
    assert valid_ids and not valid_ids & {e.id for e in run.task.train + run.task.extra["recall"]}
    assert read_json(out / "eval_sft_valid/results.json")["n"] == len(valid_ids)

    held = set(read_json(out / "round_1/heldout.json"))
    stats = read_json(out / "round_1/mining_stats.json")
    assert len(held) == stats["heldout_questions"] == 2  # a quarter of 8 mined questions
    train_pairs = read_jsonl(out / "round_1/pairs.jsonl")
    held_pairs = read_jsonl(out / "round_1/pairs_heldout.jsonl")
    assert not {p["question_id"] for p in train_pairs} & held
    assert {p["question_id"] for p in held_pairs} <= held
    assert stats["train_pairs"] == len(train_pairs) and stats["heldout_pairs"] == len(held_pairs)
    assert held_pairs  # the scripted strong model makes draft length decide, so every question has a pair
    dpo = read_json(out / "round_1/dpo.manifest.json")["counts"]
    assert [h["epoch"] for h in dpo["heldout"]] == [1.0, 2.0]
    assert all("rewards/accuracies" in h and "rewards/margins" in h for h in dpo["heldout"])
    # The DPO check drafts on the mining questions outside the training pairs (fewer than 8: too few to steer by)
    mined_ids = {e.id for e in run.task.train if e.metadata["kind"] == "reasoning"}
    unseen = mined_ids - {p["question_id"] for p in train_pairs}
    assert held <= unseen and dpo["recall"]["questions"] == len(unseen) < 8
    assert dpo["recall"]["measured"] and not dpo["recall"]["steered"] and not dpo["recall"]["undone"]
    assert [e["epoch"] for e in dpo["recall"]["epochs"]] == [1.0, 2.0] and dpo["recall"]["kept_epoch"] == 2.0
    # each epoch carries the held-out margin TRL logged for it (too few held-out pairs to undo on: measured only)
    assert [e["heldout_margin"] for e in dpo["recall"]["epochs"]] == [h["rewards/margins"] for h in dpo["heldout"]]
    assert dpo["recall"]["heldout_pairs"] == len(held_pairs) < 4 and dpo["recall"]["because"] is None
    checked = read_jsonl(out / "round_1/recall.jsonl")
    assert {r["question_id"] for r in checked} == unseen and len(checked) == 3 * len(unseen)
    assert not list((out / "round_1").glob("checkpoint-*"))
    valid = read_json(out / "eval_valid/results.json")
    assert valid["n"] == len(held) and valid["split"] == "valid"
    from cowest.stages.evaluate import served_default
    assert read_json(out / "eval_valid/manifest.json")["counts"]["served_default"] == served_default(valid)
    assert {r["question_id"] for r in read_jsonl(out / "eval_valid/predictions.jsonl")} == held

    res = read_json(out / "eval/results.json")
    # The best single model of the test's comparisons is the one that did best on the held-out mined questions.
    singles = ("weak_sft", "weak_aligned", "strong")
    chosen = max(singles, key=lambda n: valid["systems"][n]["score"]["value"])
    assert res["best_single"]["system"] == chosen and res["best_single"]["rule"] == "validation"
    assert [k for k, c in res["comparisons"].items() if c["best_single"]] == [f"refine - {chosen}", f"cowest - {chosen}"]
    for name in ("strong", "refine", "cowest"):
        assert 0.0 <= res["systems"][name]["truncated_share"] <= 1.0
    diag = res["drafts"]
    assert set(diag) == {"sft", "aligned"} and "changed_vs_sft" in diag["aligned"]
    preds = {(r["system"], r["question_id"]): r for r in read_jsonl(out / "eval/predictions.jsonl")}
    test = run.task.test
    helped = sum(preds["cowest", e.id]["score"] > preds["strong", e.id]["score"] for e in test) / len(test)
    assert diag["aligned"]["helped"] == helped
    assert diag["sft"]["states_fact"] == sum(
        e.metadata["fact_value"] in preds["refine", e.id]["draft"] for e in test) / len(test)

    # Alignment settings are compared on the held-out mined questions only.
    settings = [{"learning_rate": 1e-3}, {"alignment": "kto", "learning_rate": 1e-3}, {}]
    run.recipe = run.recipe.model_copy(update={"ablations": AblationConfig(dpo_settings=settings)})
    search = run.ablate()["dpo_search"]
    assert [s["setting"]["alignment"] for s in search] == ["dpo", "kto", "dpo"]
    # The recipe's own setting is the run itself, not retrained.
    assert not (out / "ablations/dpo-2").exists()
    assert search[2]["valid_stage"] == read_json(out / "eval_valid/manifest.json")["key"]
    assert search[2]["cowest"] == valid["systems"]["cowest"]["metrics"]["accuracy"]
    for i, s in enumerate(search[:2]):
        sub = out / f"ablations/dpo-{i}"
        assert read_json(sub / "round_1/dpo.manifest.json")["inputs"]["dpo"]["learning_rate"] == 1e-3
        assert {r["question_id"] for r in read_jsonl(sub / "eval_valid/predictions.jsonl")} == held
        assert s["valid_n"] == len(held) and not (sub / "eval").exists()  # the test split is never touched
        assert s["refine"] == valid["systems"]["refine"]["metrics"]["accuracy"]  # same SFT drafts, same calls
    from cowest.report import build_report

    assert "Alignment settings on held-out mined questions" in build_report(out)["report.md"].read_text()

    # The published files alone carry the training evidence and the settings search into the README.
    from cowest.publish import ablations_markdown, diagnostics_markdown, publish

    pub = tmp_path / "results" / "tiny"
    (out / "config.yaml").write_text(dump_recipe(run.recipe))  # run_all writes it; this test ran the stages alone
    publish(out, pub)
    assert not list(pub.rglob("adapter")) and not list(pub.rglob("cache.sqlite"))
    diag_md = diagnostics_markdown(pub)
    assert "SFT validation wordings, sft drafts" in diag_md and "held-out reward accuracy" in diag_md
    assert f"| train_pairs | {len(train_pairs)} |" in diag_md and "Held-out mined questions (2)" in diag_md
    assert "Alignment settings on held-out mined questions" in ablations_markdown(pub)


def test_sft_trains_on_while_recall_is_below_target(tmp_path, tiny_lm, monkeypatch, caplog):
    """sft_recall: one more stint per extension while validation recall < target; the best adapter is kept."""
    from cowest.stages import sft as sft_stage

    task = {**TASK, "options": {**TASK["options"], "validation_wordings": 1}}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task=task,
                    sft={"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 512},
                    sft_recall={"target": 0.9, "extra_epochs": 1, "max_extensions": 2, "min_questions": 1})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    real = sft_stage.measure_recall
    # the real measurement on the first adapter, then scripted ones: the middle adapter is the best
    seen: list[tuple[str, float]] = []

    def scripted(ctx, adapter, examples):
        m = real(ctx, adapter, examples)
        if seen:
            m["recall"] = [0.5, 0.25][len(seen) - 1]
        seen.append((adapter_hash(adapter), m["recall"]))
        return m

    monkeypatch.setattr(sft_stage, "measure_recall", scripted)
    with caplog.at_level("WARNING"):
        counts = run.sft()["counts"]
    assert len(seen) == 3 and len({h for h, _ in seen}) == 3  # each extension trained the adapter further
    assert 0.0 <= seen[0][1] < 0.5  # a random tiny model states few of the doses
    out = run.dir / "sft"
    assert adapter_hash(out / "adapter") == seen[1][0]  # the best one, not the last
    assert counts["extensions"] == 1 and counts["recall"] == 0.5 and counts["recall_measure"] == "fact"
    assert read_json(out / "extensions.json")["kept"] == 1
    assert (out / "train_log_ext1.jsonl").exists() and (out / "train_log_ext2.jsonl").exists()
    assert not list(out.glob("adapter_ext*"))
    assert [w["code"] for w in counts["warnings"]] == ["sft_low_recall"] and "below sft_recall.target" in caplog.text
    # the measurement's rows say, per validation question, what the draft stated against the fact it needed
    rows = read_jsonl(out / "recall.jsonl")
    assert [r["question_id"] for r in rows] == [e.id for e in run.task.extra["sft_valid"]]
    assert all(r["fact"] == e.metadata["fact_value"] for r, e in zip(rows, run.task.extra["sft_valid"]))
    monkeypatch.setattr(sft_stage, "measure_recall", real)
    run.evaluate(["weak_sft"], name="eval_sft_valid", split="sft_valid")  # the same drafts, from the call cache
    drafts = {r["question_id"]: r["draft"] for r in read_jsonl(run.dir / "eval_sft_valid/predictions.jsonl")}
    assert drafts == {r["question_id"]: r["draft"] for r in rows}


def test_a_validation_slice_too_small_to_steer_measures_and_warns_but_does_not_extend(tmp_path, tiny_lm, caplog):
    """sft_recall.min_questions: on fewer validation questions a recall difference is noise, so SFT is not extended."""
    task = {**TASK, "options": {**TASK["options"], "validation_wordings": 1}}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task=task,
                    sft={"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 512},
                    sft_recall={"target": 0.9, "extra_epochs": 1, "max_extensions": 2, "min_questions": 1000})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    with caplog.at_level("WARNING"):
        counts = run.sft()["counts"]
    assert counts["extensions"] == 0 and counts["recall"] < 0.9
    assert "cannot tell a better adapter from a worse one" in caplog.text and "min_questions 1000" in caplog.text
    assert not (run.dir / "sft" / "train_log_ext1.jsonl").exists()
    assert [h["extension"] for h in read_json(run.dir / "sft" / "extensions.json")["history"]] == [0]


def test_a_users_domain_gets_its_own_validation_slice_and_a_weak_model_that_learnt_nothing_stops_the_run(
        tmp_path, tiny_lm):
    """A jsonl domain with a fact file: SFT holds out validation questions, checks its drafts against each question's
    reference fact, and a model that states none of them stops `run` before mining (checks.on_fail: warn goes on)."""
    facts = [f"Part KT-{100 + i} carries a {3 * i + 5}-month warranty." for i in range(12)]
    (tmp_path / "facts.txt").write_text("\n".join(facts) + "\n")
    rows = [{"id": f"f{i}", "question": f"How many months of warranty does part KT-{100 + i} carry?",
             "answer": f"{3 * i + 5} months", "kind": "fact"} for i in range(12)]
    rows += [{"id": f"r{i}", "question": f"Part KT-{100 + i} was fitted {i + 2} months ago. How many months of "
              "warranty are left?", "answer": str(2 * i + 3), "kind": "reasoning"} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = {"name": "jsonl", "type": "short_answer", "path": str(tmp_path / "train.jsonl"),
            "corpus_path": str(tmp_path / "facts.txt"), "sft_corpus": True, "fields": {"gold": "answer"},
            "test_fraction": 0.25}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", task=task, sft_recall={"target": None},
                    mining={"k": 2, "where": {"kind": "reasoning"}, "share": 0.5})
    d.pop("checks")
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    q = run.questions
    assert q.sft_valid and not {e.id for e in q.sft_valid} & {e.id for e in q.sft + q.mining}
    assert {e.metadata["kind"] for e in q.mining} == {"reasoning"}
    assert all(e.metadata["reference_fact"] in facts for e in q.sft_valid)
    with pytest.raises(StageCheckError, match="SFT check failed"):
        run.train_and_evaluate()
    assert not (run.dir / "round_1").exists()  # no strong call was spent
    counts = read_json(run.dir / "sft/manifest.json")["counts"]
    assert counts["recall"] < 0.2 and counts["recall_measure"] == "fact"
    assert counts["questions"] == {"sft": len(q.sft), "sft_valid": len(q.sft_valid), "mining": len(q.mining)}
    # The verdict is kept with the stage: a re-run stops again at once, and on_fail: warn goes on to mining.
    with pytest.raises(StageCheckError):
        run_mod.Run(run.recipe).train_and_evaluate()
    warn = run.recipe.model_copy(update={"checks": run.recipe.checks.model_copy(update={"on_fail": "warn"})})
    r2 = run_mod.Run(warn)
    r2.sft()
    assert r2.timings["sft"] == 0.0  # on_fail is not an input of the stage
    r2.mine(1)
    assert (run.dir / "round_1/mining_stats.json").exists()


def test_too_few_pairs_skip_alignment_and_cowest_is_reported_as_refinement(tmp_path, tiny_lm, strong_knows_golds):
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", checks={"min_sft_recall": 0.0, "min_pairs": 10_000},
                    eval={"systems": ["weak_sft", "weak_aligned", "refine", "cowest"], "n_bootstrap": 50})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    run.run_all()
    dpo = read_json(run.dir / "round_1/dpo.manifest.json")["counts"]
    assert dpo["skipped"] and [w["code"] for w in dpo["warnings"]] == ["alignment_skipped"]
    assert not (run.dir / "round_1/adapter").exists()
    assert run.weak_config("aligned") == run.weak_config("sft")  # the round keeps the SFT model
    res = read_json(run.dir / "eval/results.json")
    assert res["alignment_skipped"] == ["round_1"]
    assert "alignment skipped" in res["systems"]["cowest"]["label"]
    assert "alignment skipped" in res["systems"]["weak_aligned"]["label"]
    assert "alignment skipped" not in res["systems"]["refine"]["label"]
    rows = read_jsonl(run.dir / "eval/predictions.jsonl")
    by = {(r["system"], r["question_id"]): r["text"] for r in rows}
    assert all(by["cowest", q] == by["refine", q] for s, q in by if s == "refine")
    assert "alignment skipped" in (run.dir / "report.md").read_text()


def test_on_policy_alignment_trains_grpo_with_the_collaborative_reward_within_the_budget(
        tmp_path, tiny_lm, strong_knows_golds):
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", alignment="grpo",
                    grpo={"max_steps": 6, "num_generations": 2, "per_device_train_batch_size": 2},
                    mining={"k": 2, "where": {"kind": "reasoning"}, "share": 1.0, "heldout_fraction": 0.34,
                            "strong_call_budget": 8},
                    eval={"systems": ["weak_sft", "weak_aligned", "refine", "cowest"], "n_bootstrap": 50})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    run.train_and_evaluate()
    out = run.dir / "round_1"
    counts = read_json(out / "dpo.manifest.json")["counts"]
    assert counts["method"] == "grpo" and counts["heldout_questions"] == 2 and counts["questions"] == 4
    assert not (out / "mine.manifest.json").exists()  # on-policy alignment mines as it trains
    # it stopped once the budget was spent: at most one step's requests beyond it (re-asks of unreadable answers too)
    assert 8 <= counts["strong_calls"] <= 8 + 2 * 4 and counts["steps"] < 6
    rewards = read_jsonl(out / "rewards.jsonl")
    assert len(rewards) == counts["drafts_scored"] and all(r["delta"] == r["score"] - r["alone"] for r in rewards)
    held = set(read_json(out / "heldout.json"))
    assert not held & {r["question_id"] for r in rewards}  # validation questions are never trained on
    assert (out / "adapter/adapter_config.json").exists()
    assert run.weak_config("aligned").adapter == str(out / "adapter")
    assert {r["question_id"] for r in read_jsonl(run.dir / "eval_valid/predictions.jsonl")} == held
    assert set(read_json(run.dir / "eval/results.json")["systems"]) == {"weak_sft", "weak_aligned", "refine", "cowest"}


def test_alignment_variants_at_the_same_strong_call_budget_are_judged_on_held_out_questions(
        tmp_path, tiny_lm, strong_knows_golds):
    mining = {"k": 2, "where": {"kind": "reasoning"}, "share": 1.0, "heldout_fraction": 0.34,
              "strong_call_budget": 12, "pair_target": 4}
    d = recipe_dict(tiny_lm.path, tmp_path / "runs", mining=mining, ablations={"at_budget": ["rounds_2", "grpo", "drop_against_fact"]},
                    grpo={"max_steps": 4, "num_generations": 2, "per_device_train_batch_size": 2},
                    eval={"systems": ["weak_sft", "weak_aligned", "strong", "refine", "cowest"], "n_bootstrap": 50})
    run = run_mod.Run(load_recipe(write_recipe(tmp_path, d)))
    run.train_and_evaluate()
    rows = run.ablate()["at_budget"]
    assert [r["variant"] for r in rows] == ["dpo, 1 round", "dpo, 2 rounds", "grpo (on-policy)",
                                           "dpo, 1 round, drop_against_fact: true"]
    held = set(read_json(run.dir / "round_1/heldout.json"))
    for r, sub in zip(rows[1:], ("at-budget-rounds_2", "at-budget-grpo", "at-budget-drop-against-fact")):
        sdir = run.dir / "ablations" / sub
        assert (sdir / "sft").resolve() == (run.dir / "sft").resolve()  # the same SFT model
        assert {p["question_id"] for p in read_jsonl(sdir / "eval_valid/predictions.jsonl")} == held
        assert not (sdir / "eval").exists()  # the test split is never touched
        assert r["valid_n"] == len(held) and "diff" in r["cowest_minus_refine"]
    two = read_json(run.dir / "ablations/at-budget-rounds_2/round_1/mine.manifest.json")
    assert two["inputs"]["mining"]["strong_call_budget"] == 6  # the budget split between the rounds
    drop = read_json(run.dir / "ablations/at-budget-drop-against-fact/round_1/mine.manifest.json")
    assert drop["inputs"]["mining"]["drop_against_fact"] is True and drop["inputs"]["mining"]["strong_call_budget"] == 12
    # requests, re-asks of unreadable answers included (the tiny strong model needs many): within twice the budget
    assert all(0 < r["strong_calls"] <= 2 * 12 for r in rows)
    from cowest.report import build_report
    assert "Alignment at the same strong-call budget" in build_report(run.dir)["report.md"].read_text()
