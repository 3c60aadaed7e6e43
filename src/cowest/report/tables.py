"""The one renderer of result tables: rows (headers + cells) from results data; formats only lay the rows out.

Markdown (report.md, results.md, README blocks), CSV (results.csv) and HTML (report.html, through the template's
`table` macro) all format the rows built here, so a number reads the same wherever it is shown. An evaluation's
results are `cowest.results.EvalResults` (results.json; its fields are described there); a plain dict of the same
shape is read as one. Fractions are shown in percent with one decimal, intervals as `value [lo, hi]`.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Sequence

from ..checks import stage_warnings
from ..results import DEFAULT_CONFIDENCE, EvalResults, Interval, Results
from .artifacts import Artifacts

Cell = str | tuple[str, str]  # text, or (text, css class)
Table = tuple[list[str], list[list[Cell]]]


# ---------------------------------------------------------------- values


def level_label(level: float) -> str:
    """A CI level as text: 0.9 -> '90%'."""
    return f"{100 * level:g}%"


def pct(v: float | None) -> str:
    """A fraction in percent, one decimal ('' for None)."""
    return "" if v is None else f"{100 * v:.1f}"


def ci_text(m: Interval | dict | None) -> str:
    """`value [lo, hi]` in percent."""
    if isinstance(m, Interval):
        m = m.dump()
    if not m:
        return ""
    return f"{pct(m.get('value'))} [{pct(m.get('lo'))}, {pct(m.get('hi'))}]"


def p_text(p: float) -> str:
    """A p-value with three decimals; below 0.001 as '< 0.001' (a resampled p is never exactly 0)."""
    if math.isnan(p):
        return "nan"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


# what each paired test is called in a table; None: a file from before the tests, whose p is a bootstrap share
TEST_NAMES = {"exact McNemar": "exact McNemar", "sign-flip permutation": "sign-flip", None: "bootstrap share"}


def p_header(tests: Sequence[str | None]) -> str:
    """The p column's heading: one-sided, and the paired test when every row used the same one."""
    names = {TEST_NAMES.get(t, str(t)) for t in tests}
    return f"p (one-sided, {names.pop()})" if len(names) == 1 else "p (one-sided; test per row)"


def p_relation(text: str) -> str:
    """'= 0.021' or '< 0.001': a p_text after 'p' in a sentence."""
    return text if text.startswith("<") else f"= {text}"


METRIC_LABELS = {"f1": "token F1", "em": "exact match", "macro_f1": "macro-F1"}


def metric_label(metric: str) -> str:
    """A metric key as people read it ('f1' -> 'token F1')."""
    return METRIC_LABELS.get(metric, metric)


def fmt(v: object) -> str:
    """A number or label as a cell: floats with three decimals."""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return "" if v is None else str(v)


def is_cowest(system: str) -> bool:
    """Whether a system key is CoWest (or CoWest after an earlier round)."""
    return system == "cowest" or system.startswith("cowest_")


# ---------------------------------------------------------------- results.json tables


def results_rows(results: Results, keys: bool = True) -> tuple[list[str], list[list[Cell]], list[str]]:
    """Headers, rows and row classes of the results table; `keys` adds each system's key to its label."""
    res = EvalResults.of(results)
    systems = res.systems
    first = next(iter(systems.values()), None)
    metrics = list(first.metrics) if first else []
    has = lambda key: any(r.holds(key) for r in systems.values())  # noqa: E731
    currency = res.price.currency if res.price else None
    headers = ["system", *metrics]
    headers += ["answered %"] if has("answered") else []
    headers += ["draft states gold %"] if has("draft_states_gold") else []
    headers += ["cut at token cap %"] if has("truncated_share") else []
    headers += ["strong tok/q"]
    headers += [f"cost / 1k q ({currency})" if currency else "cost / 1k q"] if has("cost_per_1k") else []
    headers += ["model calls", "cache hits"] if has("calls") else []
    headers += ["wall s"]
    best = max((r.metrics[metrics[0]].value for r in systems.values() if metrics and metrics[0] in r.metrics),
               default=None)
    rows, classes = [], []
    for name, r in systems.items():
        label = name if r.label is None else r.label
        # The key is what comparison rows name a system by; report.md and results.md show the label alone.
        cells: list[Cell] = [f"{label} ({name})" if keys else label]
        for i, m in enumerate(metrics):
            v = r.metrics.get(m)
            cells.append((ci_text(v), "best") if i == 0 and v and v.value == best else ci_text(v))
        cells += [pct(getattr(r, k)) for k in ("answered", "draft_states_gold", "truncated_share") if has(k)]
        cells.append(f"{r.strong_tokens:.0f}")
        if has("cost_per_1k"):
            cells.append("" if r.cost_per_1k is None else f"{r.cost_per_1k:.2f}")
        if has("calls"):
            cells += [fmt(r.calls), fmt(r.cache_hits)]
        cells.append(f"{r.wall_s:.0f}")
        rows.append(cells)
        classes.append("hl" if is_cowest(name) else "")
    return headers, rows, classes


