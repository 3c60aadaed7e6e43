"""A run's report (report.md, a self-contained report.html, PNG plots) built from its artifacts alone.

No model is loaded: everything comes from the files the stages wrote (config.yaml, manifests, results, predictions,
mining scores, training logs, optional ablations). Any artifact may be missing, so partial runs report what they have.

Modules, one job each: `artifacts` loads the run files, `tables` builds every table's rows (the one renderer of
results.json; markdown and CSV formats), `plots` draws the PNGs, `drill` gathers the per-question drill-down,
`markdown` writes report.md and `html` renders report.html from the package's Jinja2 template.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_file, write_text
from ..layout import RunLayout
from .artifacts import Artifacts, load
from .drill import FILTERS, drill_data
from .html import render_html
from .markdown import render_markdown, summary_markdown
from .plots import PLOTS, make_plots, plot_accuracy, plot_cost, plot_deltas, plot_margins, plot_pairs
from .stages import stage_rows
from .tables import (
    Cell,
    Table,
    ablation_tables,
    comparison_rows,
    csv_table,
    dpo_heldout_rows,
    dpo_rows,
    dpo_summary,
    draft_rows,
    fact_recall_rows,
    headline,
    md_table,
    mining_round_rows,
    mining_rows,
    model_rows,
    results_csv,
    results_markdown,
    results_rows,
    sft_summary,
)

__all__ = [
    "FILTERS", "PLOTS", "Artifacts", "Cell", "Table", "ablation_tables", "build_report", "comparison_rows",
    "csv_table", "dpo_heldout_rows", "dpo_rows", "dpo_summary", "draft_rows", "drill_data", "fact_recall_rows",
    "headline", "load", "make_plots", "md_table", "mining_round_rows", "mining_rows", "model_rows", "plot_accuracy",
    "plot_cost", "plot_deltas", "plot_margins", "plot_pairs", "render_html", "render_markdown", "results_csv",
    "results_markdown", "results_rows", "sft_summary", "stage_rows", "summary_markdown",
]


def build_report(run_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into `run_dir`; return {relative name: path}."""
    run = RunLayout(run_dir)
    a = load(run.root)
    plots = make_plots(a)
    out: dict[str, Path] = {}
    for name in PLOTS:
        path = run.plot(name)
        if name in plots:
            with atomic_file(path, "wb") as f:
                f.write(plots[name])
            out[path.relative_to(run.root).as_posix()] = path
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier build would contradict the report
    write_text(run.report_md, render_markdown(a))
    write_text(run.report_html, render_html(a, plots))
    return {run.report_md.name: run.report_md, run.report_html.name: run.report_html, **out}
