"""`cowest models ...`: the offline model and data assets."""

from __future__ import annotations

import typer

from .core import command, models_app


@command("install", target=models_app)
def models_install(names: list[str] = typer.Argument(None, help="Assets to install (default: all).")) -> None:
    """Download and prepare the offline models and data (idempotent)."""
    from ..assets import install

    for name, path in install(names or None).items():
        typer.echo(f"{name}\t{path}")


@command("list", target=models_app)
def models_list() -> None:
    """Show every asset, whether it is installed, and where."""
    from ..assets import list_assets

    for a in list_assets():
        state = "installed" if a["installed"] else "missing"
        typer.echo(f"{a['name']:<32} {a['kind']:<6} {state:<10} {a['path']}")


@command("path", target=models_app)
def models_path(name: str) -> None:
    """Print the path of an installed asset."""
    from ..assets import path

    typer.echo(str(path(name)))