def comparison_rows(results: Results) -> Table:
    """Paired differences in points, each named with its metric, CI and one-sided p (and its test); p < 0.05 is
    marked."""
    res = EvalResults.of(results)
    rows: list[list[Cell]] = []
    metric = res.scored_in()
    on = f" ({metric_label(metric)})" if metric else ""
    head = p_header([c.test for c in res.comparisons.values()])
    for name, c in res.comparisons.items():
        tag = " (best single model)" if c.best_single else ""
        p = p_text(c.p_value) + (f" ({TEST_NAMES.get(c.test, c.test)})" if "per row" in head else "")
        rows.append([f"{name}{on}{tag}", f"{100 * c.diff:+.1f}", f"[{100 * c.lo:+.1f}, {100 * c.hi:+.1f}]",
                     (p, "sig") if c.p_value < 0.05 else p])
    return ["difference", "mean (points)", f"{level_label(res.level)} CI", head], rows


DRAFT_COLUMNS = {"states_fact": "states the fact %", "states_gold": "states the gold %",
                 "helped": "refined: helped vs strong alone %", "hurt": "refined: hurt vs strong alone %",
                 "changed_vs_sft": "differs from SFT draft %", "truncated_share": "cut at token cap %",
                 "shown_cut_share": "cut inside the shown sections %", "mean_chars": "mean length (chars)",
                 "scored_with_fact": "refined: score with the fact %",
                 "scored_without_fact": "refined: score without it %",
                 "fact_gain": "refined: gain if every draft stated it (points)"}


def draft_rows(results: Results) -> Table:
    """Draft diagnostics per weak variant (SFT vs aligned): fact stated, helped/hurt, changed, length."""
    drafts = EvalResults.of(results).drafts
    cols = [c for c in DRAFT_COLUMNS if any(d.holds(c) for d in drafts.values())]
    rows: list[list[Cell]] = []
    for variant, d in drafts.items():
        rows.append([variant, *[_draft_cell(c, getattr(d, c)) if d.holds(c) else "" for c in cols]])
    return ["weak drafts", *[DRAFT_COLUMNS[c] for c in cols]], rows


def _draft_cell(column: str, v: float) -> str:
    """One draft diagnostic as the table shows it: length in characters, the fact's gain in points, else percent."""
    return f"{v:.0f}" if column == "mean_chars" else f"{100 * v:+.1f}" if column == "fact_gain" else pct(v)


def headline(results: Results) -> str | None:
    """One sentence: CoWest against the best single model, when that comparison exists."""
    res = EvalResults.of(results)
    for name, c in res.comparisons.items():
        if c.best_single and is_cowest(name.split(" - ")[0]):
            metric = res.scored_in()
            on = f" ({metric_label(metric)})" if metric else ""
            p = p_text(c.p_value)
            return (f"{name}{on}: {100 * c.diff:+.1f} points ({level_label(res.level)} CI "
                    f"[{100 * c.lo:+.1f}, {100 * c.hi:+.1f}], one-sided p {p_relation(p)}, "
                    f"{TEST_NAMES.get(c.test, c.test)})")
    return None


def eval_title(name: str, r: EvalResults) -> str:
    """The heading of one evaluation folder's tables."""
    what = "Fact-recall probe" if name == "eval_recall" else ("Results" if name == "eval" else f"Results ({name})")
    return f"{what}: {or_missing(r.task)} / {or_missing(r.split)} ({or_missing(r.n)} questions)"


def or_missing(v: object, missing: str = "?") -> object:
    """A value for a sentence, `missing` when the file does not hold it."""
    return missing if v is None else v


# ---------------------------------------------------------------- training artifacts


