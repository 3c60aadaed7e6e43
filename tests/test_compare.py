"""Several seeds as one result: pooled paired differences, the best single model fixed off the test, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

import pytest
import yaml
from _runs import make_run
from typer.testing import CliRunner

from cowest.cli import app
from cowest.compare import CompareError, compare_markdown, compare_runs, write_comparison
from cowest.io import read_json
from cowest.tasks.metrics import paired_comparison

# Run A: on the test the best single model is weak_aligned, on validation it is strong.
A = {"strong": [1, 0, 0, 0], "weak_aligned": [1, 1, 0, 0], "weak_sft": [0, 0, 0, 1],
     "refine": [1, 0, 1, 0], "cowest": [1, 1, 1, 0], "supericl": [0, 1, 0, 0]}
VALID_A = {"strong": 0.8, "weak_aligned": 0.3, "weak_sft": 0.1}
# Run B: no eval_valid; refinement beats CoWest; refine's rows are written in reverse order.
B = {"strong": [0, 1, 0, 1, 1], "weak_aligned": [1, 1, 1, 1, 0], "refine": [1, 0, 1, 1, 1], "cowest": [0, 1, 1, 0, 1]}


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    a = make_run(tmp_path, "r-seed0", 0, A, valid=VALID_A, extra={"cowest": {"truncated_share": 0.25}})
    b = make_run(tmp_path, "r-seed1", 1, B, order={"refine": [4, 3, 2, 1, 0]})
    return [a, b]


def test_pooled_difference_is_one_paired_comparison_over_all_questions(runs: list[Path]) -> None:
    data = compare_runs(runs, n_boot=500, seed=3)
    d = data["diffs"]["cowest - refine"]
    xs, ys = A["cowest"] + B["cowest"], A["refine"] + B["refine"]
    diffs = [x - y for x, y in zip(xs, ys)]
    assert d["diff"] == pytest.approx(fmean(diffs)) and d["n"] == 9 and d["runs"] == 2
    assert d["lo"] <= d["diff"] <= d["hi"]
    # matched by question id (refine's rows of run B are reversed), pooled into a single resampling
    ref = paired_comparison(xs, ys, n_boot=500, seed=3, confidence=0.9)
    assert (d["lo"], d["hi"], d["p_value"]) == pytest.approx((ref["lo"], ref["hi"], ref["p_value"]))
    # per run as well, and the per-seed verdict
    per = [r["diffs"]["cowest - refine"]["diff"] for r in data["runs"]]
    assert per == pytest.approx([0.25, -0.2])
    assert [r["cowest_ge_refine"] for r in data["runs"]] == [True, False]
    assert data["cowest_ge_refine"] == {"count": 1, "of": 2}
    # pooled system scores: mean over all questions of all runs
    assert data["systems"]["cowest"]["value"] == pytest.approx(fmean(xs))
    assert data["systems"]["supericl"]["n"] == 4 and data["systems"]["supericl"]["runs"] == 1
    assert data["diffs"]["cowest - supericl"]["runs"] == 1
    assert "cowest - retrieval" not in data["diffs"]


def test_best_single_is_fixed_on_validation_not_on_the_test(runs: list[Path]) -> None:
    data = compare_runs(runs, n_boot=200)
    a, b = data["runs"]
    assert a["best_single"]["system"] == "strong" and a["best_single"]["rule"] == "validation"
    assert a["systems"]["weak_aligned"]["value"] > a["systems"]["strong"]["value"]  # the test would say otherwise
    assert b["best_single"] == {"system": "strong", "rule": "a priori", "detail": b["best_single"]["detail"]}
    assert "eval_valid" in b["best_single"]["detail"]
    d = data["diffs"]["cowest - best_single"]
    strong = A["strong"] + B["strong"]
    assert d["diff"] == pytest.approx(fmean(A["cowest"] + B["cowest"]) - fmean(strong))
    assert a["diffs"]["cowest - best_single"]["b"] == "strong"


def test_best_single_from_validation_can_be_a_weak_model(tmp_path: Path) -> None:
    run = make_run(tmp_path, "v", 0, A, valid={"strong": 0.2, "weak_sft": 0.9, "retrieval": 1.0})
    best = compare_runs([run], n_boot=100)["runs"][0]["best_single"]
    assert best["system"] == "weak_sft" and best["valid_scores"] == {"strong": 0.2, "weak_sft": 0.9}


def test_markdown_states_confidence_questions_and_rule(runs: list[Path]) -> None:
    md = compare_markdown(compare_runs(runs, n_boot=200))
    assert "90%" in md and "95%" not in md  # the runs' configured eval.confidence
    assert "| CoWest | 75.0 [0.0, 100.0] | 60.0 [0.0, 100.0] |" in md
    assert "| seed 0 | seed 1 | pooled |" in md
    assert "| cowest - refine (accuracy) | +" in md and "9 (2 runs)" in md
    assert "+25.0 [" in md and "-20.0 [" in md
    assert "a priori" in md and "validation" in md and "cut by the token cap" in md
    assert "in 1 of 2 runs" in md
    assert "80%" in compare_markdown(compare_runs(runs, n_boot=200, confidence=0.8))
    # compare.json written before the metric was stored: the per-seed cells' metric names it
    old = {k: v for k, v in compare_runs(runs, n_boot=200).items() if k != "score_metric"}
    assert "| cowest - refine (accuracy) | +" in compare_markdown(old)


def test_write_comparison_and_missing_files(runs: list[Path], tmp_path: Path) -> None:
    data = write_comparison(runs, tmp_path / "cmp", n_boot=100)
    assert read_json(tmp_path / "cmp" / "compare.json") == json.loads(json.dumps(data))
    assert (tmp_path / "cmp" / "compare.md").read_text() == compare_markdown(data)
    with pytest.raises(CompareError, match="results.json"):
        compare_runs([tmp_path / "nothing"])


def test_cli_compare(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["compare", *map(str, runs), "--out", str(out), "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    assert "| CoWest |" in res.stdout and (out / "compare.json").is_file()
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "empty"), "--out", str(out)])
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "Traceback" not in res.output


RECIPE = """\
name: t
output_dir: {out}
task: {{name: formulary}}
weak: {{backend: hf, model: w}}
strong: {{backend: openai, model: s}}
"""


@pytest.fixture
def fake_run_all(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Run.run_all writes a config and fake eval artifacts that depend on the seed; no model is loaded."""
    import cowest.config
    import cowest.run
    from cowest.config import dump_recipe

    calls: list[tuple] = []

    def run_all(self) -> dict:
        r = self.recipe
        calls.append((r.name, r.seed, r.task.seed))
        make_run(self.dir.parent, self.dir.name, r.seed, {k: v[:4] for k, v in (A if r.seed == 0 else B).items()})
        (self.dir / "config.yaml").write_text(dump_recipe(r))
        (self.dir / "report.md").write_text(f"# {r.name}\n")
        (self.dir / "report.html").write_text(f"<h1>{r.name}</h1>\n")
        return {"report.md": self.dir / "report.md", "report.html": self.dir / "report.html"}

    monkeypatch.setattr(cowest.config, "check_passthrough", lambda *a: None)
    monkeypatch.setattr(cowest.run.Run, "run_all", run_all)
    return calls


