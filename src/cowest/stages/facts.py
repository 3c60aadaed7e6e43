"""Stage 0 (optional, `task.fact_paraphrases`): the strong model rewords each fact line, so that SFT teaches the
weak model each fact in several wordings rather than one sentence many times (`collab/paraphrase.py`)."""

from __future__ import annotations

from pathlib import Path

from .. import checks
from ..collab.paraphrase import paraphrase
from ..context import RunContext
from ..io import read_jsonl, write_jsonl
from ..ledger import StageDecl, paraphrasing


def run_facts(ctx: RunContext) -> dict | None:
    """Reword the fact lines unless up to date (None: the recipe asks for no rewordings)."""
    if not paraphrasing(ctx.recipe):
        return None
    n = ctx.recipe.task.fact_paraphrases

    def run(sdir: Path) -> dict:
        rows = paraphrase(ctx.strong, ctx.task.facts, n)
        write_jsonl(sdir / "paraphrases.jsonl", rows)
        counts = dict(facts=len(rows), asked=n * len(rows), kept=sum(len(r["paraphrases"]) for r in rows),
                      dropped=sum(r["dropped"] for r in rows))
        return {**counts, "warnings": checks.report(checks.facts_warnings(counts))}

    try:
        return ctx.ledger.run("facts", ctx.dir / "facts", ctx.inputs(StageDecl("facts", "facts")), run)
    finally:
        ctx.release()  # SFT comes next and needs every core


def reworded(ctx: RunContext) -> list[str]:
    """The strong model's rewordings of the fact lines ([] when the run has none)."""
    path = ctx.dir / "facts" / "paraphrases.jsonl"
    if not paraphrasing(ctx.recipe) or not path.exists():
        return []
    return [p for row in read_jsonl(path) for p in row["paraphrases"]]
