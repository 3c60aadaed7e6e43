"""report.html: one self-contained page rendered from a Jinja2 template, its CSS and JS inlined.

The template (templates/report.html.j2) lays out sections of parts (headings, tables, lists, figures, the
drill-down); this module only gathers those parts from the artifacts. Autoescaping makes every text a text, and
the drill-down data goes through `tojson`, which escapes `<`, `>` and `&`, so model output never becomes markup.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..results import EvalResults
from .artifacts import Artifacts
from .drill import FILTERS, drill_data
from .stages import stage_rows
from .tables import (
    Table,
    ablation_tables,
    comparison_rows,
    dpo_heldout_rows,
    dpo_rows,
    draft_rows,
    eval_title,
    headline,
    mining_rows,
    model_rows,
    results_rows,
    sft_summary,
    warning_lines,
)

Part = dict[str, Any]  # {"kind": "h3" | "table" | "list" | "kv" | "figures" | "drill" | "recipe", ...}


@cache
def _env() -> Environment:
    env = Environment(loader=PackageLoader("cowest.report"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # the drill-down rows keep their field order
    return env


def _asset(name: str) -> str:
    """A CSS or JS file shipped with the templates, inlined so the page needs nothing else."""
    env = _env()
    return env.loader.get_source(env, name)[0]  # type: ignore[union-attr]


def _table(t: Table, id_: str | None = None, classes: Sequence[str] = ()) -> Part:
    headers, rows = t
    return {"kind": "table", "headers": headers, "rows": rows, "classes": list(classes), "id": id_}


def _h3(text: str) -> Part:
    return {"kind": "h3", "text": text}


def _eval_sections(a: Artifacts) -> list[tuple[str, str, list[Part]]]:
    """One section per evaluation folder: results, then paired comparisons and draft diagnostics when present."""
    out = []
    for name, r in a.evals.items():
        h, rows, classes = results_rows(r)
        table_id = {"eval": "results-table", "eval_recall": "recall-table"}.get(name, f"results-table-{name}")
        parts = [_table((h, rows), table_id, classes)]
        if (ct := comparison_rows(r))[1]:
            parts += [_h3("Paired comparisons"), _table(ct, f"{table_id}-comparisons")]
        if (dt := draft_rows(r))[1]:
            parts += [_h3("Draft diagnostics"), _table(dt, f"{table_id}-drafts")]
        out.append((f"sec-{name}", eval_title(name, r), parts))
    return out


def _drill(a: Artifacts) -> Part:
    """The drill-down's data and filter buttons (label, count); no data without predictions."""
    if not a.predictions:
        return {"kind": "drill", "data": None}
    data = drill_data(a.predictions)
    ref = data["ref"] or "cowest"
    filters = [(f, label.format(ref=ref), data["counts"][f]) for f, label in FILTERS.items()]
    filters += [(f, label, data["counts"][f]) for f, label in data.get("metadata_filters", {}).items()]
    return {"kind": "drill", "data": data, "ref": ref, "filters": filters}


def _sections(a: Artifacts, plots: dict[str, bytes]) -> list[tuple[str, str, list[Part]]]:
    """(id, title, parts) of every section with something to show, in page order."""
    sections = _eval_sections(a)
    if a.mining:
        sections.append(("sec-mining", "Collaborative feedback (mining)", [_table(mining_rows(a))]))
    training: list[Part] = []
    if sft := sft_summary(a):
        training += [_h3("SFT"), {"kind": "list", "lines": sft}]
    if (dr := dpo_rows(a))[1]:
        training += [_h3("DPO"), _table(dr)]
    if (hr := dpo_heldout_rows(a))[1]:
        training += [_h3("DPO on held-out mined questions, per epoch"), _table(hr)]
    if training:
        sections.append(("sec-training", "Training", training))
    if tables := ablation_tables(a.ablations, a.confidence):
        sections.append(("sec-ablations", "Ablations", [p for t, h, r in tables for p in (_h3(t), _table((h, r)))]))
    if plots:
        figures = [(p, base64.b64encode(b).decode()) for p, b in plots.items()]
        sections.append(("sec-plots", "Plots", [{"kind": "figures", "figures": figures}]))
    sections.append(("sec-drill", "Per-question drill-down", [_drill(a)]))
    if (st := stage_rows(a))[1]:
        sections.append(("sec-times", "Stages", [_table(st)]))
    items, usage = model_rows(a)
    if items or usage[1]:
        models: list[Part] = [{"kind": "kv", "pairs": items}] if items else []
        if usage[1]:
            models += [_h3("Token usage by model identity (all stages)"), _table(usage)]
        sections.append(("sec-models", "Models and hashes", models))
    if a.warnings:
        sections.append(("sec-warnings", "Warnings", [{"kind": "list", "lines": a.warnings}]))
    if a.config_text is not None:
        sections.append(("sec-recipe", "Recipe", [{"kind": "recipe", "text": a.config_text}]))
    return sections


def render_html(a: Artifacts, plots: dict[str, bytes]) -> str:
    """The report.html text of loaded artifacts and their plots (PNG bytes by plot name)."""
    ev = a.evals.get("eval") or EvalResults()
    meta = [f"task {ev.task or (a.config.get('task') or {}).get('name', '?')}",
            f"split {ev.split}" if ev.split else "", f"{ev.n} questions" if ev.n else "", str(ev.date or "")]
    sections = [{"id": i, "title": t, "nav": t.split(":")[0], "parts": p} for i, t, p in _sections(a, plots)]
    return _env().get_template("report.html.j2").render(
        name=a.name, meta=" · ".join(x for x in meta if x), headline=headline(ev) if "eval" in a.evals else None,
        sections=sections, css=_asset("report.css"), js=_asset("report.js"), warnings=warning_lines(a),
    )
