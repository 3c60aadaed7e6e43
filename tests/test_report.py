"""The run report (report.md, self-contained report.html, plots) built from a run directory's artifacts alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from contextlib import suppress
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from cowest.report import build_report, summary_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "</script><b>x</b>"  # model text that must never become markup

# Who got each question right: cowest beats strong alone on q2 and q3, loses on q4, both fail q6.
RIGHT = {
    "weak_sft": [1, 0, 0, 0, 1, 0],
    "strong": [1, 0, 0, 1, 1, 0],
    "refine": [1, 1, 0, 0, 1, 0],
    "cowest": [1, 1, 1, 0, 1, 0],
}
LABELS = {
    "weak_sft": "weak SFT",
    "strong": "strong alone (CoT)",
    "refine": "standard refinement (SFT draft -> strong)",
    "cowest": "CoWest (aligned draft -> strong)",
}
EXPECTED_COUNTS = {"all": 6, "cowest_only": 2, "strong_only": 1, "both_wrong": 1}
GOLD = ["B", "A", "D", "C", "B", "A"]

CONFIG = {
    "name": "demo", "seed": 0,
    "task": {"name": "formulary", "options": {"n_drugs": 6, "n_test": 6}},
    "weak": {"backend": "hf", "model": "smollm2-135m-instruct", "adapter": None},
    "strong": {"backend": "llamacpp", "model": "qwen2.5-coder-1.5b-instruct"},
    "judge": None,
    "collab": {"draft_format": "knowledge"},
    "mining": {"k": 4, "temperature": 0.8, "evaluator": "rule"},
    "eval": {"systems": list(RIGHT)},
    "rounds": 2, "alignment": "dpo",
    "sft": {"num_train_epochs": 4}, "dpo": {"beta": 0.1}, "lora": {"r": 16, "lora_alpha": 32},
}
WEAK_ID = "hf:smollm2-135m-instruct"
STRONG_ID = "llamacpp:qwen2.5-coder-1.5b-instruct"


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _manifest(stage: str, wall: float, counts: dict, usage: dict | None = None) -> dict:
    return {"stage": stage, "key": "0123456789abcdef", "inputs": {}, "counts": counts, "wall_s": wall,
            "usage": usage or {}, "finished_at": "2025-05-01T10:00:00+00:00"}


def _ci(v: float, w: float = 0.2) -> dict:
    return {"value": v, "lo": max(0.0, v - w), "hi": min(1.0, v + w)}


def write_config(run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))


def write_sft(run: Path) -> None:
    _json(run / "sft" / "manifest.json", _manifest("sft", 412.3, {"examples": 96, "adapter_hash": "aaaa1111bbbb2222"}))
    _jsonl(run / "sft" / "train_log.jsonl",
           [{"step": s, "loss": 2.4 - 0.3 * s, "learning_rate": 1e-3} for s in range(1, 5)] + [{"train_loss": 1.6}])


def write_rounds(run: Path) -> None:
    usage = {WEAK_ID: {"prompt_tokens": 4000, "completion_tokens": 1900, "calls": 48},
             STRONG_ID: {"prompt_tokens": 21000, "completion_tokens": 3800, "calls": 60}}
    for k, (helped, hurt) in {1: (5, 3), 2: (7, 2)}.items():
        rd = run / f"round_{k}"
        _json(rd / "mine.manifest.json", _manifest(f"round_{k}/mine", 300.0 + k, {"pairs": 6 + k}, usage))
        _json(rd / "mining_stats.json", {"questions": 12, "drafts": 48, "k": 4, "pairs": 6 + k,
                                          "questions_with_pair": 5 + k, "mean_delta": 0.0625 * k,
                                          "share_helped": helped / 48, "share_hurt": hurt / 48})
        scores = []
        for q in range(12):
            scores.append({"question_id": f"m{q}", "k": None, "score": float(q % 2), "delta": 0.0, "label": "strong_alone"})
            for j in range(4):
                d = [1.0, 0.0, -1.0, 0.0][(q + j + k) % 4] if q % 2 == 0 else [0.0, -1.0, 0.0, 0.0][(q + j) % 4]
                scores.append({"question_id": f"m{q}", "k": j, "score": float(q % 2) + d, "delta": d,
                               "label": "chosen" if d > 0 else "rejected"})
        _jsonl(rd / "scores.jsonl", scores)
        log = [{"step": s, "loss": 0.69 - 0.02 * s * k, "rewards/margins": 0.01 * s * k,
                "rewards/accuracies": min(1.0, 0.5 + 0.1 * s), "rewards/chosen": 0.01 * s, "rewards/rejected": -0.01 * s}
               for s in range(1, 6)] + [{"train_runtime": 40.1, "train_loss": 0.65}]
        _jsonl(rd / "train_log.jsonl", log)
        _json(rd / "dpo.manifest.json", _manifest(f"round_{k}/dpo", 120.5 * k,
                                                  {"pairs": 6 + k, "steps": 5, "final_margin": 0.05 * k,
                                                   "adapter_hash": f"dpo{k}hash00000000"[:16]}))


def write_eval(run: Path) -> None:
    systems = {}
    for name, right in RIGHT.items():
        acc = sum(right) / len(right)
        strong_tok = {"weak_sft": (0.0, 0.0), "strong": (180.0, 75.5)}.get(name, (260.0, 61.0))
        systems[name] = {
            "label": LABELS[name], "metrics": {"accuracy": _ci(acc), "macro_f1": _ci(acc * 0.9)},
            "score": _ci(acc), "wall_s": 12.3, "answered": 1.0,
            "strong_prompt_tokens_per_q": strong_tok[0], "strong_completion_tokens_per_q": strong_tok[1],
        }
        if name != "strong":
            systems[name]["draft_states_gold"] = 0.5
    results = {
        "n": 6, "task": "formulary", "split": "test", "recipe": "demo", "date": "2025-05-01T10:30:00",
        "systems": systems,
        "comparisons": {
            "cowest - strong": {"diff": 1 / 6, "lo": -0.17, "hi": 0.5, "p_value": 0.21, "best_single": True},
            "cowest - refine": {"diff": 1 / 6, "lo": 0.0, "hi": 0.34, "p_value": 0.04, "best_single": False},
        },
    }
    _json(run / "eval" / "results.json", results)
    _json(run / "eval" / "manifest.json", _manifest("eval", 95.0, {"questions": 6, "systems": 4},
                                                   {STRONG_ID: {"prompt_tokens": 5000, "completion_tokens": 900,
                                                                "calls": 18}}))
    preds = []
    for name, right in RIGHT.items():
        for i, ok in enumerate(right):
            gold = GOLD[i]
            answer = gold if ok else "E"
            draft = None if name == "strong" else f"Background: the dose of drug {i} is {i + 1} mg.\nAnswer: {answer}"
            text = f"The draft says {i + 1} mg. Final answer: {answer}"
            if name == "cowest" and i == 2:
                text = f"Careful: {EVIL} Final answer: {answer}"
            if name == "cowest" and i == 4:
                text = "Long reasoning. " * 40 + f"Final answer: {answer}"
            preds.append({"system": name, "question_id": f"q{i + 1}", "question": f"What is the dose of drug {i}?",
                          "draft": draft, "text": text if name != "weak_sft" else draft, "answer": answer,
                          "gold": gold, "score": float(ok), "prompt_tokens": 200, "completion_tokens": 50})
    _jsonl(run / "eval" / "predictions.jsonl", preds)
    recall = {"n": 8, "task": "formulary", "split": "recall", "recipe": "demo", "date": "2025-05-01T10:35:00",
              "systems": {n: {**systems[n], "metrics": {"accuracy": _ci(v)}, "strong_prompt_tokens_per_q": 0.0,
                              "strong_completion_tokens_per_q": 0.0} for n, v in (("weak_sft", 0.625),)},
              "comparisons": {}}
    _json(run / "eval_recall" / "results.json", recall)
    _json(run / "eval_recall" / "manifest.json", _manifest("eval_recall", 7.0, {"questions": 8}))


def write_ablations(run: Path) -> None:
    _json(run / "ablations" / "results.json", {
        "formats": [{"format": "cot", "unaligned": _ci(0.5), "aligned": _ci(0.667)},
                    {"format": "direct", "unaligned": _ci(0.4), "aligned": _ci(0.45)}],
        "pairs": [{"fraction": f, "n_pairs": int(14 * f), **_ci(0.5 + 0.15 * f)} for f in (0.25, 0.5, 1.0)],
        "strong_swap": {"strong_model": "qwen2.5-7b-instruct",
                        "systems": {"strong": {"label": "strong alone (CoT)", **_ci(0.7)},
                                    "cowest": {"label": "CoWest", **_ci(0.8)}}},
    })


def make_run(run: Path) -> Path:
    write_config(run)
    write_sft(run)
    write_rounds(run)
    write_eval(run)
    write_ablations(run)
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    run = make_run(tmp_path_factory.mktemp("report") / "demo")
    return run, build_report(run)


def drill_json(html_text: str) -> dict:
    m = re.search(r'<script type="application/json" id="drill-data">(.*?)</script>', html_text, re.S)
    assert m, "drill-down data is not embedded"
    return json.loads(m.group(1))


# ---------------------------------------------------------------- files and markdown


def test_every_output_is_written(built):
    run, paths = built
    assert set(paths) == {"report.md", "report.html", "plots/accuracy.png", "plots/deltas.png",
                          "plots/dpo_margins.png", "plots/cost_accuracy.png", "plots/pairs_curve.png"}
    for p in paths.values():
        assert p.is_file() and p.parent.is_relative_to(run)
    for name, p in paths.items():
        if name.endswith(".png"):
            data = p.read_bytes()
            assert data.startswith(PNG_MAGIC), name
            assert len(data) > 5000, f"{name} is suspiciously small ({len(data)} bytes)"
    assert not list(run.rglob(".*.tmp")), "atomic writes left temp files"


def test_markdown_has_every_section(built):
    run, _ = built
    md = (run / "report.md").read_text()
    assert md == summary_markdown(run)
    assert md.startswith("# cowest run `demo`")
    # Results rows (percent with CI) and comparisons.
    assert "| CoWest (aligned draft -> strong) | 66.7 [46.7, 86.7] |" in md
    assert "| strong alone (CoT) | 50.0 [30.0, 70.0] |" in md
    assert "| cowest - strong (accuracy) (best single model) | +16.7 | [-17.0, +50.0] | 0.210 |" in md
    assert "Fact-recall probe: formulary / recall (8 questions)" in md
    # Mining statistics, one list per round.
    assert "## Mining, round 1" in md and "## Mining, round 2" in md
    assert "- pairs: 8" in md and "- mean_delta: 0.125" in md
    # DPO margins as in the old Run.summary.
    assert "## DPO, round 2\n\n- steps: 5\n- reward margin: first 0.0200, last 0.1000, max 0.1000" in md
    assert "- reward accuracy, last: 1.00" in md
    # Stage times in pipeline order with a total.
    times = md.split("## Stages")[1].split("##")[0]
    order = [line.split("|")[1].strip() for line in times.splitlines() if line.startswith("| ") and "stage" not in line]
    assert order == ["sft", "round_1/mine", "round_1/dpo", "round_2/mine", "round_2/dpo", "eval", "eval_recall", "total"]
    total = 412.3 + 301 + 120.5 + 302 + 241 + 95 + 7
    assert f"| total | {total:.1f} |" in md
    assert "| round_1/mine | 301.0 |" in md and "check warnings" in times  # what each stage did, beside its time
    # Models, adapter hashes, usage identities, ablations, plots and the recipe verbatim.
    assert "smollm2-135m-instruct" in md and "qwen2.5-coder-1.5b-instruct" in md
    assert "aaaa1111bbbb2222" in md and "dpo1hash00000000" in md and "dpo2hash00000000" in md
    assert WEAK_ID in md and STRONG_ID in md
    assert "### Draft formats" in md and "| cot | 50.0 [30.0, 70.0] | 66.7 [46.7, 86.7] | +16.7 |" in md
    assert "qwen2.5-7b-instruct" in md
    assert "![accuracy](plots/accuracy.png)" in md
    assert f"```yaml\n{(run / 'config.yaml').read_text().rstrip()}\n```" in md


# ---------------------------------------------------------------- HTML (static checks)


def test_html_is_self_contained_and_safe(built):
    run, _ = built
    text = (run / "report.html").read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I), "external resource in report.html"
    assert "<link" not in text and "@import" not in text
    assert text.count('src="data:image/png;base64,') == 5
    assert 'id="results-table"' in text and 'id="recall-table"' in text
    assert "66.7 [46.7, 86.7]" in text
    assert "<summary>config.yaml</summary>" in text and "qwen2.5-coder-1.5b-instruct" in text
    # Model text is data, never markup: not even inside the JSON can it close the script element.
    assert "</script><b>" not in text and "<b>x</b>" not in text
    data = drill_json(text)
    assert any(EVIL in (r["ref"] or {}).get("text", "") for r in data["rows"])  # round-trips intact
    # Rows are rendered by the script, not written statically.
    assert 'class="drill-row"' not in text


def test_drill_down_rows_and_filter_counts(built):
    run, _ = built
    text = (run / "report.html").read_text()
    data = drill_json(text)
    assert data["ref"] == "cowest"
    assert [r["id"] for r in data["rows"]] == [f"q{i}" for i in range(1, 7)]
    # Expected counts, recomputed from the predictions file.
    preds = [json.loads(x) for x in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    right = {(p["system"], p["question_id"]): p["score"] > 0.5 for p in preds}
    qids = sorted({p["question_id"] for p in preds})
    counts = {
        "all": len(qids),
        "cowest_only": sum(right["cowest", q] and not right["strong", q] for q in qids),
        "strong_only": sum(right["strong", q] and not right["cowest", q] for q in qids),
        "both_wrong": sum(not right["cowest", q] and not right["strong", q] for q in qids),
    }
    assert counts == EXPECTED_COUNTS
    assert data["counts"] == counts
    for f, n in counts.items():
        assert f'data-filter="{f}"' in text
        assert f'<span class="count" id="count-{f}">{n}</span>' in text
    q2 = data["rows"][1]
    assert q2["draft"].startswith("Background: the dose of drug 1")
    assert q2["strong"]["right"] is False and q2["ref"]["right"] is True and q2["gold"] == "A"
    assert [s["name"] for s in q2["systems"] if s["right"]] == ["refine", "cowest"]


# ---------------------------------------------------------------- partial runs


def test_partial_run_builds(tmp_path):
    run = tmp_path / "partial"
    write_config(run)
    write_sft(run)
    paths = build_report(run)
    assert set(paths) == {"report.md", "report.html"}
    md = paths["report.md"].read_text()
    assert "| sft | 412.3 |" in md and "aaaa1111bbbb2222" in md and "```yaml" in md
    assert "## Mining" not in md and "## DPO" not in md
    html_text = paths["report.html"].read_text()
    assert "No evaluation yet" in html_text and 'id="drill-data"' not in html_text


def test_mined_but_not_evaluated_and_stale_plots_go(tmp_path):
    run = make_run(tmp_path / "run")
    build_report(run)
    assert (run / "plots" / "accuracy.png").is_file()
    shutil.rmtree(run / "eval")
    shutil.rmtree(run / "ablations")
    (run / "round_2" / "scores.jsonl").write_text('{"question_id": "m0", "k": 0, "delta": 1.0}\nnot json\n')
    # Judge scores: many distinct deltas take the histogram path.
    _jsonl(run / "round_1" / "scores.jsonl",
           [{"question_id": f"m{i}", "k": i % 4, "score": 5 + (i % 7) / 3, "delta": (i % 13 - 6) / 9} for i in range(40)])
    paths = build_report(run)
    assert set(paths) == {"report.md", "report.html", "plots/deltas.png", "plots/dpo_margins.png"}
    assert not (run / "plots" / "accuracy.png").exists()
    md = paths["report.md"].read_text()
    assert "## Mining, round 2" in md and "## Results" not in md
    assert "round_2/scores.jsonl: unreadable" in md  # a corrupt artifact is reported, not fatal


def test_empty_dir_builds(tmp_path):
    paths = build_report(tmp_path)
    assert paths["report.md"].read_text().startswith(f"# cowest run `{tmp_path.name}`")


# ---------------------------------------------------------------- the page in a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; return stdout. Fails (not skips) when Chromium is missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is needed to test report.html in a browser; install it with "
                    "`make test-deps` (`make test` does this first).")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    # Own process group, so the renderer and GPU helpers go with it on a timeout.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "HOME": str(profile)})
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium timed out: {' '.join(cmd)}")
    finally:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {err[-2000:]}"
    return out


class DrillRows(HTMLParser):
    """Collects the drill-down rows of a DOM dump and whether each is hidden."""

    def __init__(self):
        super().__init__()
        self.rows: list[bool] = []  # hidden?

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "drill-row" in (a.get("class") or "").split():
            self.rows.append("hidden" in a)


def visible_rows(dom: str) -> tuple[int, int]:
    p = DrillRows()
    p.feed(dom)
    return len(p.rows), sum(not h for h in p.rows)


@pytest.mark.slow  # a headless browser
def test_html_renders_in_chromium(built, tmp_path):
    run, _ = built
    url = (run / "report.html").resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert 'id="results-table"' in dom
    assert "strong alone (CoT) (strong)" in dom
    assert visible_rows(dom) == (6, 6), "the script did not render the drill-down rows"
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in dom and "<b>x</b>" not in dom  # shown as text
    assert 'id="drill-shown" class="muted">showing 6 of 6' in dom


@pytest.mark.slow
@pytest.mark.parametrize("flt", ["cowest_only", "strong_only", "both_wrong", "all"])
def test_filter_from_url_hash(built, tmp_path, flt):
    run, _ = built
    url = (run / "report.html").resolve().as_uri() + f"#filter={flt}"
    dom = chromium(tmp_path, "--dump-dom", url)
    assert visible_rows(dom) == (6, EXPECTED_COUNTS[flt])
    assert re.search(rf'<button[^>]*data-filter="{flt}"[^>]*class="active"|<button[^>]*class="active"[^>]*'
                     rf'data-filter="{flt}"', dom)


@pytest.mark.slow
def test_screenshot_is_not_blank(built, tmp_path):
    from PIL import Image

    run, _ = built
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", (run / "report.html").resolve().as_uri())
    assert shot.is_file() and shot.read_bytes().startswith(PNG_MAGIC)
    with Image.open(shot) as im:
        gray = im.convert("L")
        assert gray.size == (1280, 2000)
        lo, hi = gray.getextrema()
        assert hi - lo > 100, "screenshot is blank"
        assert sum(c > 0 for c in gray.histogram()) > 20, "screenshot has too few shades to be a rendered report"


# ---------------------------------------------------------------- one renderer, one confidence level


class TableCells(HTMLParser):
    """The header and body cell texts of one table (by id) in an HTML page."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_html_and_markdown_tables_agree_cell_for_cell_and_csv_keeps_the_numbers(built):
    import csv
    import io

    from cowest.report import md_table, results_csv, results_rows
    from cowest.report.tables import ci_text

    run, _ = built
    results = json.loads((run / "eval" / "results.json").read_text())
    parser = TableCells("results-table")
    parser.feed((run / "report.html").read_text())
    headers, rows, _ = results_rows(results)
    md_lines = md_table(headers, rows).splitlines()
    from_md = [[c.strip() for c in line.strip("|").split(" | ")] for line in md_lines[:1] + md_lines[2:]]
    assert parser.rows == from_md
    assert from_md[0][:3] == ["system", "accuracy", "macro_f1"]
    assert ["CoWest (aligned draft -> strong) (cowest)", "66.7 [46.7, 86.7]"] == from_md[4][:2]
    # The CSV is for other tools: full-precision numbers, which the formatted cells are rounded from.
    records = list(csv.DictReader(io.StringIO(results_csv(results))))
    assert len(records) == sum(len(r["metrics"]) for r in results["systems"].values())
    row = next(r for r in records if r["system"] == "cowest" and r["metric"] == "accuracy")
    acc = results["systems"]["cowest"]["metrics"]["accuracy"]
    assert [float(row[k]) for k in ("value", "lo", "hi")] == [acc["value"], acc["lo"], acc["hi"]]
    assert ci_text({k: float(row[k]) for k in ("value", "lo", "hi")}) == from_md[4][1] and row["confidence"] == "0.95"


