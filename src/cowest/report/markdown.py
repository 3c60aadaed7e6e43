"""report.md: the run's tables and summaries as markdown, built from the tables module's rows."""

from __future__ import annotations

from pathlib import Path

from ..layout import RunLayout
from .artifacts import Artifacts, load
from .plots import PLOTS
from .stages import stage_rows
from .tables import (
    ablation_tables,
    comparisons_markdown,
    dpo_heldout_rows,
    dpo_summary,
    draft_rows,
    eval_title,
    fmt,
    headline,
    md_table,
    model_rows,
    or_missing,
    results_markdown,
    sft_summary,
    warning_lines,
)


def summary_markdown(run_dir: Path) -> str:
    """The report.md text: results, recall, mining, SFT/DPO, ablations, stage times, models, plots, recipe."""
    return render_markdown(load(run_dir))


def console_markdown(run_dir: Path) -> str:
    """What `cowest run` prints when it ends: the headline, the warnings, the stage table and the test results
    (one screen); report.md holds the rest."""
    a = load(run_dir)
    parts = _head(a)
    headers, rows = stage_rows(a)
    if rows:
        parts.append(f"## Stages\n\n{md_table(headers, rows)}")
    if ev := a.evals.get("eval"):
        parts.append(f"## {eval_title('eval', ev)}\n\n{results_markdown(ev)}\n\n{comparisons_markdown(ev)}".strip())
    return "\n\n".join(parts) + "\n"


def _head(a: Artifacts) -> list[str]:
    """The title, the test's task, split and headline, and every stage warning."""
    parts = [f"# cowest run `{a.name}`"]
    if ev := a.evals.get("eval"):
        parts.append(f"task `{or_missing(ev.task)}`, split `{or_missing(ev.split)}`, {or_missing(ev.n)} "
                     f"questions, {or_missing(ev.date, '')}".rstrip(", "))
        if h := headline(ev):
            parts.append(f"**{h}**")
    if lines := warning_lines(a):  # first, where nobody reads past them
        parts.append("> **Warning: parts of this run changed nothing or were cut short.**\n>\n"
                     + "\n".join(f"> - {w}" for w in lines))
    return parts


def render_markdown(a: Artifacts) -> str:
    """The report.md text of loaded artifacts."""
    parts = _head(a)
    for name, r in a.evals.items():
        tables = f"{results_markdown(r)}\n\n{comparisons_markdown(r)}".strip()
        if (dr := draft_rows(r))[1]:
            tables += f"\n\nDraft diagnostics:\n\n{md_table(*dr)}"
        parts.append(f"## {eval_title(name, r)}\n\n{tables}")
    for k, st in sorted(a.mining.items()):
        parts.append(f"## Mining, round {k}\n\n" + "\n".join(f"- {s}: {fmt(v)}" for s, v in st.items()))
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
    if tables := ablation_tables(a.ablations, a.confidence):
        parts.append("## Ablations\n\n" + "\n\n".join(f"### {t}\n\n{md_table(h, r)}" for t, h, r in tables))
    headers, rows = stage_rows(a)
    if rows:
        parts.append(f"## Stages\n\n{md_table(headers, rows)}")
    items, (uh, ur) = model_rows(a)
    if items or ur:
        text = "\n".join(f"- {w}: `{v}`" for w, v in items)
        if ur:
            text += f"\n\nToken usage by model identity (all stages):\n\n{md_table(uh, ur)}"
        parts.append(f"## Models and hashes\n\n{text.strip()}")
    run = RunLayout(a.dir)
    plots = [p for p in PLOTS if run.plot(p).is_file()]
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{p}]({run.plot(p).relative_to(run.root).as_posix()})" for p in plots))
    if a.warnings:
        parts.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in a.warnings))
    if a.config_text is not None:
        parts.append(f"## Recipe\n\n```yaml\n{a.config_text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"