def warning_lines(a: Artifacts) -> list[str]:
    """The run's stage warnings (no-op alignment, few pairs, cut drafts), one line each, in stage order."""
    return [w["message"] for _, w in stage_warnings(a.manifests)]



def mining_rows(a: Artifacts) -> Table:
    """Mining statistics: one row per statistic, one column per round."""
    keys = list(dict.fromkeys(k for st in a.mining.values() for k in st))
    rounds = sorted(a.mining)
    rows: list[list[Cell]] = [[k, *[fmt(a.mining[r].get(k)) for r in rounds]] for k in keys]
    return ["statistic", *[f"round {k}" for k in rounds]], rows


MINING_KEYS = ("questions", "pairs", "train_pairs", "heldout_pairs", "questions_with_pair", "share_helped",
               "share_hurt", "strong_alone_score", "refined_score", "strong_alone_truncated", "drafts_truncated")


def mining_round_rows(k: int, stats: dict) -> Table:
    """The main mining statistics of one round, one row each."""
    return [f"mining, round {k}", "value"], [[key, fmt(stats[key])] for key in MINING_KEYS if key in stats]


def fact_recall_rows(a: Artifacts) -> Table:
    """Share of drafts stating the fact on the SFT validation wordings and the recall probe, per weak variant."""
    rows: list[list[Cell]] = []
    for name, what in (("eval_sft_valid", "SFT validation wordings"), ("eval_recall", "recall probe (held out)")):
        for variant, d in (a.evals[name].drafts if name in a.evals else {}).items():
            stated = d.states_fact if d.holds("states_fact") else d.states_gold
            rows.append([f"{what}, {variant} drafts", pct(stated), str(d.n)])
    return ["fact recall", "drafts stating the fact %", "questions"], rows


def dpo_summary(log: list[dict]) -> dict | None:
    """Steps, first/last/max reward margin and last reward accuracy of a DPO log (None without margins)."""
    steps = [s for s in log if "rewards/margins" in s]
    if not steps:
        return None
    m = [s["rewards/margins"] for s in steps]
    acc = [s.get("rewards/accuracies", float("nan")) for s in steps]
    return dict(steps=len(m), first=m[0], last=m[-1], max=max(m), acc=acc[-1])


def dpo_rows(a: Artifacts) -> Table:
    """DPO per round: pairs, steps, reward margins and the last reward accuracy."""
    rows: list[list[Cell]] = []
    for k, log in sorted(a.dpo_logs.items()):
        if s := dpo_summary(log):
            pairs = (a.manifests.get(f"round_{k}/dpo") or {}).get("counts", {}).get("pairs")
            rows.append([f"round {k}", fmt(pairs), str(s["steps"]), f"{s['first']:.4f}", f"{s['last']:.4f}",
                         f"{s['max']:.4f}", f"{s['acc']:.2f}"])
    return ["round", "pairs", "steps", "first margin", "last margin", "max margin", "last reward acc"], rows


def dpo_heldout_rows(a: Artifacts) -> Table:
    """Reward accuracy and margin on the pairs of held-out mined questions, per round and epoch."""
    rows: list[list[Cell]] = []
    for name, m in a.manifests.items():
        for h in (m.get("counts") or {}).get("heldout") or []:
            rows.append([name.split("/")[0].replace("_", " "), fmt(h.get("epoch")),
                         fmt(h.get("rewards/accuracies")), fmt(h.get("rewards/margins")), fmt(h.get("loss"))])
    return ["round", "epoch", "held-out reward accuracy", "held-out reward margin", "held-out loss"], rows


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


def model_rows(a: Artifacts) -> tuple[list[tuple[str, str]], Table]:
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
    rows: list[list[Cell]] = [[ident, *[fmt(u.get(k, 0)) for k in keys]] for ident, u in usage.items()]
    return items, (["model identity", *keys], rows)