def test_confidence_labels_follow_the_stored_level(tmp_path):
    from cowest.report import comparison_rows, headline

    run = make_run(tmp_path / "run")
    results = json.loads((run / "eval" / "results.json").read_text())
    assert comparison_rows({**results, "confidence": 0.9})[0][2] == "90% CI"
    assert "(90% CI [" in headline({**results, "confidence": 0.9})
    assert comparison_rows(results)[0][2] == "95% CI"  # an older file without a level
    _json(run / "eval" / "results.json", {**results, "confidence": 0.9})
    build_report(run)
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert "| difference | mean (points) | 90% CI | p (one-sided, bootstrap share) |" in md and "(90% CI [" in md
    assert "<th>90% CI</th>" in page and "95% CI" not in page.split('id="sec-eval_recall"')[0]
    # A file without its level is read with the run's eval.confidence, which the ablations share.
    _json(run / "eval" / "results.json", results)
    (run / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "eval": {**CONFIG["eval"], "confidence": 0.8}}))
    md = summary_markdown(run)
    assert "| difference | mean (points) | 80% CI |" in md and "| fraction | pairs | value [80% CI] |" in md


def test_html_escapes_labels_through_the_template(tmp_path):
    run = make_run(tmp_path / "run")
    results = json.loads((run / "eval" / "results.json").read_text())
    results["systems"]["strong"]["label"] = "<i>strong</i> & co"
    _json(run / "eval" / "results.json", results)
    page = build_report(run)["report.html"].read_text()
    assert "&lt;i&gt;strong&lt;/i&gt; &amp; co (strong)" in page and "<i>strong</i>" not in page


