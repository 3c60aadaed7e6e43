"""`cowest run` end to end with the real offline models: SmolLM2-135M (HF, trained) and Qwen2.5-Coder-1.5B on llama.cpp,
on the README's worked example (examples/spare-parts; the session's `real_run`, tests/_real.py)."""

from __future__ import annotations

import re
import subprocess

import pytest
from _real import EXAMPLE, ROOT, SHIPPED, SYSTEMS

from cowest.io import read_json, read_jsonl


@pytest.mark.integration
def test_cowest_run_with_real_models(real_run):
    cmd, out, d = real_run.cmd, real_run.first, real_run.dir

    stats = read_json(d / "round_1" / "mining_stats.json")
    drafts = read_jsonl(d / "round_1" / "drafts.jsonl")
    assert len(drafts) >= stats["candidates"] * 3  # every mining question drafted k times (more where drafts split)
    # One SFT epoch already teaches the draft format (drafts are sampled at temperature 1).
    assert sum("Background:" in r["draft"] for r in drafts) >= len(drafts) // 3
    cal = stats["judge_calibration"]  # the judge was tried on gold against wrong answers before it scored anything
    assert cal["questions"] == 5 and 0.0 <= cal["auc"] <= 1.0
    assert stats["evaluator"] == ("judge" if cal["auc"] >= 0.9 else "rule")
    scores = [r["score"] for r in read_jsonl(d / "round_1" / "scores.jsonl")]
    assert all(0.0 <= x <= 1.0 for x in scores)
    if stats["evaluator"] == "rule":
        assert set(scores) <= {0.0, 1.0} and "judge_rejected" in {w["code"] for w in read_json(
            d / "round_1" / "mine.manifest.json")["counts"]["warnings"]}
    trained, held = (len(read_jsonl(d / "round_1" / f)) for f in ("pairs.jsonl", "pairs_heldout.jsonl"))
    assert stats["pairs"] == trained + held and stats["train_pairs"] == trained >= 1  # held-out pairs: validation
    sft = read_json(d / "sft" / "manifest.json")["counts"]
    assert sft["recall_measure"] == "fact" and 0.0 <= sft["recall"] <= 1.0  # the fact file's lines are checkable
    refinements = [r for r in read_jsonl(d / "round_1" / "refinements.jsonl") if r["k"] is not None]
    assert sum(r["answer"] is not None for r in refinements) >= len(refinements) * 0.8  # the strong model answers

    results = read_json(d / "eval" / "results.json")
    assert set(results["systems"]) == set(SYSTEMS) and results["n"] == 6
    for name, s in results["systems"].items():  # every system reports answered and cut-at-cap shares
        assert 0.0 <= s["answered"] <= 1.0 and 0.0 <= s["truncated_share"] <= 1.0, name
    strong = results["systems"]["strong"]
    assert strong["strong_completion_tokens_per_q"] > 0 and strong["strong_prompt_tokens_per_q"] > 0
    preds = read_jsonl(d / "eval" / "predictions.jsonl")
    # SuperICL shows the SFT model's answer-token confidence; retrieval shows two corpus passages.
    assert all(re.fullmatch(r"[A-D]\) .+ \(confidence [01]\.\d\d\)", r["draft"]) for r in preds if r["system"] == "supericl")
    assert all(r["draft"].count("\n\n") == 1 for r in preds if r["system"] == "retrieval")
    usage = read_json(d / "eval" / "manifest.json")["usage"]
    assert any(k.startswith("llamacpp:qwen2.5-coder-1.5b-instruct") for k in usage)
    table = (d / "eval" / "results.md").read_text()
    assert "answered %" in table and "cut at token cap %" in table
    assert "| CoWest (aligned draft -> strong) |" in out.stdout
    assert (d / "report.md").exists() and "Mining, round 1" in (d / "report.md").read_text()

    # Re-running the finished recipe makes zero model calls: every stage is skipped.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    ran = out.stderr.count(": running")
    assert ran >= 5 and again.stderr.count("up to date, skipped") == ran  # every stage the first run ran
    assert "starting strong model" not in again.stderr


@pytest.mark.integration
def test_worked_example_runs_as_shipped(real_run):
    """The README's worked example: its recipe file and data as shipped (the run cuts only budgets, tests/_real.py)."""
    d, out = real_run.dir, real_run.first

    # SFT: the question rows not mined or held out, whose backgrounds all come from facts.txt, then every fact line
    # `task.sft_corpus` times, packed a few to a row.
    facts = (EXAMPLE.parent / "facts.txt").read_text().splitlines()
    counts = read_json(d / "sft" / "manifest.json")["counts"]
    rows = read_jsonl(d / "sft" / "train.jsonl")
    n_q = counts["questions"]["sft"]
    targets = [r["completion"][0]["content"] for r in rows[:n_q]]
    assert all(t.startswith("Background: Part ") or t.startswith("Background: A part") for t in targets)
    assert not any("The relevant fact is" in t for t in targets)
    recited = [f for r in rows[n_q:] for f in r["completion"][0]["content"].split("\n")]
    assert sorted(recited) == sorted(facts * SHIPPED["task"]["sft_corpus"])
    assert counts["templated_backgrounds"] == 0 and counts["recall_measure"] == "fact"
    assert "targets have no explanation" not in out.stderr

    # Mining drafted for the reasoning questions (the file's `kind` column) that SFT never saw.
    stats = read_json(d / "round_1" / "mining_stats.json")
    assert stats["candidates"] == counts["questions"]["mining"] == 5  # 0.6 of the 8 reasoning questions
    mined = {r["question_id"] for r in read_jsonl(d / "round_1" / "drafts.jsonl")}
    assert mined and all(q.startswith("sp-r") for q in mined)

    results = read_json(d / "eval" / "results.json")
    assert results["n"] == 6 and set(SHIPPED["eval"]["systems"]) <= set(results["systems"])
    preds = read_jsonl(d / "eval" / "predictions.jsonl")
    shown = [r["draft"] for r in preds if r["system"] == "retrieval"]
    assert len(shown) == 6 and all(set(p.split("\n\n")) <= set(facts) for p in shown)  # the corpus file's lines
    assert 'data-filter="m-part-KT-3305"' in (d / "report.html").read_text()  # the data's own `part` column
