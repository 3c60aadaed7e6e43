"""`cowest check`: a recipe checked before it is run (the check itself is `cowest.recipe_check`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .core import RecipeArg, SetOpt, command, fail


@command()
def check(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """Check a recipe without running it: every error (file:line: field), its data read and counted, its models and
    endpoints, and which stages would run and why. Nothing is written."""
    from ..recipe_check import check_recipe

    report = check_recipe(recipe, set_)
    for line in report.lines:
        typer.echo(line)
    if report.problems:
        raise fail("\n".join(report.problems), 2 if report.recipe_invalid else 1)
    typer.echo(f"{recipe}: ready to run")