def test_drill_down_filters_on_the_questions_own_metadata():
    from cowest.report.drill import drill_data

    def pred(system, q, score, **meta):
        return dict(system=system, question_id=q, question=f"Q {q}", gold="A", score=score, answer="A", text="",
                    metadata=meta)

    preds = []
    for i, kind in enumerate(["fact", "reasoning", "reasoning"]):
        meta = dict(kind=kind, shelf=3, part=f"KT-{i}", note="same")
        preds += [pred("strong", f"q{i}", 0.0, **meta), pred("cowest", f"q{i}", 1.0, **meta)]
    data = drill_data(preds)
    # kind and part vary over a few values and get filters; shelf and note are the same everywhere and get none.
    assert data["metadata_filters"] == {"m-kind-fact": "kind: fact", "m-kind-reasoning": "kind: reasoning",
                                        "m-part-KT-0": "part: KT-0", "m-part-KT-1": "part: KT-1",
                                        "m-part-KT-2": "part: KT-2"}
    assert data["counts"]["m-kind-reasoning"] == 2 and data["counts"]["cowest_only"] == 3
    assert data["rows"][1]["groups"] == ["cowest_only", "m-kind-reasoning", "m-part-KT-1"]
    many = [pred("strong", f"q{i}", 1.0, serial=str(i)) for i in range(20)]
    assert drill_data(many)["metadata_filters"] == {}  # 20 distinct values: an id, not a category


