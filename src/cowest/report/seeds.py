"""Tables of several runs as one result (compare.json, written by `cowest compare` / `run --seeds`)."""

from __future__ import annotations

from .tables import level_label, md_table, metric_label, p_header, p_text


def _pct(v: float, signed: bool = False) -> str:
    """A fraction as percentage points, one decimal."""
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _cell(v: dict, signed: bool = False, key: str = "value") -> str:
    """`76.7 [60.0, 90.0]` (or signed `+6.7 [+1.1, +12.2]`)."""
    return f"{_pct(v[key], signed)} [{_pct(v['lo'], signed)}, {_pct(v['hi'], signed)}]"


def _headers(runs: list[dict]) -> list[str]:
    """One column name per run: `seed N`, or the run name when seeds repeat or are unknown."""
    seeds = [r["seed"] for r in runs]
    if None not in seeds and len(set(seeds)) == len(seeds):
        return [f"seed {s}" for s in seeds]
    return [r["run"] for r in runs]


P_NOTES = {  # what p is, by the paired test that gave it
    "exact McNemar": "p is the one-sided exact McNemar test's (each question one system got right and the other "
                     "wrong is a fair coin under the null)",
    "sign-flip permutation": "p is the one-sided sign-flip permutation test's (each difference as likely negative as "
                             "positive under the null)",
    "mixed": "p is each row's one-sided paired test (exact McNemar for 0/1 scores, else sign-flip permutation)",
    None: "p is the share of bootstrap resamples with a difference <= 0 (a file from before cowest ran paired tests: "
          "it tests no null hypothesis)",
}


def compare_markdown(data: dict) -> str:
    """Markdown: per-seed table, pooled paired differences, and how the best single model was fixed."""
    runs, heads = data["runs"], _headers(data["runs"])
    conf = level_label(data["confidence"])
    n_total = sum(int(r["n"] or 0) for r in runs)
    metrics = sorted({row["metric"] for r in runs for row in r["systems"].values()})
    systems = [[pooled["label"] or s, *(_cell(r["systems"][s]) if s in r["systems"] else "—" for r in runs),
                _cell(pooled)] for s, pooled in data["systems"].items()]
    lines = [
        f"{len(runs)} runs of `{data['eval']}` ({', '.join(r['run'] for r in runs)}), {n_total} questions in all; "
        f"intervals are {conf} bootstrap confidence intervals ({data['n_boot']} resamples over questions).",
        "", md_table(["system", *heads, "pooled"], systems),
        "", f"Per-seed cells: {', '.join(metrics)} with the run's own CI. Pooled: mean per-question score over "
            "every question of every run that has the system.",
    ]
    cut = {s: [r["systems"].get(s, {}).get("truncated_share") for r in runs] for s in data["systems"]}
    cut = {s: v for s, v in cut.items() if any(x for x in v)}
    if cut:
        lines += ["", "Share of answers cut by the token cap, per run: " + "; ".join(
            f"{s} " + " / ".join("—" if x is None else _pct(x) for x in v) for s, v in cut.items()) + "."]
    lines += ["", "Best single model, fixed before reading the test: " + "; ".join(
        f"{h}: {r['best_single']['system'] or 'none'} ({r['best_single']['rule']}: {r['best_single']['detail']})"
        for h, r in zip(heads, runs)) + "."]
    if data["diffs"]:
        used = {name: f"{d['n']} ({d['runs']} run{'s' * (d['runs'] != 1)})" for name, d in data["diffs"].items()}
        # compare.json files written before the metric was stored: per-seed cells hold each run's primary metric,
        # and short answers (primary em) score per question by token F1
        metric = data.get("score_metric") or {"accuracy": "accuracy", "em": "f1"}.get(metrics[0] if metrics else "")
        on = f" ({metric_label(metric)})" if metric else ""
        rows = [[f"{name}{on}", _cell(d, True, "diff"), p_text(d["p_value"]), used[name],
                 *(_cell(r["diffs"][name], True, "diff") if name in r["diffs"] else "—" for r in runs)]
                for name, d in data["diffs"].items()]
        tests = [d.get("test") for d in data["diffs"].values()]
        head = ["difference (points)", f"pooled, {conf} CI", p_header(tests), "n pooled", *heads]
        lines += ["", md_table(head, rows),
                  "", "Pooled differences concatenate the per-question score differences of every run (matched by "
                      f"question within a run); the CI is one paired bootstrap of them, and "
                      f"{P_NOTES.get(tests[0] if len(set(tests)) == 1 else 'mixed')}. "
                      "`best_single` is each run's fixed best single model."]
    warned = [(h, r["warnings"]) for h, r in zip(heads, runs) if r.get("warnings")]
    if warned:
        lines += ["", "**Warnings** (stages that changed nothing or were cut short):", ""]
        lines += [f"- {h}: {w}" for h, ws in warned for w in ws]
    ge = data["cowest_ge_refine"]
    if ge["of"]:
        flags = " ".join(f"{h}: {'yes' if r['cowest_ge_refine'] else 'no'};" for h, r in zip(heads, runs)
                         if r["cowest_ge_refine"] is not None).rstrip(";")
        lines += ["", f"CoWest >= refinement (mean score) in {ge['count']} of {ge['of']} runs ({flags})."]
    return "\n".join(lines) + "\n"
