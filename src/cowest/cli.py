"""The `cowest` command line."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from .layout import ComparisonDir, RunLayout

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
        from . import __version__

        typer.echo(f"cowest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug messages too (before or after the command)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only (before or after the command)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version."),
) -> None:
    from .console import quiet_libraries
    from .logs import setup

    _state["verbose"] = verbose
    setup(int(verbose) - int(quiet) if _main_process() else -2)  # several processes: the main one tells the story
    quiet_libraries(verbose)  # third-party bars and warnings: with -v only


def _main_process() -> bool:
    from . import dist

    return dist.is_main()


def _fail(msg: str, code: int = 1) -> typer.Exit:
    """Print a red error line for each line of `msg`; the caller raises the returned Exit."""
    for line in msg.splitlines() or [""]:
        typer.secho(f"error: {line}", fg="red", err=True)
    return typer.Exit(code)


def command(*names: str, target: typer.Typer = app) -> Callable:
    """Register a command whose known errors end in one red line and exit 1 (2 for a bad recipe)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            from . import dist
            from .config import RecipeError
            from .errors import CowestError

            try:
                return fn(*args, **kwargs)
            except CowestError as e:  # the message says what to fix; a traceback (-v) would bury it
                if _state["verbose"]:
                    raise
                raise _fail(str(e), 2 if isinstance(e, RecipeError) else 1) from None
            finally:
                dist.finish()

        return target.command(*names)(inner)

    return wrap


def _run(recipe: Path, overrides: list[str]):
    from .config import load_recipe
    from .run import Run

    return Run(load_recipe(recipe, overrides))


def _parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is an error line."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise _fail(f"--seeds {text!r}: expected distinct comma-separated integers, e.g. 0,1,2", 2)
    return seeds


@command()
def run(
    recipe: Path = RecipeArg,
    set_: list[str] = SetOpt,
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="Run once per seed (e.g. 0,1,2) as <name>-seedN, then compare them in <name>-seeds/."
    ),
) -> None:
    """Run the whole method: sft -> mine -> dpo (x rounds) -> eval. Finished stages are skipped."""
    if seeds is None:
        paths = _run(recipe, set_).run_all()
        if _main_process():
            _summary(paths)
        return
    from .compare import write_comparison
    from .config import load_recipe

    seed_list = _parse_seeds(seeds)
    base = load_recipe(recipe, set_)
    dirs = []
    for n in seed_list:
        extra = [f"seed={n}", f"task.seed={n}", f"name={json.dumps(f'{base.name}-seed{n}')}"]
        r = _run(recipe, [*set_, *extra])
        paths = r.run_all()
        dirs.append(r.dir)
        if _main_process():
            _summary(paths)
    if not _main_process():
        return
    out = Path(base.output_dir) / f"{base.name}-seeds"
    try:
        write_comparison(dirs, out)
    except (ValueError, KeyError) as e:
        raise _fail(f"comparing the seeds: {e}") from None
    typer.echo(ComparisonDir(out).md.read_text())
    typer.echo(f"comparison: {out}", err=True)


def _summary(paths: dict[str, Path]) -> None:
    """A finished run on one screen (stdout), then where its whole report is (stderr)."""
    from .report.markdown import console_markdown

    typer.echo(console_markdown(paths["report.md"].parent))
    typer.echo(f"whole report: {paths['report.md']} and {paths['report.html']}", err=True)


def _stage(recipe: Path, overrides: list[str], fn: Callable) -> None:
    """Run one stage of a recipe's run; servers and models are released whatever happens."""
    r = _run(recipe, overrides)
    try:
        fn(r)
    finally:
        r.release()


