"""The commands that run the method: `run` (all stages), `init`, each stage alone, `ablate` and `infer`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Optional

import typer

from ..layout import ComparisonDir
from .core import LimitOpt, RecipeArg, RoundOpt, SetOpt, SplitOpt, command, fail, main_process


def _run(recipe: Path, overrides: list[str]):
    from ..config import load_recipe
    from ..run import Run

    return Run(load_recipe(recipe, overrides))


def _parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is an error line."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise fail(f"--seeds {text!r}: expected distinct comma-separated integers, e.g. 0,1,2", 2)
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
        if main_process():
            _summary(paths)
        return
    from ..compare import write_comparison
    from ..config import load_recipe

    seed_list = _parse_seeds(seeds)
    base = load_recipe(recipe, set_)
    dirs = []
    for n in seed_list:
        extra = [f"seed={n}", f"task.seed={n}", f"name={json.dumps(f'{base.name}-seed{n}')}"]
        r = _run(recipe, [*set_, *extra])
        paths = r.run_all()
        dirs.append(r.dir)
        if main_process():
            _summary(paths)
    if not main_process():
        return
    out = Path(base.output_dir) / f"{base.name}-seeds"
    try:
        write_comparison(dirs, out)
    except (ValueError, KeyError) as e:
        raise fail(f"comparing the seeds: {e}") from None
    typer.echo(ComparisonDir(out).md.read_text())
    typer.echo(f"comparison: {out}", err=True)


def _summary(paths: dict[str, Path]) -> None:
    """A finished run on one screen (stdout), then where its whole report is (stderr)."""
    from ..report.markdown import console_markdown

    typer.echo(console_markdown(paths["report.md"].parent))
    typer.echo(f"whole report: {paths['report.md']} and {paths['report.html']}", err=True)


def _stage(recipe: Path, overrides: list[str], fn: Callable) -> None:
    """Run one stage of a recipe's run; servers and models are released whatever happens."""
    r = _run(recipe, overrides)
    try:
        r.write_config()  # the settings the stage ran with, as `cowest run` records them
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
    from ..config import load_recipe
    from ..io import write_text
    from ..recipes import default_name, render, size, survey
    from ..tasks import load_task

    if base_url and not strong_model:
        raise fail("--base-url needs --strong-model (the endpoint's model name)", 2)
    given = dict(f.split("=", 1) for f in field if "=" in f)
    if len(given) != len(field):
        raise fail(f"--field takes OUR_FIELD=COLUMN, got {', '.join(f for f in field if '=' not in f)}", 2)
    target = out or data.parent / "recipe.yaml"
    if target.exists() and not force:
        raise fail(f"{target} exists; pass --force to overwrite it or --out to write elsewhere", 2)
    found = survey(str(data), str(test) if test else None, str(facts) if facts else None, type_, given)
    rows = [x.strip() for x in systems.split(",") if x.strip()] if systems else None
    sizes = size(found, minutes, strong_calls, *([rows] if rows else []))
    text = render(found, sizes, name or default_name(str(data)), strong_model, base_url)
    # the recipe must read the data as written before it replaces anything at `target`
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", suffix=".yaml") as tmp:
        tmp.write(text)
        tmp.flush()
        task = load_task(load_recipe(Path(tmp.name), check_trainers=False).task)
    write_text(target, text)
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
    from ..config import load_recipe

    if not load_recipe(recipe, set_).ablations.any:  # before any run folder is made
        raise fail("the recipe has no ablations: block (formats, pair_fractions, strong or dpo_settings)", 2)
    _stage(recipe, set_, lambda r: typer.echo(json.dumps(r.ablate(), indent=2)))


@command()
def infer(
    recipe: Path = RecipeArg, split: Optional[str] = SplitOpt, limit: Optional[int] = LimitOpt, set_: list[str] = SetOpt
) -> None:
    """Collaborative inference with the recipe's weak model as it is: weak alone, strong alone, weak draft -> strong."""
    _stage(recipe, [*set_, *_split_overrides(split, limit)],
           lambda r: _evaluate(r, ["weak_base", "strong", "collab_base"], name="infer"))
