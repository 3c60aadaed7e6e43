"""A run's report (report.md, a self-contained report.html, PNG plots) built from its artifacts alone.

No model is loaded: everything comes from the files the stages wrote (config.yaml, manifests, results, predictions,
mining scores, training logs, optional ablations). Any artifact may be missing, so partial runs report what they have.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from .io import atomic_file, read_json, read_jsonl, write_text

PLOTS = ("accuracy", "deltas", "dpo_margins", "cost_accuracy", "pairs_curve")
# Drill-down filters: key -> label; `{ref}` is the collaborative system compared with strong alone.
FILTERS = {
    "all": "all",
    "cowest_only": "{ref} right, strong alone wrong",
    "strong_only": "strong alone right, {ref} wrong",
    "both_wrong": "both wrong",
}

Cell = str | tuple[str, str]  # text, or (text, css class)


# ---------------------------------------------------------------- loading


@dataclass
class Artifacts:
    """Everything the report reads from a run directory; absent artifacts are empty."""

    dir: Path
    config_text: str | None = None
    config: dict = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)  # stage name -> manifest, in report order
    evals: dict[str, dict] = field(default_factory=dict)  # eval dir name -> results.json, "eval" first
    predictions: list[dict] = field(default_factory=list)  # eval/predictions.jsonl
    rounds: list[int] = field(default_factory=list)
    mining: dict[int, dict] = field(default_factory=dict)
    scores: dict[int, list[dict]] = field(default_factory=dict)
    dpo_logs: dict[int, list[dict]] = field(default_factory=dict)
    sft_log: list[dict] = field(default_factory=list)
    ablations: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # unreadable artifacts, shown in the report

    @property
    def name(self) -> str:
        """The recipe name (config, else results, else the folder name)."""
        ev = self.evals.get("eval", {})
        return str(self.config.get("name") or ev.get("recipe") or self.dir.name)


def load(run_dir: Path) -> Artifacts:
    """Read every artifact the report uses; a missing file is skipped, an unreadable one becomes a warning."""
    d = Path(run_dir)
    a = Artifacts(dir=d)
    if (p := d / "config.yaml").is_file():
        a.config_text = p.read_text(encoding="utf-8")
        try:
            cfg = yaml.safe_load(a.config_text)
            a.config = cfg if isinstance(cfg, dict) else {}
        except yaml.YAMLError as e:
            a.warnings.append(f"config.yaml: not valid YAML ({e})")
    for name, p in _manifest_paths(d):
        if (m := _opt(read_json, p, a)) is not None:
            a.manifests[name] = m
    for name in _eval_dirs(d):
        if (r := _opt(read_json, d / name / "results.json", a)) is not None:
            a.evals[name] = r
    a.predictions = _opt(read_jsonl, d / "eval" / "predictions.jsonl", a) or []
    a.rounds = sorted({int(m[1]) for p in d.glob("round_*")
                       if p.is_dir() and (m := re.fullmatch(r"round_(\d+)", p.name))})
    for k in a.rounds:
        rd = d / f"round_{k}"
        if (st := _opt(read_json, rd / "mining_stats.json", a)) is not None:
            a.mining[k] = st
        if (sc := _opt(read_jsonl, rd / "scores.jsonl", a)) is not None:
            a.scores[k] = sc
        if (lg := _opt(read_jsonl, rd / "train_log.jsonl", a)) is not None:
            a.dpo_logs[k] = lg
    a.sft_log = _opt(read_jsonl, d / "sft" / "train_log.jsonl", a) or []
    a.ablations = _opt(read_json, d / "ablations" / "results.json", a) or {}
    return a


def _opt(reader: Callable[[Path], Any], path: Path, a: Artifacts) -> Any:
    """`reader(path)`, or None when the file is absent; a corrupt file is reported, not fatal."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError) as e:
        a.warnings.append(f"{path.relative_to(a.dir)}: unreadable ({e})")
        return None


def _manifest_paths(d: Path) -> list[tuple[str, Path]]:
    """(stage name, manifest path) in pipeline order: sft, round_K/mine, round_K/dpo, eval, eval_recall, others."""
    found = [(p.parent.name, p) for p in d.glob("*/manifest.json")]
    found += [(f"{p.parent.name}/{p.name.removesuffix('.manifest.json')}", p) for p in d.glob("*/*.manifest.json")]
    return sorted(found, key=lambda np_: _stage_order(np_[0]))


def _stage_order(name: str) -> tuple:
    if name == "sft":
        return (0,)
    if m := re.fullmatch(r"round_(\d+)/(.+)", name):
        return (1, int(m[1]), {"mine": 0, "dpo": 1}.get(m[2], 2), m[2])
    return {"eval": (2,), "eval_recall": (3,)}.get(name, (4, name))


def _eval_dirs(d: Path) -> list[str]:
    """Evaluation folders with results: eval, eval_recall, then any other eval_* by name."""
    names = {p.parent.name for p in d.glob("eval*/results.json")}
    return sorted(names, key=lambda n: {"eval": (0, ""), "eval_recall": (1, "")}.get(n, (2, n)))