def test_cli_run_seeds(tmp_path: Path, fake_run_all: list[tuple]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(out=tmp_path / "runs"))
    res = CliRunner().invoke(app, ["run", str(recipe), "--seeds", "0,1", "--set", "seed=7", "--set", "name=x"])
    assert res.exit_code == 0, res.output
    assert fake_run_all == [("x-seed0", 0, 0), ("x-seed1", 1, 1)]  # --seeds wins over --set seed
    data = read_json(tmp_path / "runs" / "x-seeds" / "compare.json")
    assert [(r["run"], r["seed"]) for r in data["runs"]] == [("x-seed0", 0), ("x-seed1", 1)]
    assert yaml.safe_load((tmp_path / "runs" / "x-seed1" / "config.yaml").read_text())["task"]["seed"] == 1
    assert "| seed 0 | seed 1 | pooled |" in res.stdout
    # each seed ends with its one-screen summary on stdout and where its whole report is on stderr
    assert res.stdout.count("# cowest run `x-seed") == 2 and res.stderr.count("whole report: ") == 2

    res = CliRunner().invoke(app, ["run", str(recipe)])  # without --seeds: one run, as before
    assert res.exit_code == 0 and fake_run_all[-1] == ("t", 0, 0) and len(fake_run_all) == 3
    res = CliRunner().invoke(app, ["run", str(recipe), "--seeds", "0,a"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --seeds") and len(fake_run_all) == 3


def test_repeats_of_one_recipe_are_told_apart_by_their_folders(tmp_path: Path) -> None:
    a, b = make_run(tmp_path / "x", "demo", 0, A), make_run(tmp_path / "y", "demo-repeat", 0, A)
    (b / "config.yaml").write_text((a / "config.yaml").read_text())  # the same recipe name in both
    assert [r["run"] for r in compare_runs([a, b], n_boot=100)["runs"]] == ["demo", "demo-repeat"]