def test_cost_plot_labels_of_nearby_points_do_not_overprint():
    from matplotlib.text import Text

    from cowest.report.plots import cost_figure, plot_cost

    def system(acc: float, tokens: float) -> dict:
        return {"metrics": {"accuracy": _ci(acc, 0.1)}, "strong_prompt_tokens_per_q": tokens,
                "strong_completion_tokens_per_q": 0.0}

    # Three weak systems at zero strong tokens and four collaborations within a few tokens and points of each other.
    results = {"systems": {"weak_sft": system(0.2, 0), "weak_aligned": system(0.2, 0), "weak_base": system(0.21, 0),
                           "strong": system(0.2, 266), "refine": system(0.55, 259), "cowest": system(0.56, 262),
                           "supericl": system(0.54, 255), "retrieval": system(0.5, 270)}}
    fig = cost_figure(results)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = ax.texts
    assert sorted(t.get_text() for t in texts) == sorted(results["systems"])
    for t in texts:
        t.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in texts]
    for i, a in enumerate(boxes):
        assert all(not a.overlaps(b) for b in boxes[i + 1:]), texts[i].get_text()
        assert ax.bbox.contains(a.x0, a.y0) and ax.bbox.contains(a.x1, a.y1)
    assert plot_cost(results).startswith(PNG_MAGIC)
    assert plot_cost(results) == plot_cost(results)  # the placement is deterministic


