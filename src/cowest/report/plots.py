"""The report's plots as PNG bytes, drawn on matplotlib's Agg canvas (no pyplot state, no display)."""

from __future__ import annotations

import io
from typing import Sequence

from ..results import DEFAULT_CONFIDENCE, EvalResults, Interval, Results
from .artifacts import Artifacts
from .tables import is_cowest, level_label

PLOTS = ("accuracy", "deltas", "dpo_margins", "cost_accuracy", "pairs_curve")


def _figure():
    from matplotlib.figure import Figure  # Figure.savefig renders through Agg: no display, no global backend switch

    fig = Figure(figsize=(6, 3.5), dpi=100)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _errs(items: Sequence[Interval]) -> list[list[float]]:
    """Asymmetric error bars in percent from intervals."""
    return [[100 * max(m.value - m.lo, 0) for m in items], [100 * max(m.hi - m.value, 0) for m in items]]


def plot_accuracy(results: Results) -> bytes | None:
    """Primary metric per system with CI bars; CoWest highlighted."""
    res = EvalResults.of(results)
    metric = res.primary_metric
    systems = [(n, r.metrics[metric]) for n, r in res.systems.items() if metric and metric in r.metrics]
    if not systems:
        return None
    fig, ax = _figure()
    names = [n for n, _ in systems][::-1]  # first system on top
    ms = [m for _, m in systems][::-1]
    colors = ["#e45756" if is_cowest(n) else ("#4c78a8" if n == "strong" else "#9ecae9") for n in names]
    ax.barh(names, [100 * m.value for m in ms], xerr=_errs(ms), color=colors, capsize=3, ecolor="#333")
    for i, m in enumerate(ms):  # the value just right of its CI bar, where it cannot overlap it
        ax.text(100 * m.hi + 1.5, i, f"{100 * m.value:.1f}", va="center", ha="left", fontsize=8, color="#111")
    ax.set_xlim(0, 108)
    ax.set_xlabel(f"{metric} (%), {level_label(res.level)} CI")
    ax.set_title(f"{res.task or ''} / {res.split or ''}: {metric}", fontsize=10)
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


def plot_cost(results: Results) -> bytes | None:
    """Primary metric against strong-model cost per question (or price per 1k questions when every system has one)."""
    fig = cost_figure(results)
    return _png(fig) if fig is not None else None


def cost_figure(results: Results):
    """The cost plot's figure, its labels placed where they overprint neither each other nor a point."""
    res = EvalResults.of(results)
    metric = res.primary_metric
    systems = {n: r for n, r in res.systems.items() if metric and metric in r.metrics}
    if not systems:
        return None
    priced = all(r.cost_per_1k is not None for r in systems.values())
    xs = [r.cost_per_1k if priced else r.strong_tokens for r in systems.values()]
    ms = [r.metrics[metric] for r in systems.values()]
    fig, ax = _figure()
    for (n, _), x, m in zip(systems.items(), xs, ms):
        color = "#e45756" if is_cowest(n) else "#4c78a8"
        ax.errorbar([x], [100 * m.value], yerr=_errs([m]), fmt="o", color=color, capsize=3)
    currency = (res.price.currency if res.price else None) or ""
    ax.set_xlabel(f"cost per 1k questions {currency}".strip() if priced else "strong-model tokens per question")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy against strong-model cost", fontsize=10)
    ax.margins(x=0.15)
    ax.grid(alpha=0.3)
    bars = [((x, 100 * m.lo), (x, 100 * m.hi)) for x, m in zip(xs, ms)]
    place_labels(fig, ax, [(x, 100 * m.value) for x, m in zip(xs, ms)], list(systems), bars)
    return fig


# Label offsets from a point, in points, nearest first: right or left of it, then further up or down.
_OFFSETS = [(dx, dy) for dy in (4, -4, 13, -13, 22, -22, 31, -31) for dx in (5, -5)]


Point = tuple[float, float]


def place_labels(fig, ax, points: Sequence[Point], labels: Sequence[str],
                 bars: Sequence[tuple[Point, Point]] = (), fontsize: int = 8) -> list:
    """Annotate each point at the first offset whose text box overlaps no earlier label, no point, no error bar
    (`bars`: the ends of each) and stays in the axes, else the least overlapping one: greedy and deterministic."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig.tight_layout()  # the layout the PNG will have (labels stay out of it), so pixel boxes are final
    renderer = FigureCanvasAgg(fig).get_renderer()
    pixels = ax.transData.transform(points) if points else []
    taken = [_box(px, py, 4) for px, py in pixels]  # every marker, padded
    for lo, hi in bars:
        (x0, y0), (x1, y1) = ax.transData.transform([lo, hi])
        taken.append(Bbox([[min(x0, x1) - 1, min(y0, y1)], [max(x0, x1) + 1, max(y0, y1)]]))
    placed = []
    for (x, y), text in zip(points, labels):
        best = None
        for dx, dy in _OFFSETS:
            # A label moved away from its point gets a thin leader line back to it.
            lead = dict(arrowprops=dict(arrowstyle="-", lw=0.5, color="#888", shrinkA=0, shrinkB=4)) \
                if abs(dy) > _OFFSETS[0][1] else {}
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                              ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                              annotation_clip=False, **lead)
            ann.set_in_layout(False)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).padded(1)  # the text alone, not its leader line
            # Within the axes, where a label neither crosses a spine nor leaves the image.
            outside = box.width * box.height - _overlap(box, ax.bbox)
            cost = sum(_overlap(box, t) for t in taken) + 1e3 * outside
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        taken.append(best[2])
        placed.append(best[1])
    return placed


def _box(px: float, py: float, r: float):
    from matplotlib.transforms import Bbox

    return Bbox([[px - r, py - r], [px + r, py + r]])


def _overlap(a, b) -> float:
    """Area shared by two boxes (0 when they only touch)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def plot_pairs(ab: dict, level: float = DEFAULT_CONFIDENCE) -> bytes | None:
    """Ablation: score against the number of preference pairs used for DPO."""
    pts = sorted((p for p in ab.get("pairs") or [] if p.get("n_pairs") is not None and "value" in p),
                 key=lambda p: p["n_pairs"])
    if not pts:
        return None
    fig, ax = _figure()
    ax.errorbar([p["n_pairs"] for p in pts], [100 * p["value"] for p in pts],
                yerr=_errs([Interval(value=p["value"], lo=p.get("lo", p["value"]), hi=p.get("hi", p["value"]))
                            for p in pts]),
                fmt="-o", capsize=3, color="#e45756")
    ax.set_xlabel("preference pairs used")
    ax.set_ylabel(f"score (%), {level_label(level)} CI")
    ax.set_title("CoWest against the number of DPO pairs", fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def make_plots(a: Artifacts) -> dict[str, bytes]:
    """PNG bytes of every plot whose data exists."""
    ev = a.evals.get("eval")
    made = {
        "accuracy": plot_accuracy(ev) if ev is not None else None,
        "deltas": plot_deltas(a.scores),
        "dpo_margins": plot_margins(a.dpo_logs),
        "cost_accuracy": plot_cost(ev) if ev is not None else None,
        "pairs_curve": plot_pairs(a.ablations, a.confidence),
    }
    return {k: v for k, v in made.items() if v is not None}


