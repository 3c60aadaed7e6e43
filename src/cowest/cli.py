"""The `cowest` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Weak-strong LLM collaboration with preference alignment (CoWest).", no_args_is_help=True)
models_app = typer.Typer(help="Offline model and data assets.", no_args_is_help=True)
app.add_typer(models_app, name="models")

RecipeArg = typer.Argument(..., exists=True, dir_okay=False, help="Recipe YAML file.")
SetOpt = typer.Option([], "--set", "-s", help="Override a recipe field, e.g. --set dpo.beta=0.2 (repeatable).")


def _run(recipe: Path, overrides: list[str]):
    from .config import RecipeError, load_recipe
    from .run import Run

    try:
        return Run(load_recipe(recipe, overrides))
    except RecipeError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def run(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """Run the whole method: sft -> mine -> dpo (x rounds) -> eval. Finished stages are skipped."""
    _run(recipe, set_).run_all()


@app.command()
def sft(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """Stage 1: LoRA SFT of the weak model."""
    _run(recipe, set_).sft()


@app.command()
def mine(recipe: Path = RecipeArg, round_: int = typer.Option(1, "--round"), set_: list[str] = SetOpt) -> None:
    """Stage 2: collaborative feedback (preference pair mining)."""
    r = _run(recipe, set_)
    try:
        r.mine(round_)
    finally:
        r.release()


@app.command()
def dpo(recipe: Path = RecipeArg, round_: int = typer.Option(1, "--round"), set_: list[str] = SetOpt) -> None:
    """Stage 3: align the weak model on the mined pairs."""
    _run(recipe, set_).dpo(round_)


@app.command("eval")
def eval_(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """Stage 4: evaluate the recipe's systems on the test split."""
    r = _run(recipe, set_)
    try:
        r.evaluate()
    finally:
        r.release()


@app.command()
def ablate(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """The recipe's ablations (after `run`): draft formats, pair subsets, a second strong model."""
    import json

    r = _run(recipe, set_)
    if not r.recipe.ablations.any:
        typer.secho("error: the recipe has no ablations: block (formats, pair_fractions or strong)", fg="red", err=True)
        raise typer.Exit(2)
    try:
        typer.echo(json.dumps(r.ablate(), indent=2))
    finally:
        r.release()


@app.command()
def infer(
    recipe: Path = RecipeArg,
    split: str = typer.Option("test", help="test, or an extra split of the task (e.g. recall)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions."),
    set_: list[str] = SetOpt,
) -> None:
    """Collaborative inference with the recipe's weak model as it is: weak alone, strong alone, weak draft -> strong."""
    extra = [f"eval.split={split}"] + ([f"eval.limit={limit}"] if limit is not None else [])
    r = _run(recipe, [*set_, *extra])
    try:
        r.evaluate(["weak_base", "strong", "collab_base"], name="infer")
    finally:
        r.release()


@app.command()
def report(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory.")) -> None:
    """Rebuild report.md, report.html and the plots of a run from its artifacts alone (no model is loaded)."""
    from .report import build_report

    paths = build_report(run_dir)
    typer.echo(paths["report.md"].read_text())
    typer.echo(f"HTML report: {paths['report.html']}", err=True)


@app.command()
def tasks() -> None:
    """List the registered task loaders."""
    from .tasks import available

    for name in available():
        typer.echo(name)


@models_app.command("install")
def models_install(names: list[str] = typer.Argument(None, help="Assets to install (default: all).")) -> None:
    """Download and prepare the offline models and data (idempotent)."""
    from .assets import AssetError, install

    try:
        for name, path in install(names or None).items():
            typer.echo(f"{name}\t{path}")
    except AssetError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None


@models_app.command("list")
def models_list() -> None:
    """Show every asset, whether it is installed, and where."""
    from .assets import list_assets

    for a in list_assets():
        state = "installed" if a["installed"] else "missing"
        typer.echo(f"{a['name']:<32} {a['kind']:<6} {state:<10} {a['path']}")


@models_app.command("path")
def models_path(name: str) -> None:
    """Print the path of an installed asset."""
    from .assets import AssetError, path

    try:
        typer.echo(str(path(name)))
    except AssetError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Entry point for `python -m cowest`."""
    app(prog_name="cowest")


if __name__ == "__main__":
    sys.exit(main())