# ---------------------------------------------------------------- formatting helpers


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _ci(m: dict | None) -> str:
    """`value [lo, hi]` in percent."""
    if not m:
        return ""
    return f"{_pct(m.get('value'))} [{_pct(m.get('lo'))}, {_pct(m.get('hi'))}]"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return "" if v is None else str(v)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    def text(c: Cell) -> str:
        return (c[0] if isinstance(c, tuple) else c).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(text(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], id_: str | None = None,
                row_classes: Sequence[str] | None = None) -> str:
    """An escaped HTML table; the first column is a label, the others are right-aligned numbers."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="{esc(c[1])}">{esc(c[0])}</td>' if isinstance(c, tuple) else f"<td>{esc(c)}</td>" for c in r
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    ident = f' id="{esc(id_)}"' if id_ else ""
    table = f'<table{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _is_cowest(system: str) -> bool:
    return system == "cowest" or system.startswith("cowest_")


# ---------------------------------------------------------------- tables (one data source for md and HTML)


def _primary(results: dict) -> str | None:
    """The primary metric: the first metric key of the first system."""
    systems = results.get("systems") or {}
    first = next(iter(systems.values()), {})
    return next(iter(first.get("metrics") or {}), None)


def results_rows(results: dict) -> tuple[list[str], list[list[Cell]], list[str]]:
    """Headers, rows and row classes of the results table (metrics in percent with CIs)."""
    systems = results.get("systems") or {}
    metrics = list(next(iter(systems.values()), {}).get("metrics") or {})
    has = lambda key: any(key in r for r in systems.values())  # noqa: E731
    currency = (results.get("price") or {}).get("currency", "")
    headers = ["system", *metrics]
    headers += ["answered %"] if has("answered") else []
    headers += ["draft states gold %"] if has("draft_states_gold") else []
    headers += ["cut at token cap %"] if has("truncated_share") else []
    headers += ["strong tok/q"]
    headers += [f"cost / 1k q {currency}".strip()] if has("cost_per_1k") else []
    headers += ["wall s"]
    primary = [r["metrics"][metrics[0]]["value"] for r in systems.values()
               if metrics and metrics[0] in r.get("metrics", {})]
    best = max(primary, default=None)
    rows, classes = [], []
    for name, r in systems.items():
        cells: list[Cell] = [f"{r.get('label', name)} ({name})"]
        for i, m in enumerate(metrics):
            v = (r.get("metrics") or {}).get(m)
            cells.append((_ci(v), "best") if i == 0 and v and v.get("value") == best else _ci(v))
        if has("answered"):
            cells.append(_pct(r.get("answered")))
        if has("draft_states_gold"):
            cells.append(_pct(r.get("draft_states_gold")))
        if has("truncated_share"):
            cells.append(_pct(r.get("truncated_share")))
        cells.append(f"{_strong_tokens(r):.0f}")
        if has("cost_per_1k"):
            cells.append("" if r.get("cost_per_1k") is None else f"{r['cost_per_1k']:.2f}")
        cells.append(f"{r.get('wall_s', 0.0):.0f}")
        rows.append(cells)
        classes.append("hl" if _is_cowest(name) else "")
    return headers, rows, classes


def _strong_tokens(r: dict) -> float:
    return float(r.get("strong_prompt_tokens_per_q", 0.0)) + float(r.get("strong_completion_tokens_per_q", 0.0))


def comparison_rows(results: dict) -> tuple[list[str], list[list[Cell]]]:
    """Paired differences in points, CI and one-sided p; p < 0.05 is marked."""
    rows: list[list[Cell]] = []
    for name, c in (results.get("comparisons") or {}).items():
        tag = " (best single model)" if c.get("best_single") else ""
        p = c.get("p_value", float("nan"))
        rows.append([f"{name}{tag}", f"{100 * c['diff']:+.1f}", f"[{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}]",
                     (f"{p:.3f}", "sig") if p < 0.05 else f"{p:.3f}"])
    return ["difference", "mean (points)", "95% CI", "p (one-sided)"], rows


DRAFT_COLUMNS = {"states_fact": "states the fact %", "states_gold": "states the gold %",
                 "helped": "refined: helped vs strong alone %", "hurt": "refined: hurt vs strong alone %",
                 "changed_vs_sft": "differs from SFT draft %", "truncated_share": "cut at token cap %",
                 "mean_chars": "mean length (chars)"}


def draft_rows(results: dict) -> tuple[list[str], list[list[Cell]]]:
    """Draft diagnostics per weak variant (SFT vs aligned): fact stated, helped/hurt, changed, length."""
    drafts = results.get("drafts") or {}
    cols = [c for c in DRAFT_COLUMNS if any(c in d for d in drafts.values())]
    rows: list[list[Cell]] = []
    for variant, d in drafts.items():
        rows.append([variant, *[(f"{d[c]:.0f}" if c == "mean_chars" else _pct(d[c])) if c in d else "" for c in cols]])
    return ["weak drafts", *[DRAFT_COLUMNS[c] for c in cols]], rows


def dpo_heldout_rows(a: Artifacts) -> tuple[list[str], list[list[Cell]]]:
    """Reward accuracy and margin on the pairs of held-out mined questions, per round and epoch."""
    rows: list[list[Cell]] = []
    for name, m in a.manifests.items():
        for h in (m.get("counts") or {}).get("heldout") or []:
            rows.append([name.split("/")[0].replace("_", " "), _fmt(h.get("epoch")),
                         _fmt(h.get("rewards/accuracies")), _fmt(h.get("rewards/margins")), _fmt(h.get("loss"))])
    return ["round", "epoch", "held-out reward accuracy", "held-out reward margin", "held-out loss"], rows


def headline(results: dict) -> str | None:
    """One sentence: CoWest against the best single model, when that comparison exists."""
    for name, c in (results.get("comparisons") or {}).items():
        if c.get("best_single") and _is_cowest(name.split(" - ")[0]):
            return (f"{name}: {100 * c['diff']:+.1f} points (95% CI [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}], "
                    f"one-sided p = {c['p_value']:.3f})")
    return None


def _eval_title(name: str, r: dict) -> str:
    what = "Fact-recall probe" if name == "eval_recall" else ("Results" if name == "eval" else f"Results ({name})")
    return f"{what}: {r.get('task', '?')} / {r.get('split', '?')} ({r.get('n', '?')} questions)"


def mining_rows(a: Artifacts) -> tuple[list[str], list[list[Cell]]]:
    """Mining statistics: one row per statistic, one column per round."""
    keys = list(dict.fromkeys(k for st in a.mining.values() for k in st))
    rounds = sorted(a.mining)
    rows: list[list[Cell]] = [[k, *[_fmt(a.mining[r].get(k)) for r in rounds]] for k in keys]
    return ["statistic", *[f"round {k}" for k in rounds]], rows


def dpo_summary(log: list[dict]) -> dict | None:
    """Steps, first/last/max reward margin and last reward accuracy of a DPO log (None without margins)."""
    steps = [s for s in log if "rewards/margins" in s]
    if not steps:
        return None
    m = [s["rewards/margins"] for s in steps]
    acc = [s.get("rewards/accuracies", float("nan")) for s in steps]
    return dict(steps=len(m), first=m[0], last=m[-1], max=max(m), acc=acc[-1])


def dpo_rows(a: Artifacts) -> tuple[list[str], list[list[Cell]]]:
    rows: list[list[Cell]] = []
    for k, log in sorted(a.dpo_logs.items()):
        if s := dpo_summary(log):
            pairs = (a.manifests.get(f"round_{k}/dpo") or {}).get("counts", {}).get("pairs")
            rows.append([f"round {k}", _fmt(pairs), str(s["steps"]), f"{s['first']:.4f}", f"{s['last']:.4f}",
                         f"{s['max']:.4f}", f"{s['acc']:.2f}"])
    return ["round", "pairs", "steps", "first margin", "last margin", "max margin", "last reward acc"], rows


def sft_summary(a: Artifacts) -> list[str]:
    """Bullet lines on SFT: examples, steps, first/last training loss."""
    out = []
    counts = (a.manifests.get("sft") or {}).get("counts") or {}
    if "examples" in counts:
        out.append(f"examples: {counts['examples']}")
    losses = [s["loss"] for s in a.sft_log if isinstance(s.get("loss"), (int, float))]
    if losses:
        out.append(f"steps logged: {len(losses)}; loss first {losses[0]:.4f}, last {losses[-1]:.4f}")
    return out


def stage_rows(a: Artifacts) -> tuple[list[str], list[list[Cell]]]:
    times = [(n, float(m["wall_s"])) for n, m in a.manifests.items() if isinstance(m.get("wall_s"), (int, float))]
    if not times:
        return ["stage", "wall s"], []
    rows: list[list[Cell]] = [[n, f"{t:.1f}"] for n, t in times]
    rows.append([("total", "total"), (f"{sum(t for _, t in times):.1f}", "total")])
    return ["stage", "wall s"], rows


def model_rows(a: Artifacts) -> tuple[list[tuple[str, str]], tuple[list[str], list[list[Cell]]]]:
    """Model names and adapter hashes as (what, value) pairs, and token usage per model identity over all stages."""
    items: list[tuple[str, str]] = []
    for role in ("weak", "strong", "judge"):
        m = a.config.get(role)
        if isinstance(m, dict) and m.get("model"):
            extra = f" + adapter {m['adapter']}" if m.get("adapter") else ""
            items.append((f"{role} model", f"{m['model']} ({m.get('backend', '?')}){extra}"))
    for name, m in a.manifests.items():
        if h := (m.get("counts") or {}).get("adapter_hash"):
            items.append((f"adapter hash, {name}", str(h)))
    usage: dict[str, dict[str, float]] = {}
    for m in a.manifests.values():
        for ident, u in (m.get("usage") or {}).items():
            acc = usage.setdefault(ident, {})
            for k, v in (u or {}).items():
                if isinstance(v, (int, float)):
                    acc[k] = acc.get(k, 0) + v
    keys = list(dict.fromkeys(["prompt_tokens", "completion_tokens", "calls",
                               *[k for u in usage.values() for k in u]]))
    rows: list[list[Cell]] = [[ident, *[_fmt(u.get(k, 0)) for k in keys]] for ident, u in usage.items()]
    return items, (["model identity", *keys], rows)


def ablation_tables(ab: dict) -> list[tuple[str, list[str], list[list[Cell]]]]:
    """(title, headers, rows) for each ablation present: draft formats, number of pairs, strong-model swap."""
    out = []
    if ab.get("formats"):
        rows: list[list[Cell]] = []
        for f in ab["formats"]:
            u, al = f.get("unaligned"), f.get("aligned")
            gain = f"{100 * (al['value'] - u['value']):+.1f}" if u and al else ""
            rows.append([str(f.get("format")), _ci(u), _ci(al), gain])
        out.append(("Draft formats: unaligned vs aligned collaboration (%)",
                    ["format", "unaligned", "aligned", "aligned - unaligned (points)"], rows))
    if ab.get("pairs"):
        rows = [[_fmt(p.get("fraction")), _fmt(p.get("n_pairs")), _ci(p)] for p in ab["pairs"]]
        out.append(("Number of preference pairs (%)", ["fraction", "pairs", "value [95% CI]"], rows))
    if sw := ab.get("strong_swap"):
        rows = [[f"{s.get('label', n)} ({n})", _ci(s)] for n, s in (sw.get("systems") or {}).items()]
        out.append((f"Strong model swapped to {sw.get('strong_model', '?')} (%)", ["system", "value [95% CI]"], rows))
    if ab.get("dpo_search"):
        rows = []
        for d in ab["dpo_search"]:
            last = (d.get("heldout") or [{}])[-1]
            rows.append([", ".join(f"{k}={v}" for k, v in d["setting"].items()), _fmt(d.get("valid_n")),
                         _ci(d.get("refine")), _ci(d.get("cowest")), _pct(d.get("helped")), _pct(d.get("hurt")),
                         _pct(d.get("changed_vs_sft")), _fmt(last.get("rewards/accuracies")),
                         _fmt(last.get("rewards/margins"))])
        out.append(("Alignment settings on held-out mined questions (validation, never the test)",
                    ["setting", "questions", "refinement %", "CoWest %", "aligned drafts helped %", "hurt %",
                     "changed vs SFT %", "held-out reward acc (last epoch)", "held-out margin (last epoch)"], rows))
    return out


# ---------------------------------------------------------------- markdown


def summary_markdown(run_dir: Path) -> str:
    """The report.md text: results, recall, mining, SFT/DPO, ablations, stage times, models, plots, recipe."""
    return _markdown(load(run_dir))


def _markdown(a: Artifacts) -> str:
    from .evaluate import comparisons_table, results_table

    parts = [f"# cowest run `{a.name}`"]
    if ev := a.evals.get("eval"):
        parts.append(f"task `{ev.get('task', '?')}`, split `{ev.get('split', '?')}`, {ev.get('n', '?')} questions, "
                     f"{ev.get('date', '')}".rstrip(", "))
        if h := headline(ev):
            parts.append(f"**{h}**")
    for name, r in a.evals.items():
        tables = f"{results_table(r)}\n\n{comparisons_table(r)}".strip()
        if (dr := draft_rows(r))[1]:
            tables += f"\n\nDraft diagnostics:\n\n{md_table(*dr)}"
        parts.append(f"## {_eval_title(name, r)}\n\n{tables}")
    for k, st in sorted(a.mining.items()):
        parts.append(f"## Mining, round {k}\n\n" + "\n".join(f"- {s}: {_fmt(v)}" for s, v in st.items()))
    if sft := sft_summary(a):
        parts.append("## SFT\n\n" + "\n".join(f"- {s}" for s in sft))
    for k, log in sorted(a.dpo_logs.items()):
        if s := dpo_summary(log):
            parts.append(
                f"## DPO, round {k}\n\n- steps: {s['steps']}\n- reward margin: first {s['first']:.4f}, "
                f"last {s['last']:.4f}, max {s['max']:.4f}\n- reward accuracy, last: {s['acc']:.2f}"
            )
    if (hr := dpo_heldout_rows(a))[1]:
        parts.append(f"## DPO on held-out mined questions, per epoch\n\n{md_table(*hr)}")
    if tables := ablation_tables(a.ablations):
        parts.append("## Ablations\n\n" + "\n\n".join(f"### {t}\n\n{md_table(h, r)}" for t, h, r in tables))
    headers, rows = stage_rows(a)
    if rows:
        parts.append(f"## Stage wall times (s)\n\n{md_table(headers, rows)}")
    items, (uh, ur) = model_rows(a)
    if items or ur:
        text = "\n".join(f"- {w}: `{v}`" for w, v in items)
        if ur:
            text += f"\n\nToken usage by model identity (all stages):\n\n{md_table(uh, ur)}"
        parts.append(f"## Models and hashes\n\n{text.strip()}")
    plots = [p for p in PLOTS if (a.dir / "plots" / f"{p}.png").is_file()]
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{p}](plots/{p}.png)" for p in plots))
    if a.warnings:
        parts.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in a.warnings))
    if a.config_text is not None:
        parts.append(f"## Recipe\n\n```yaml\n{a.config_text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- plots (matplotlib's Agg canvas, no pyplot state)


def _figure():
    from matplotlib.figure import Figure  # Figure.savefig renders through Agg: no display, no global backend switch

    fig = Figure(figsize=(6, 3.5), dpi=100)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _errs(items: Sequence[dict]) -> list[list[float]]:
    """Asymmetric error bars in percent from value/lo/hi dicts."""
    return [[100 * max(m["value"] - m["lo"], 0) for m in items], [100 * max(m["hi"] - m["value"], 0) for m in items]]


def plot_accuracy(results: dict) -> bytes | None:
    """Primary metric per system with CI bars; CoWest highlighted."""
    metric = _primary(results)
    systems = [(n, r["metrics"][metric]) for n, r in (results.get("systems") or {}).items()
               if metric and metric in r.get("metrics", {})]
    if not systems:
        return None
    fig, ax = _figure()
    names = [n for n, _ in systems][::-1]  # first system on top
    ms = [m for _, m in systems][::-1]
    colors = ["#e45756" if _is_cowest(n) else ("#4c78a8" if n == "strong" else "#9ecae9") for n in names]
    ax.barh(names, [100 * m["value"] for m in ms], xerr=_errs(ms), color=colors, capsize=3, ecolor="#333")
    for i, m in enumerate(ms):  # the value just right of its CI bar, where it cannot overlap it
        ax.text(100 * m["hi"] + 1.5, i, f"{100 * m['value']:.1f}", va="center", ha="left", fontsize=8, color="#111")
    ax.set_xlim(0, 108)
    ax.set_xlabel(f"{metric} (%), 95% CI")
    ax.set_title(f"{results.get('task', '')} / {results.get('split', '')}: {metric}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_deltas(scores: dict[int, list[dict]]) -> bytes | None:
    """Distribution of delta_k = s_k - s0 over mined drafts, one series per round."""
    series = {k: [float(r["delta"]) for r in rows if r.get("k") is not None and r.get("delta") is not None]
              for k, rows in sorted(scores.items())}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = _figure()
    values = sorted({d for v in series.values() for d in v})
    if len(values) <= 11:  # few distinct deltas (rule evaluator: -1, 0, 1): grouped bars at each value
        step = min((b - a for a, b in zip(values, values[1:])), default=1.0)
        width = 0.8 * step / len(series)
        for i, (k, v) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in values]
            ax.bar(xs, [v.count(x) for x in values], width=width, label=f"round {k}")
        ax.set_xticks(values, [f"{x:+.2g}" if x else "0" for x in values])
    else:
        import numpy as np

        edges = np.histogram_bin_edges([d for v in series.values() for d in v], bins=min(30, max(10, len(values) // 3)))
        for k, v in series.items():
            ax.hist(v, bins=edges, histtype="step", linewidth=1.5, label=f"round {k}")
    ax.axvline(0, color="#555", linewidth=0.8, linestyle="--")
    ax.set_xlabel("delta = score(refined draft) - score(strong alone)")
    ax.set_ylabel("drafts")
    ax.set_title("Mining: effect of each weak draft on the strong answer", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_margins(logs: dict[int, list[dict]]) -> bytes | None:
    """DPO reward margin per logged step, one line per round."""
    series = {k: [(s.get("step", i), s["rewards/margins"]) for i, s in enumerate(log) if "rewards/margins" in s]
              for k, log in sorted(logs.items())}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = _figure()
    for k, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=f"round {k}")
    ax.axhline(0, color="#555", linewidth=0.8, linestyle="--")
    ax.set_xlabel("step")
    ax.set_ylabel("rewards/margins")
    ax.set_title("DPO reward margin (chosen - rejected)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_cost(results: dict) -> bytes | None:
    """Primary metric against strong-model cost per question (or price per 1k questions when every system has one)."""
    metric = _primary(results)
    systems = {n: r for n, r in (results.get("systems") or {}).items() if metric and metric in r.get("metrics", {})}
    if not systems:
        return None
    priced = all(r.get("cost_per_1k") is not None for r in systems.values())
    xs = [r["cost_per_1k"] if priced else _strong_tokens(r) for r in systems.values()]
    ms = [r["metrics"][metric] for r in systems.values()]
    fig, ax = _figure()
    for (n, _), x, m in zip(systems.items(), xs, ms):
        color = "#e45756" if _is_cowest(n) else "#4c78a8"
        ax.errorbar([x], [100 * m["value"]], yerr=_errs([m]), fmt="o", color=color, capsize=3)
        ax.annotate(n, (x, 100 * m["value"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    currency = (results.get("price") or {}).get("currency", "")
    ax.set_xlabel(f"cost per 1k questions {currency}".strip() if priced else "strong-model tokens per question")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy against strong-model cost", fontsize=10)
    ax.margins(x=0.15)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_pairs(ab: dict) -> bytes | None:
    """Ablation: score against the number of preference pairs used for DPO."""
    pts = sorted((p for p in ab.get("pairs") or [] if p.get("n_pairs") is not None and "value" in p),
                 key=lambda p: p["n_pairs"])
    if not pts:
        return None
    fig, ax = _figure()
    ax.errorbar([p["n_pairs"] for p in pts], [100 * p["value"] for p in pts],
                yerr=_errs([{"value": p["value"], "lo": p.get("lo", p["value"]), "hi": p.get("hi", p["value"])}
                            for p in pts]),
                fmt="-o", capsize=3, color="#e45756")
    ax.set_xlabel("preference pairs used")
    ax.set_ylabel("score (%), 95% CI")
    ax.set_title("CoWest against the number of DPO pairs", fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def make_plots(a: Artifacts) -> dict[str, bytes]:
    """PNG bytes of every plot whose data exists."""
    ev = a.evals.get("eval", {})
    made = {
        "accuracy": plot_accuracy(ev) if ev else None,
        "deltas": plot_deltas(a.scores),
        "dpo_margins": plot_margins(a.dpo_logs),
        "cost_accuracy": plot_cost(ev) if ev else None,
        "pairs_curve": plot_pairs(a.ablations),
    }
    return {k: v for k, v in made.items() if v is not None}


# ---------------------------------------------------------------- drill-down data


def _reference(systems: Sequence[str]) -> str | None:
    """The collaborative system compared with strong alone: cowest, else the last cowest_round_K, else refine."""
    if "cowest" in systems:
        return "cowest"
    rounds = sorted((s for s in systems if re.fullmatch(r"cowest_round_\d+", s)),
                    key=lambda s: int(s.rsplit("_", 1)[1]))
    return rounds[-1] if rounds else ("refine" if "refine" in systems else None)


def drill_data(predictions: list[dict]) -> dict:
    """One row per question (draft, strong-alone and CoWest answers, who was right) and the filter counts."""
    systems = list(dict.fromkeys(p["system"] for p in predictions))
    ref = _reference(systems)
    by_q: dict[str, dict[str, dict]] = {}
    for p in predictions:
        by_q.setdefault(str(p.get("question_id")), {})[p["system"]] = p
    rows = []
    for qid, preds in by_q.items():
        any_p = next(iter(preds.values()))
        draft_src = preds.get(ref or "") or preds.get("refine") or {}
        right = {s: _right(p) for s, p in preds.items()}
        groups = []
        if ref in right and "strong" in right:
            r, s = right[ref], right["strong"]
            groups = [g for g, ok in (("cowest_only", r and not s), ("strong_only", s and not r),
                                      ("both_wrong", not r and not s)) if ok]
        rows.append(dict(
            id=qid, question=any_p.get("question"), gold=any_p.get("gold"), draft=draft_src.get("draft"),
            strong=_answer(preds.get("strong")), ref=_answer(preds.get(ref or "")),
            systems=[dict(name=s, right=right[s], answer=preds[s].get("answer"), score=preds[s].get("score"))
                     for s in systems if s in preds],
            groups=groups,
        ))
    counts = {f: (len(rows) if f == "all" else sum(f in r["groups"] for r in rows)) for f in FILTERS}
    return dict(ref=ref, systems=systems, counts=counts, rows=rows)


def _right(p: dict) -> bool:
    s = p.get("score")
    return isinstance(s, (int, float)) and s > 0.5


def _answer(p: dict | None) -> dict | None:
    return None if p is None else dict(text=p.get("text"), answer=p.get("answer"), right=_right(p))


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` can end the element or open a comment."""
    return (json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# ---------------------------------------------------------------- HTML


CSS = """
:root { --fg:#1d2430; --muted:#5f6b7a; --bg:#fff; --card:#f7f8fa; --line:#dde2e8; --hl:#fff1ef; --accent:#c8362b;
        --ok:#1b7f3b; --bad:#b42318; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6e9ee; --muted:#9aa5b4; --bg:#15181d; --card:#1d2128;
        --line:#313844; --hl:#3a2422; --accent:#ff7b72; --ok:#56d37a; --bad:#ff7b72; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1280px; margin:0 auto; padding:24px 28px 64px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:17px; margin:32px 0 10px; border-bottom:1px solid var(--line);
     padding-bottom:4px; } h3 { font-size:14px; margin:18px 0 6px; }
.meta, .muted { color:var(--muted); } .headline { margin:12px 0; padding:10px 14px; background:var(--card);
     border-left:4px solid var(--accent); }
nav { margin:10px 0 0; font-size:13px; } nav a { color:var(--muted); margin-right:12px; text-decoration:none; }
nav a:hover { color:var(--fg); text-decoration:underline; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; margin:6px 0 10px; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:5px 10px; text-align:right; vertical-align:top; }
th:first-child, td:first-child { text-align:left; } th { background:var(--card); font-weight:600; white-space:nowrap; }
tr.hl td { background:var(--hl); } td.best { font-weight:700; } td.sig { font-weight:700; color:var(--ok); }
td.total { font-weight:700; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; } dl.kv dt { color:var(--muted); }
dl.kv dd { margin:0; font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12.5px; word-break:break-all; }
.plots { display:flex; flex-wrap:wrap; gap:16px; } figure { margin:0; } figure img { max-width:100%;
     border:1px solid var(--line); border-radius:4px; background:#fff; } figcaption { color:var(--muted); font-size:12px; }
pre { background:var(--card); padding:12px; overflow-x:auto; font-size:12.5px; border-radius:4px; }
.controls { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin:8px 0; }
.controls button { font:inherit; padding:4px 10px; border:1px solid var(--line); border-radius:14px;
     background:var(--card); color:var(--fg); cursor:pointer; } .controls button.active { border-color:var(--accent);
     color:var(--accent); font-weight:600; } .controls input { font:inherit; padding:4px 8px; border:1px solid var(--line);
     border-radius:4px; background:var(--bg); color:var(--fg); min-width:220px; }
#drill-table { width:100%; table-layout:fixed; } #drill-table td, #drill-table th { text-align:left; }
#drill-table col.c-id { width:70px; } #drill-table col.c-gold { width:70px; } #drill-table col.c-sys { width:150px; }
.txt { white-space:pre-wrap; overflow-wrap:anywhere; font-size:13px; }
details > summary { cursor:pointer; color:var(--muted); } details[open] > summary { margin-bottom:4px; }
.ans { display:inline-block; font-weight:600; padding:0 6px; border-radius:3px; margin-bottom:2px; }
.ans.ok { color:var(--ok); border:1px solid var(--ok); } .ans.bad { color:var(--bad); border:1px solid var(--bad); }
ul.sys { list-style:none; margin:0; padding:0; font-size:12.5px; } ul.sys li.ok { color:var(--ok); }
ul.sys li.bad { color:var(--bad); }
"""

# Renders the drill-down from the embedded JSON; model text only ever goes through textContent.
JS = r"""
(function () {
  "use strict";
  var holder = document.getElementById("drill-data");
  if (!holder) return;
  var data = JSON.parse(holder.textContent);
  var body = document.querySelector("#drill-table tbody");
  var search = document.getElementById("drill-search");
  var shown = document.getElementById("drill-shown");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-filter]"));
  var current = "all";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function longText(text) {  // short text inline, long text folded behind its first line
    if (text === null || text === undefined || text === "") return el("span", "muted", "\u2014");
    text = String(text);
    if (text.length <= 280) return el("div", "txt", text);
    var d = el("details"), s = el("summary", null, text.slice(0, 110).replace(/\s+/g, " ") + "\u2026");
    d.appendChild(s); d.appendChild(el("div", "txt", text));
    return d;
  }
  function answerCell(a) {
    var td = el("td");
    if (!a) { td.appendChild(el("span", "muted", "not evaluated")); return td; }
    td.appendChild(el("span", "ans " + (a.right ? "ok" : "bad"), "answer: " + (a.answer === null ? "none" : a.answer)));
    td.appendChild(longText(a.text));
    return td;
  }
  data.rows.forEach(function (r) {
    var tr = el("tr", "drill-row");
    tr.setAttribute("data-groups", r.groups.join(" "));
    tr.setAttribute("data-search", [r.id, r.question, r.draft, r.gold].join(" ").toLowerCase());
    tr.appendChild(el("td", "qid", r.id));
    var q = el("td"); q.appendChild(longText(r.question)); tr.appendChild(q);
    var d = el("td"); d.appendChild(longText(r.draft)); tr.appendChild(d);
    tr.appendChild(answerCell(r.strong));
    tr.appendChild(answerCell(r.ref));
    tr.appendChild(el("td", "gold", r.gold));
    var ul = el("ul", "sys"), td = el("td");
    r.systems.forEach(function (s) {
      var li = el("li", s.right ? "ok" : "bad", (s.right ? "\u2713 " : "\u2717 ") + s.name);
      li.title = "answer: " + (s.answer === null ? "none" : s.answer) + ", score " + s.score;
      ul.appendChild(li);
    });
    td.appendChild(ul); tr.appendChild(td);
    body.appendChild(tr);
  });

  function apply(filter) {
    if (!(filter in data.counts)) filter = "all";
    current = filter;
    var needle = search ? search.value.trim().toLowerCase() : "";
    var n = 0;
    Array.prototype.forEach.call(body.querySelectorAll("tr.drill-row"), function (tr) {
      var groups = tr.getAttribute("data-groups").split(" ");
      var ok = (filter === "all" || groups.indexOf(filter) >= 0) &&
               (!needle || tr.getAttribute("data-search").indexOf(needle) >= 0);
      if (ok) { tr.removeAttribute("hidden"); n++; } else { tr.setAttribute("hidden", ""); }
    });
    buttons.forEach(function (b) {
      var on = b.getAttribute("data-filter") === filter;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    if (shown) shown.textContent = "showing " + n + " of " + data.rows.length;
  }
  function fromHash() {
    var m = /(?:^#|&)filter=([\w-]+)/.exec(location.hash);
    apply(m ? m[1] : "all");
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var f = b.getAttribute("data-filter");
      if (location.hash === "#filter=" + f) apply(f); else location.hash = "filter=" + f;  // linkable view
    });
  });
  if (search) search.addEventListener("input", function () { apply(current); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


def _section(id_: str, title: str, body: str) -> str:
    return f'<section id="{id_}"><h2>{html.escape(title)}</h2>{body}</section>'


def _html_results(a: Artifacts) -> list[tuple[str, str, str]]:
    out = []
    for name, r in a.evals.items():
        h, rows, classes = results_rows(r)
        table_id = {"eval": "results-table", "eval_recall": "recall-table"}.get(name, f"results-table-{name}")
        body = _html_table(h, rows, table_id, classes)
        ch, crows = comparison_rows(r)
        if crows:
            body += f"<h3>Paired comparisons</h3>{_html_table(ch, crows, f'{table_id}-comparisons')}"
        dh, drows = draft_rows(r)
        if drows:
            body += f"<h3>Draft diagnostics</h3>{_html_table(dh, drows, f'{table_id}-drafts')}"
        out.append((f"sec-{name}", _eval_title(name, r), body))
    return out


def _html_drill(a: Artifacts) -> str:
    if not a.predictions:
        return '<p class="muted">No evaluation yet (eval/predictions.jsonl is missing): nothing to drill into.</p>'
    data = drill_data(a.predictions)
    ref = data["ref"] or "cowest"
    buttons = "".join(
        f'<button type="button" data-filter="{f}">{html.escape(label.format(ref=ref))} '
        f'(<span class="count" id="count-{f}">{data["counts"][f]}</span>)</button>'
        for f, label in FILTERS.items()
    )
    explain = (f"Draft: the weak draft {html.escape(ref)} refined. Strong alone and {html.escape(ref)} show the extracted "
               "answer (green right, red wrong); click a long text to expand it. Filters are linkable: "
               "<code>#filter=cowest_only</code>.")
    return (
        f'<p class="muted">{explain}</p>'
        f'<div class="controls">{buttons}<input id="drill-search" type="search" placeholder="search question, draft, id">'
        f'<span id="drill-shown" class="muted"></span></div>'
        '<div class="scroll"><table id="drill-table"><colgroup><col class="c-id"><col><col><col><col>'
        '<col class="c-gold"><col class="c-sys"></colgroup><thead><tr><th>id</th><th>question</th><th>weak draft</th>'
        f'<th>strong alone</th><th>{html.escape(ref)} (refined)</th><th>gold</th><th>right</th></tr></thead>'
        "<tbody></tbody></table></div>"
        f'<script type="application/json" id="drill-data">{_script_json(data)}</script>'
    )


def _html(a: Artifacts, plots: dict[str, bytes]) -> str:
    esc = html.escape
    ev = a.evals.get("eval", {})
    meta = " · ".join(x for x in (f"task {ev.get('task') or (a.config.get('task') or {}).get('name', '?')}",
                                  f"split {ev['split']}" if ev.get("split") else "",
                                  f"{ev['n']} questions" if ev.get("n") else "", str(ev.get("date") or "")) if x)
    sections: list[tuple[str, str, str]] = _html_results(a)
    if a.mining:
        sections.append(("sec-mining", "Collaborative feedback (mining)", _html_table(*mining_rows(a))))
    training = ""
    if sft := sft_summary(a):
        training += "<h3>SFT</h3><ul>" + "".join(f"<li>{esc(s)}</li>" for s in sft) + "</ul>"
    if (dr := dpo_rows(a))[1]:
        training += "<h3>DPO</h3>" + _html_table(*dr)
    if (hr := dpo_heldout_rows(a))[1]:
        training += "<h3>DPO on held-out mined questions, per epoch</h3>" + _html_table(*hr)
    if training:
        sections.append(("sec-training", "Training", training))
    if tables := ablation_tables(a.ablations):
        sections.append(("sec-ablations", "Ablations",
                         "".join(f"<h3>{esc(t)}</h3>{_html_table(h, r)}" for t, h, r in tables)))
    if plots:
        figs = "".join(f'<figure><img alt="{p}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                       f"<figcaption>plots/{p}.png</figcaption></figure>" for p, b in plots.items())
        sections.append(("sec-plots", "Plots", f'<div class="plots">{figs}</div>'))
    sections.append(("sec-drill", "Per-question drill-down", _html_drill(a)))
    if (st := stage_rows(a))[1]:
        sections.append(("sec-times", "Stage wall times (s)", _html_table(*st)))
    items, usage = model_rows(a)
    if items or usage[1]:
        kv = "".join(f"<dt>{esc(w)}</dt><dd>{esc(v)}</dd>" for w, v in items)
        body = (f'<dl class="kv">{kv}</dl>' if kv else "") + (
            f"<h3>Token usage by model identity (all stages)</h3>{_html_table(*usage)}" if usage[1] else "")
        sections.append(("sec-models", "Models and hashes", body))
    if a.warnings:
        sections.append(("sec-warnings", "Warnings", "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in a.warnings) + "</ul>"))
    if a.config_text is not None:
        sections.append(("sec-recipe", "Recipe",
                         f"<details><summary>config.yaml</summary><pre>{esc(a.config_text)}</pre></details>"))
    nav = "".join(f'<a href="#{sid}">{esc(t.split(":")[0])}</a>' for sid, t, _ in sections)
    hl = f'<div class="headline">{esc(h)}</div>' if ev and (h := headline(ev)) else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cowest · {esc(a.name)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>cowest run <code>{esc(a.name)}</code></h1><div class="meta">{esc(meta)}</div>{hl}'
        f"<nav>{nav}</nav></header>"
        + "".join(_section(sid, t, b) for sid, t, b in sections)
        + f"</main><script>{JS}</script></body></html>\n"
    )


# ---------------------------------------------------------------- entry point


def build_report(run_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into `run_dir`; return {relative name: path}."""
    run_dir = Path(run_dir)
    a = load(run_dir)
    plots = make_plots(a)
    out: dict[str, Path] = {}
    for name in PLOTS:
        path = run_dir / "plots" / f"{name}.png"
        if name in plots:
            with atomic_file(path, "wb") as f:
                f.write(plots[name])
            out[f"plots/{name}.png"] = path
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier build would contradict the report
    write_text(run_dir / "report.md", _markdown(a))
    write_text(run_dir / "report.html", _html(a, plots))
    return {"report.md": run_dir / "report.md", "report.html": run_dir / "report.html", **out}
