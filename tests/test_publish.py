"""Publishing a run's small result files, and README tables generated from the published files."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runs import make_run
from typer.testing import CliRunner

from cowest.cli import app
from cowest.compare import compare_markdown, write_comparison
from cowest.io import read_json, write_json
from cowest.publish import PublishError, check_readme, eval_markdown, publish, render_block, render_readme

ROOT = Path(__file__).resolve().parents[1]

SCORES = {"strong": [1, 0, 0, 0], "refine": [1, 0, 1, 0], "cowest": [1, 1, 1, 0]}
SMALL = [
    "config.yaml", "report.md", "sft/manifest.json", "sft/train_log.jsonl",
    "round_1/mine.manifest.json", "round_1/dpo.manifest.json", "round_1/mining_stats.json", "round_1/pairs.jsonl",
    "round_1/train_log.jsonl", "eval/manifest.json", "eval/results.json", "eval/results.csv", "eval/results.md",
    "eval/predictions.jsonl", "eval_valid/results.json", "eval_valid/predictions.jsonl",
]
BIG = [
    "cache.sqlite", "sft/train.jsonl", "sft/adapter/adapter_model.safetensors", "sft/adapter/adapter_config.json",
    "sft/merged/model.safetensors", "sft/merged/config.json", "round_1/adapter/manifest.json",
    "round_1/merged/tokenizer.json", "plots/accuracy.png", "report.html", "ablations/direct/eval/results.json",
]


def full_run(root: Path, name: str = "demo") -> Path:
    """A run directory with every kind of artifact, small and big."""
    d = make_run(root, name, 0, SCORES, valid={"strong": 0.5, "refine": 0.6})
    for rel in SMALL + BIG:
        p = d / rel
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"{rel}\n")
    return d


def files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def test_publish_copies_only_the_small_result_files(tmp_path: Path) -> None:
    run = full_run(tmp_path / "runs")
    dest = tmp_path / "results" / "demo"
    out = publish(run, dest)
    assert files(dest) == set(SMALL) and {str(p.relative_to(dest)) for p in out} == set(SMALL)
    assert (dest / "eval/results.json").read_bytes() == (run / "eval/results.json").read_bytes()

    # a second publish replaces the first as a whole, leaving no temporary siblings
    (run / "eval_valid/predictions.jsonl").unlink()
    (dest / "stray.txt").write_text("old")
    publish(run, dest)
    assert files(dest) == set(SMALL) - {"eval_valid/predictions.jsonl"}
    assert [p.name for p in dest.parent.iterdir()] == ["demo"]


def test_publish_compare_dir_and_refusals(tmp_path: Path) -> None:
    run = full_run(tmp_path / "runs")
    write_comparison([run], tmp_path / "runs" / "cmp", n_boot=50)
    (tmp_path / "runs" / "cmp" / "junk.bin").write_text("x")
    publish(tmp_path / "runs" / "cmp", tmp_path / "pub")
    assert files(tmp_path / "pub") == {"compare.json", "compare.md"}
    with pytest.raises(PublishError, match="would replace"):
        publish(run, tmp_path / "runs")  # the parent of the run: it would be deleted
    with pytest.raises(PublishError, match="would replace"):
        publish(run, run)
    with pytest.raises(PublishError, match="neither a run"):
        publish(tmp_path / "pub" / "..", tmp_path / "elsewhere")
    assert (run / "cache.sqlite").exists()


README = """# Project

Intro.

<!-- cowest:table results/demo eval -->
old table
<!-- /cowest:table -->

Between.

<!-- cowest:table results/cmp compare -->
<!-- /cowest:table -->