def test_small_p_values_read_below_a_thousandth_in_markdown_and_html(tmp_path):
    run = make_run(tmp_path / "run")
    results = json.loads((run / "eval" / "results.json").read_text())
    results["comparisons"]["cowest - refine"]["p_value"] = 0.0
    _json(run / "eval" / "results.json", results)
    paths = build_report(run)
    md, page = paths["report.md"].read_text(), paths["report.html"].read_text()
    assert "| cowest - refine (accuracy) | +16.7 | [+0.0, +34.0] | < 0.001 |" in md and "0.000" not in md
    assert '<td class="sig">&lt; 0.001</td>' in page


@pytest.mark.parametrize("run", ["demo", "rail-fares-seed0"])
def test_a_finished_run_prints_one_screen_not_the_whole_report(run):
    """`cowest run` ends with the headline, the warnings, the stage table and the test results; report.md the rest."""
    from cowest.report.markdown import console_markdown

    d = Path(__file__).resolve().parent.parent / "results" / run
    text = console_markdown(d)
    assert "## Stages" in text and "| CoWest (aligned draft -> strong)" in text and "| cowest - refine" in text
    assert "## Recipe" not in text and "## Mining" not in text and "Draft diagnostics" not in text
    assert len(text.splitlines()) <= 60 < len(summary_markdown(d).splitlines())