@command()
def init(
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Your training questions (.jsonl/.json/.csv)."),
    test: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Your test questions (same columns)."),
    facts: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Your domain's facts, one a line."),
    type_: Optional[str] = typer.Option(None, "--type", help="multiple_choice, short_answer or classification "
                                                               "(default: read from the data)."),
    field: list[str] = typer.Option([], "--field", help="Our field = your column, e.g. --field gold=label."),
    name: Optional[str] = typer.Option(None, help="The run's name (default: the data's folder or file name)."),
    minutes: float = typer.Option(60.0, min=5, help="Budget on the offline default models, 2 CPU cores."),
    strong_calls: Optional[int] = typer.Option(None, min=50, help="Budget in strong calls instead (a remote model)."),
    strong_model: Optional[str] = typer.Option(None, help="The strong model (with --base-url: an endpoint's)."),
    base_url: Optional[str] = typer.Option(None, help="An OpenAI-compatible endpoint for the strong model."),
    systems: Optional[str] = typer.Option(None, help="The evaluation's rows, comma-separated (default: weak SFT and "
                                                     "aligned, strong alone, retrieval, refinement, CoWest)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the recipe (default: recipe.yaml beside DATA)."),
    force: bool = typer.Option(False, help="Overwrite an existing recipe."),
) -> None:
    """Write a recipe for your own data, with the settings the measurements support, sized by a budget."""
    from .config import load_recipe
    from .recipes import default_name, render, size, survey
    from .tasks import load_task

    if base_url and not strong_model:
        raise _fail("--base-url needs --strong-model (the endpoint's model name)", 2)
    given = dict(f.split("=", 1) for f in field if "=" in f)
    if len(given) != len(field):
        raise _fail(f"--field takes OUR_FIELD=COLUMN, got {', '.join(f for f in field if '=' not in f)}", 2)
    target = out or data.parent / "recipe.yaml"
    if target.exists() and not force:
        raise _fail(f"{target} exists; pass --force to overwrite it or --out to write elsewhere", 2)
    found = survey(str(data), str(test) if test else None, str(facts) if facts else None, type_, given)
    rows = [x.strip() for x in systems.split(",") if x.strip()] if systems else None
    sizes = size(found, minutes, strong_calls, *([rows] if rows else []))
    text = render(found, sizes, name or default_name(str(data)), strong_model, base_url)
    target.write_text(text)
    task = load_task(load_recipe(target, check_trainers=False).task)  # the recipe reads the data as written
    typer.echo(f"{target}: {found.type}, {len(task.train)} training and {len(task.test)} test questions"
               + (f", {found.facts} facts" if found.facts else "")
               + (f"; mining {found.where} ({found.pool} questions)" if found.where else ""), err=True)
    for note in found.notes + sizes.notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
    typer.echo(str(target))


