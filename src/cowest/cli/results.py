"""The commands that read finished runs: `report`, `compare`, `publish`, `readme`, and `tasks`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..layout import ComparisonDir
from .core import command, fail


@command()
def report(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory.")) -> None:
    """Rebuild report.md, report.html and the plots of a run from its artifacts alone (no model is loaded)."""
    from ..report import build_report

    paths = build_report(run_dir)
    typer.echo(paths["report.md"].read_text())
    typer.echo(f"HTML report: {paths['report.html']}", err=True)


@command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., exists=True, file_okay=False, help="Run directories (one per seed)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: runs/compare-<first run's folder name>)."),
    eval_name: str = typer.Option("eval", "--eval", help="Which evaluation folder of each run to compare."),
    n_boot: int = typer.Option(2000, help="Bootstrap resamples."),
    confidence: Optional[float] = typer.Option(None, help="CI level (default: the first run's eval.confidence)."),
) -> None:
    """Several runs as one result: per-seed table, pooled scores and pooled paired differences (compare.md/.json)."""
    from ..compare import write_comparison

    out = out or Path("runs") / f"compare-{run_dirs[0].resolve().name}"
    try:
        write_comparison(run_dirs, out, eval_name, n_boot=n_boot, confidence=confidence)
    except KeyError as e:
        raise fail(f"malformed results: missing key {e}") from None
    except ValueError as e:  # CompareError, or a bad JSON / JSONL line
        raise fail(str(e)) from None
    written = ComparisonDir(out)
    typer.echo(written.md.read_text())
    typer.echo(f"written: {written.md}, {written.json}", err=True)


@command()
def publish(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run or comparison directory."),
    dest: Path = typer.Argument(..., help="Where to publish (replaced as a whole), e.g. results/formulary."),
) -> None:
    """Copy a run's small result files (config, manifests, results, predictions, logs) to DEST; never weights."""
    from ..publish import publish as publish_

    files = publish_(run_dir, dest)
    typer.echo(f"published {len(files)} files to {dest}")


@command()
def readme(
    check: bool = typer.Option(False, "--check", help="Only check: exit 1 listing the blocks that are out of date."),
    readme_path: Path = typer.Option(Path("README.md"), "--readme",
                                     help="The README holding cowest:table blocks and cowest:value figures."),
) -> None:
    """Regenerate the README's `<!-- cowest:table DIR KIND -->` blocks and `cowest:value` figures from published
    results."""
    from ..io import write_text
    from ..publish import check_readme, render_readme

    if not readme_path.is_file():
        raise fail(f"{readme_path}: no such file")
    if check:
        stale = check_readme(readme_path)
        if stale:
            raise fail(f"{readme_path}: stale tables or figures: {', '.join(stale)} (run `cowest readme`)")
        typer.echo(f"{readme_path}: tables and figures in sync")
        return
    text = readme_path.read_text(encoding="utf-8")
    new = render_readme(text, readme_path.parent)
    if new != text:
        write_text(readme_path, new)
    typer.echo(f"{readme_path}: {'regenerated' if new != text else 'already in sync'}")


@command()
def tasks(
    names: Optional[list[str]] = typer.Argument(None, help="Loaders to describe (default: all)."),
    describe_: bool = typer.Option(False, "--describe", "-d", help="Each loader's fields, knobs and notes."),
) -> None:
    """List the registered task loaders (with --describe: what each reads and which recipe fields steer it)."""
    from ..tasks.registry import COMMON, available, describe

    chosen = names or available()
    unknown = [n for n in chosen if n not in available()]
    if unknown:
        raise fail(f"unknown task {', '.join(unknown)}; known: {', '.join(available())}", 2)
    if not describe_:
        width = max(map(len, chosen))
        for name in chosen:
            typer.echo(f"{name:<{width}}  {describe(name).summary}")
        return
    blocks = [describe(name).text(name) for name in chosen]
    typer.echo("\n\n".join([*blocks, COMMON.text("every task")]))
