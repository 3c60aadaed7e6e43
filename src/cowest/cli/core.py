"""The command line's frame: the app, its global flags, and `command`, which every command registers with."""

from __future__ import annotations

import functools
from typing import Callable

import typer

GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


class _Group(typer.core.TyperGroup):
    """The command group: `-v`/`-q` are taken after the subcommand too (`cowest run r.yaml -v`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
        end = args.index("--") if "--" in args else len(args)
        flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
        rest = [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, flags + rest)


app = typer.Typer(help="Weak-strong LLM collaboration with preference alignment (CoWest).", no_args_is_help=True,
                  cls=_Group)
models_app = typer.Typer(help="Offline model and data assets.", no_args_is_help=True)
app.add_typer(models_app, name="models")

RecipeArg = typer.Argument(..., exists=True, dir_okay=False, help="Recipe YAML file.")
SetOpt = typer.Option([], "--set", "-s", help="Override a recipe field, e.g. --set dpo.beta=0.2 (repeatable).")
RoundOpt = typer.Option(1, "--round", min=1, help="Which round (1-based).")
SplitOpt = typer.Option(None, help="test (the recipe's default), or an extra split of the task (e.g. recall).")
LimitOpt = typer.Option(None, min=1, help="Only the first N questions.")


_state = {"verbose": False}


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"cowest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug messages too (before or after the command)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only (before or after the command)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version."),
) -> None:
    from ..console import quiet_libraries
    from ..logs import setup

    _state["verbose"] = verbose
    setup(int(verbose) - int(quiet) if main_process() else -2)  # several processes: the main one tells the story
    quiet_libraries(verbose)  # third-party bars and warnings: with -v only


def main_process() -> bool:
    """Whether this is the main process (across several, only it prints results)."""
    from .. import dist

    return dist.is_main()


def fail(msg: str, code: int = 1) -> typer.Exit:
    """Print a red error line for each line of `msg`; the caller raises the returned Exit."""
    for line in msg.splitlines() or [""]:
        typer.secho(f"error: {line}", fg="red", err=True)
    return typer.Exit(code)


def command(*names: str, target: typer.Typer = app) -> Callable:
    """Register a command whose known errors end in one red line and exit 1 (2 for a bad recipe)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            from .. import dist
            from ..errors import CowestError, RecipeError

            ok = False
            try:
                result = fn(*args, **kwargs)
                ok = True
                return result
            except CowestError as e:  # the message says what to fix; a traceback (-v) would bury it
                if _state["verbose"]:
                    raise
                raise fail(str(e), 2 if isinstance(e, RecipeError) else 1) from None
            finally:
                dist.finish(ok)

        return target.command(*names)(inner)

    return wrap


def main() -> None:
    """Entry point for `python -m cowest`."""
    app(prog_name="cowest")