@command()
def sft(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """Stage 1: LoRA SFT of the weak model."""
    _stage(recipe, set_, lambda r: r.sft())


@command()
def mine(recipe: Path = RecipeArg, round_: int = RoundOpt, set_: list[str] = SetOpt) -> None:
    """Stage 2: collaborative feedback (preference pair mining)."""
    _stage(recipe, set_, lambda r: r.mine(round_))


@command()
def dpo(recipe: Path = RecipeArg, round_: int = RoundOpt, set_: list[str] = SetOpt) -> None:
    """Stage 3: align the weak model on the mined pairs."""
    _stage(recipe, set_, lambda r: r.dpo(round_))


def _split_overrides(split: str | None, limit: int | None) -> list[str]:
    return ([f"eval.split={split}"] if split else []) + ([f"eval.limit={limit}"] if limit is not None else [])


def _evaluate(r, systems: list[str] | None = None, name: str = "eval") -> None:
    """Evaluate and print the results table on stdout (progress goes to stderr)."""
    r.evaluate(systems, name=name)
    typer.echo(r.layout.eval(name).results_md.read_text())


@command("eval")
def eval_(
    recipe: Path = RecipeArg, split: Optional[str] = SplitOpt, limit: Optional[int] = LimitOpt, set_: list[str] = SetOpt
) -> None:
    """Stage 4: evaluate the recipe's systems (on the test split unless --split)."""
    _stage(recipe, [*set_, *_split_overrides(split, limit)], _evaluate)


@command()
def ablate(recipe: Path = RecipeArg, set_: list[str] = SetOpt) -> None:
    """The recipe's ablations (after `run`): draft formats, pair subsets, a second strong model, alignment settings."""
    from .config import load_recipe

    if not load_recipe(recipe, set_).ablations.any:  # before any run folder is made
        raise _fail("the recipe has no ablations: block (formats, pair_fractions, strong or dpo_settings)", 2)
    _stage(recipe, set_, lambda r: typer.echo(json.dumps(r.ablate(), indent=2)))


@command()
def infer(
    recipe: Path = RecipeArg, split: Optional[str] = SplitOpt, limit: Optional[int] = LimitOpt, set_: list[str] = SetOpt
) -> None:
    """Collaborative inference with the recipe's weak model as it is: weak alone, strong alone, weak draft -> strong."""
    _stage(recipe, [*set_, *_split_overrides(split, limit)],
           lambda r: _evaluate(r, ["weak_base", "strong", "collab_base"], name="infer"))


@command()
def report(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory.")) -> None:
    """Rebuild report.md, report.html and the plots of a run from its artifacts alone (no model is loaded)."""
    from .report import build_report

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
    from .compare import write_comparison

    out = out or Path("runs") / f"compare-{run_dirs[0].resolve().name}"
    try:
        write_comparison(run_dirs, out, eval_name, n_boot=n_boot, confidence=confidence)
    except KeyError as e:
        raise _fail(f"malformed results: missing key {e}") from None
    except ValueError as e:  # CompareError, or a bad JSON / JSONL line
        raise _fail(str(e)) from None
    written = ComparisonDir(out)
    typer.echo(written.md.read_text())
    typer.echo(f"written: {written.md}, {written.json}", err=True)


@command()
def publish(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run or comparison directory."),
    dest: Path = typer.Argument(..., help="Where to publish (replaced as a whole), e.g. results/formulary."),
) -> None:
    """Copy a run's small result files (config, manifests, results, predictions, logs) to DEST; never weights."""
    from .publish import publish as publish_

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
    from .io import write_text
    from .publish import check_readme, render_readme

    if not readme_path.is_file():
        raise _fail(f"{readme_path}: no such file")
    if check:
        stale = check_readme(readme_path)
        if stale:
            raise _fail(f"{readme_path}: stale tables or figures: {', '.join(stale)} (run `cowest readme`)")
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
    from .tasks.registry import COMMON, available, describe

    chosen = names or available()
    unknown = [n for n in chosen if n not in available()]
    if unknown:
        raise _fail(f"unknown task {', '.join(unknown)}; known: {', '.join(available())}", 2)
    if not describe_:
        width = max(map(len, chosen))
        for name in chosen:
            typer.echo(f"{name:<{width}}  {describe(name).summary}")
        return
    blocks = [describe(name).text(name) for name in chosen]
    typer.echo("\n\n".join([*blocks, COMMON.text("every task")]))


@command("install", target=models_app)
def models_install(names: list[str] = typer.Argument(None, help="Assets to install (default: all).")) -> None:
    """Download and prepare the offline models and data (idempotent)."""
    from .assets import install

    for name, path in install(names or None).items():
        typer.echo(f"{name}\t{path}")


@command("list", target=models_app)
def models_list() -> None:
    """Show every asset, whether it is installed, and where."""
    from .assets import list_assets

    for a in list_assets():
        state = "installed" if a["installed"] else "missing"
        typer.echo(f"{a['name']:<32} {a['kind']:<6} {state:<10} {a['path']}")


@command("path", target=models_app)
def models_path(name: str) -> None:
    """Print the path of an installed asset."""
    from .assets import path

    typer.echo(str(path(name)))


from . import cli_check, cli_serve  # noqa: E402,F401  (register `check`, `serve`)


def main() -> None:
    """Entry point for `python -m cowest`."""
    app(prog_name="cowest")


if __name__ == "__main__":
    sys.exit(main())