End.
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo with a published run, a published comparison and a README whose two tables are stale."""
    run = full_run(tmp_path / "runs")
    write_comparison([run], tmp_path / "runs" / "cmp", n_boot=50)
    publish(run, tmp_path / "results" / "demo")
    publish(tmp_path / "runs" / "cmp", tmp_path / "results" / "cmp")
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def test_render_and_check_readme(repo: Path) -> None:
    readme = repo / "README.md"
    assert check_readme(readme) == ["results/demo eval", "results/cmp compare"]
    text = render_readme(readme.read_text(), repo)
    assert "old table" not in text and text.startswith("# Project\n\nIntro.\n") and text.endswith("\nEnd.\n")
    assert "| CoWest (cowest) | 75.0 [0.0, 100.0] | 75.0 [0.0, 100.0] | 120 |" in text  # accuracy, f1, tok/q
    assert "90% bootstrap confidence intervals" in text  # the published run's eval.confidence
    assert compare_markdown(read_json(repo / "results/cmp/compare.json")) in text
    readme.write_text(text)
    assert check_readme(readme) == []
    assert render_readme(text, repo) == text

    # a changed published number makes its block stale, and only that one
    res = read_json(repo / "results/demo/eval/results.json")
    res["systems"]["cowest"]["metrics"]["accuracy"]["value"] = 0.5
    write_json(repo / "results/demo/eval/results.json", res)
    assert check_readme(readme) == ["results/demo eval"]


def test_eval_table_shows_truncation_and_errors(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", 0, SCORES, extra={"cowest": {"truncated_share": 0.125}})
    md = eval_markdown(run)
    assert "| system | accuracy | f1 | cut at token cap % | strong tok/q | wall s |" in md and "| 12.5 | 120 |" in md
    with pytest.raises(PublishError, match="unknown kind"):
        render_readme("<!-- cowest:table r table -->\n<!-- /cowest:table -->\n", tmp_path)
    with pytest.raises(PublishError, match="outside"):
        render_readme("<!-- cowest:table ../x eval -->\n<!-- /cowest:table -->\n", run)


def test_cli_publish_and_readme(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    runner = CliRunner()
    res = runner.invoke(app, ["publish", "runs/demo", "results/demo2"])
    assert res.exit_code == 0, res.output
    assert files(repo / "results/demo2") == set(SMALL)
    res = runner.invoke(app, ["publish", "results", "results/x"])
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "Traceback" not in res.output

    res = runner.invoke(app, ["readme", "--check"])
    assert res.exit_code == 1 and "results/demo eval" in res.stderr and "results/cmp compare" in res.stderr
    res = runner.invoke(app, ["readme"])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["readme", "--check", "--readme", "README.md"]).exit_code == 0
    assert runner.invoke(app, ["readme", "--check", "--readme", "nope.md"]).exit_code == 1


def test_reliability_block_renders_the_fault_benchmark(tmp_path: Path) -> None:
    from cowest.io import write_json
    from cowest.publish import render_block

    bench = {"requests": 10, "n": 3, "rate": 0.2, "timeout_s": 0.5, "max_retries": 5, "concurrency": 8,
             "machine": "2 CPUs", "faults": [{"fault": "http_429", "injected": 2, "identical": 10,
                                             "attempts_per_request": 1.2, "max_attempts": 2, "error": None}],
             "kill9": {"finished_before_kill": 4, "repeated": 0}, "dead": {"seconds": 1.4, "naive_seconds": 3.1},
             "hung": {"seconds": 4.4, "naive_seconds": 3.1}}
    write_json(tmp_path / "results/bench/faults.json", bench)
    text = render_block("results/bench", "faults", tmp_path)
    assert "| http_429 | 2 | 10/10 | 1.20 | 2 | - |" in text
    assert "0 finished calls repeated" in text and "failed the stage in 1.4 s" in text
    with pytest.raises(PublishError, match="faults.json missing"):
        render_block("results", "faults", tmp_path)


def test_throughput_blocks_render_the_concurrency_and_rerun_benchmarks(tmp_path: Path) -> None:
    from cowest.io import write_json
    from cowest.publish import render_block

    levels = [{"concurrency": 1, "wall_s": 40.0, "calls_per_s": 5.0, "vs_concurrency_1": 1.0, "bound_s": 40.0,
               "answered": 200},
              {"concurrency": 32, "wall_s": 1.6, "calls_per_s": 125.0, "vs_concurrency_1": 25.0, "bound_s": 1.25,
               "answered": 200}]
    limited = {"concurrency": 32, "server_limit": 16, "retry_after_s": 1.0, "wall_s": 4.0, "answered": 200,
               "limited": 90, "attempts_per_call": 1.45, "min_retry_gap_s": 1.02}
    write_json(tmp_path / "b/concurrency.json", {"machine": "2 CPUs", "requests": 200, "latency_s": 0.2,
                                                 "levels": levels, "rate_limited": limited})
    text = render_block("b", "concurrency", tmp_path)
    assert "| 32 | 1.60 | 125.0 | 25.00x | 1.25 | 200/200 |" in text
    assert "200/200 answered in 4.0 s, 90 429s, 1.45 attempts per call, earliest retry 1.02 s" in text
    runs = {"first run": {"wall_s": 800.0, "ran": ["sft", "mine"], "model_calls": 900, "cache_hits": 0},
            "re-run, unchanged": {"wall_s": 20.0, "ran": [], "model_calls": 0, "cache_hits": 0}}
    write_json(tmp_path / "b/rerun.json", {"machine": "2 CPUs", "recipe": "recipes/demo.yaml", "runs": runs})
    text = render_block("b", "rerun", tmp_path)
    assert "| first run | 800.0 | 100.0% | 900 | 0 | sft, mine |" in text
    assert "| re-run, unchanged | 20.0 | 2.5% | 0 | 0 | - |" in text
    with pytest.raises(PublishError, match="rerun.json missing: run `python bench/bench_rerun.py"):
        render_block("tests", "rerun", tmp_path)


def test_serving_block_renders_the_load_benchmark(tmp_path: Path) -> None:
    from cowest.io import write_json
    from cowest.publish import render_block

    def row(strong: str, c: int, rps: float) -> dict:
        return {"strong": strong, "concurrency": c, "requests": 8, "wall_s": 8 / rps, "throughput_rps": rps,
                "p50_s": 1.0, "p95_s": 2.5, "errors": 0, "mean_draft_batch": float(c)}

    rows = [row("llama.cpp", 1, 0.2), row("llama.cpp", 4, 0.3), row("stand-in", 1, 0.5), row("stand-in", 4, 1.5)]
    naive = row("stand-in, 1 draft/call", 4, 0.6)
    bench = {"machine": "2 CPUs", "requests": 8, "weak": "smollm2", "draft_max_tokens": 48, "strong_max_tokens": 64,
             "rows": rows, "batching": {"concurrency": 4, "batched": rows[-1], "one_at_a_time": naive, "speedup": 2.5}}
    write_json(tmp_path / "results/bench/serve.json", bench)
    text = render_block("results/bench", "serve", tmp_path)
    # each strong model's throughput is compared with its own concurrency-1 row
    assert "| llama.cpp | 4 | 26.7 | 0.300 | 1.50x | 1.00 | 2.50 | 0 | 4.0 |" in text
    assert "| stand-in | 4 | 5.3 | 1.500 | 3.00x |" in text
    assert "1.500 requests / s against 0.600 with one draft per weak call, **2.50x**" in text
    with pytest.raises(PublishError, match="serve.json missing"):
        render_block("results", "serve", tmp_path)


def test_overlap_and_training_blocks_render_their_benchmarks(tmp_path: Path) -> None:
    from cowest.io import write_json
    from cowest.publish import render_block

    row = {"workload": "mining", "slots": 16, "strong_calls": 600, "strong_bound_s": 18.8, "weak_s": 76.0,
           "weak_overlapped_s": 75.0,
           "bound_s": 75.0, "sequential_s": 96.0, "overlapped_s": 78.0, "sequential_vs_bound": 1.28,
           "overlapped_vs_bound": 1.04, "speedup": 1.23}
    write_json(tmp_path / "b/overlap.json", {"machine": "2 CPUs", "questions": 200, "k": 2, "latency_s": 0.5,
                                             "draft_tokens": 32, "rows": [row]})
    text = render_block("b", "overlap", tmp_path)
    assert "| mining | 16 | 600 | 75.0 (76.0) | 18.8 | 75.0 | 96.0 (1.28x) | 78.0 (1.04x) | 1.23x |" in text
    assert "200 questions (mining: 2 sampled drafts each" in text

    def variant(wall: float, speedup: float, **extra: float) -> dict:
        return {"wall_s": wall, "tokens_per_s": 1000 / wall, "speedup_vs_plain": speedup, "steps": 11,
                "train_loss": 2.0, **extra}

    write_json(tmp_path / "b/training.json", {
        "machine": "2 CPUs", "recipe": "recipes/demo.yaml", "epochs": 1, "sft_rows": 88, "dpo_pairs": 40,
        "sft": {"plain": variant(100.0, 1.0), "padding-free": variant(50.0, 2.0)},
        "dpo": {"plain": variant(40.0, 1.0, last_margin=0.1), "precomputed": variant(30.0, 1.33, last_margin=0.1)}})
    text = render_block("b", "training", tmp_path)
    assert "SFT, 88 rows, 1 epoch(s) per row (2 CPUs):" in text and "| padding-free | 50.0 | 20 | 2.00x | 11 | 2.000 |" in text
    assert "DPO, 40 pairs, 1 epoch(s) per row" in text and "| precomputed | 30.0 | 33 | 1.33x | 11 | 2.000 | 0.100 |" in text


def test_stage_rows_say_what_each_stage_did_and_its_checks():
    from cowest.report.stages import stage_outcome

    sft = stage_outcome("sft", {"examples": 90, "recall": 0.25, "recall_measure": "fact", "valid_questions": 12,
                                "extensions": 2})
    assert sft == "90 rows; drafts state the fact on 25.0% of 12 validation questions; 2 extension(s)"
    assert "recall not measured" in stage_outcome("sft", {"examples": 9, "recall": None})
    skipped = stage_outcome("round_1/dpo", {"pairs": 3, "skipped": True, "steps": 0})
    assert skipped.startswith("skipped: 3 pairs are too few")
    mined = stage_outcome("round_1/mine", {"pairs": 40, "train_pairs": 30, "heldout_pairs": 10, "questions": 20,
                                           "strong_requests": 80, "pairs_per_100_requests": 50.0, "evaluator": "judge"})
    assert "80 strong requests, 50.0 pairs per 100" in mined and mined.endswith("evaluator judge")
    assert "drew again" not in mined
    redrawn = stage_outcome("round_1/mine", {"pairs": 40, "redraws": 1, "questions_redrawn": 30,
                                             "questions_redrawn_differ": 9})
    assert "30 questions with one shown draft drew again, 9 then differed" in redrawn
    split = stage_outcome("round_1/mine", {"pairs": 40, "pairs_for_fact": 18, "pairs_against_fact": 0,
                                           "pairs_dropped_against_fact": 16})
    assert "drafts split on the fact: 18 pairs for it, 0 against (16 more dropped)" in split
    assert "fact file" not in split
    wrong = stage_outcome("round_1/mine", {"pairs": 40, "pairs_dropped_against_file": 7})
    assert "7 pairs left out for teaching against the fact file" in wrong
    capped = stage_outcome("round_1/mine", {"pairs": 40, "pairs_capped_per_fact": 12})
    assert "12 training pairs over the cap of pairs per fact line left out" in capped
    table = render_block("results/formulary-seed0", "stages", ROOT)  # a published run: one row per stage
    assert "| round_1/dpo |" in table and "| eval |" in table


def test_mining_block_says_how_each_row_met_the_call_cache(tmp_path: Path) -> None:
    from cowest.io import write_json
    from cowest.publish import render_block

    def row(name: str, calls: int, pairs: int, ratio: float) -> dict:
        return {"strategy": name, "questions": 36, "strong_requests": calls, "strong_calls_made": calls,
                "pairs": pairs, "questions_with_pair": 12, "pairs_per_100_calls": 100 * pairs / calls,
                "vs_exhaustive": ratio, "wall_s": 600.0}

    bench = {"machine": "2 CPUs", "run": "runs/r", "task": "jsonl", "data": "d.jsonl", "k": 4, "extra_drafts": 4,
             "draft_sections": ["Background"], "pair_target": 48, "strong_call_budget": 141,
             "rows": [row("exhaustive", 144, 29, 1.0), row("adaptive, alone first", 135, 43, 1.58)]}
    write_json(tmp_path / "old/mining.json", bench)
    assert "each way with an empty call cache (the recipe's stops" in render_block("old", "mining", tmp_path)
    write_json(tmp_path / "new/mining.json", {**bench, "adaptive_cache": "a copy of the run's call cache"})
    text = render_block("new", "mining", tmp_path)
    assert "| adaptive, alone first | 36 | 135 | 135 | 43 | 12 | 31.9 | 1.58x | 600 |" in text
    assert "the adaptive rows from a copy of the run's call cache, shared, each counting its requests" in text