def ablation_tables(ab: dict, level: float = DEFAULT_CONFIDENCE) -> list[tuple[str, list[str], list[list[Cell]]]]:
    """(title, headers, rows) for each ablation present; `level` is the run's CI level, which ablations share."""
    conf = f"value [{level_label(level)} CI]"
    out = []
    if ab.get("formats"):
        rows: list[list[Cell]] = []
        for f in ab["formats"]:
            u, al = f.get("unaligned"), f.get("aligned")
            gain = f"{100 * (al['value'] - u['value']):+.1f}" if u and al else ""
            rows.append([str(f.get("format")), ci_text(u), ci_text(al), gain])
        out.append(("Draft formats: unaligned vs aligned collaboration (%)",
                    ["format", "unaligned", "aligned", "aligned - unaligned (points)"], rows))
    if ab.get("pairs"):
        rows = [[fmt(p.get("fraction")), fmt(p.get("n_pairs")), ci_text(p)] for p in ab["pairs"]]
        out.append(("Number of preference pairs (%)", ["fraction", "pairs", conf], rows))
    if sw := ab.get("strong_swap"):
        rows = [[f"{s.get('label', n)} ({n})", ci_text(s)] for n, s in (sw.get("systems") or {}).items()]
        out.append((f"Strong model swapped to {sw.get('strong_model', '?')} (%)", ["system", conf], rows))
    if ab.get("dpo_search"):
        rows = []
        for d in ab["dpo_search"]:
            last = (d.get("heldout") or [{}])[-1]
            rows.append([", ".join(f"{k}={v}" for k, v in d["setting"].items()), fmt(d.get("valid_n")),
                         ci_text(d.get("refine")), ci_text(d.get("cowest")), pct(d.get("helped")), pct(d.get("hurt")),
                         pct(d.get("changed_vs_sft")), fmt(last.get("rewards/accuracies")),
                         fmt(last.get("rewards/margins"))])
        out.append(("Alignment settings on held-out mined questions (validation, never the test)",
                    ["setting", "questions", "refinement %", "CoWest %", "aligned drafts helped %", "hurt %",
                     "changed vs SFT %", "held-out reward acc (last epoch)", "held-out margin (last epoch)"], rows))
    if ab.get("at_budget"):
        rows = []
        for d in ab["at_budget"]:
            gap = d.get("cowest_minus_refine") or {}
            rows.append([d["variant"], fmt(d.get("strong_calls")), str(d.get("trained_on", "")), fmt(d.get("valid_n")),
                         ci_text(d.get("refine")), ci_text(d.get("cowest")),
                         f"{100 * gap['diff']:+.1f} [{100 * gap['lo']:+.1f}, {100 * gap['hi']:+.1f}]" if gap else "",
                         pct(d.get("helped")), pct(d.get("changed_vs_sft")), pct(d.get("states_fact"))])
        out.append(("Alignment at the same strong-call budget, on held-out mined questions (validation)",
                    ["alignment", "strong calls", "pairs / drafts scored per round", "questions", "refinement %",
                     "CoWest %", "CoWest - refinement (points)", "aligned drafts helped %", "changed vs SFT %",
                     "aligned drafts state the fact %"], rows))
    return out


# ---------------------------------------------------------------- formats


def cell_text(c: Cell) -> str:
    """A cell's text, without its css class."""
    return c[0] if isinstance(c, tuple) else c


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """A markdown table; `|` inside a cell is escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell_text(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """A CSV table with a header line."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(headers)
    w.writerows([cell_text(c) for c in r] for r in rows)
    return buf.getvalue()


def results_markdown(results: Results, keys: bool = False) -> str:
    """The results table as markdown ('(no systems)' when there are none)."""
    if not EvalResults.of(results).systems:
        return "(no systems)"
    headers, rows, _ = results_rows(results, keys)
    return md_table(headers, rows)


def comparisons_markdown(results: Results) -> str:
    """The paired comparisons as markdown ('' when there are none)."""
    headers, rows = comparison_rows(results)
    return md_table(headers, rows) if rows else ""


RECORD_FIELDS = ("answered", "draft_states_gold", "truncated_share", "strong_prompt_tokens_per_q",
                 "strong_completion_tokens_per_q", "cost_per_1k", "calls", "cache_hits", "wall_s")


def results_records(results: Results) -> Table:
    """The results as numbers for other tools: one row per system and metric, fractions as in results.json."""
    res = EvalResults.of(results)
    rows: list[list] = []
    for name, r in res.systems.items():
        for metric, v in r.metrics.items():
            rows.append([name, name if r.label is None else r.label, metric, v.value, v.lo, v.hi, res.level,
                         *("" if not r.holds(k) or getattr(r, k) is None else getattr(r, k) for k in RECORD_FIELDS)])
    return ["system", "label", "metric", "value", "lo", "hi", "confidence", *RECORD_FIELDS], rows


def results_csv(results: Results) -> str:
    """results.csv: the results table's numbers at full precision (the formatted table is results.md)."""
    return csv_table(*results_records(results))
