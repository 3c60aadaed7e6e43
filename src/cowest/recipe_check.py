"""`cowest check RECIPE`: every problem of a recipe, its data, models and endpoints, and which stages would run and
why, before an hour is spent. Reads only: nothing is written, no run folder is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe, read_recipe
from .errors import CowestError
from .layout import RunLayout
from .tasks import TaskData


@dataclass
class CheckReport:
    """What a check found: lines to show, problems (each naming its field), whether the recipe itself is invalid."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recipe_invalid: bool = False


def check_recipe(path: str | Path, overrides: list[str] | None = None) -> CheckReport:
    """Check the recipe, its data files, its models and endpoints (the preflight), and explain the plan."""
    report = CheckReport()
    recipe, problems = read_recipe(path, overrides)
    report.problems += problems
    report.recipe_invalid = bool(problems)
    report.lines.append(f"recipe: {path}: " + (f"{len(problems)} problem(s)" if problems else "valid"))
    if recipe is None:
        return report
    task = _data(recipe, report)
    _models(recipe, report)
    if task is not None:
        _plan(recipe, task, report)
    return report


def _data(recipe: Recipe, report: CheckReport) -> TaskData | None:
    """Read the task's data as the run will, and count it."""
    from .tasks import load_task

    t = recipe.task
    files = ", ".join(f"task.{f}: {v}" for f in ("path", "test_path", "corpus_path") if (v := getattr(t, f)))
    try:
        task = load_task(t)
    except (CowestError, OSError, ValueError, KeyError) as e:
        report.problems.append(f"task ({t.name}{'; ' + files if files else ''}): {e}")
        return None
    extra = "".join(f", {len(v)} {k}" for k, v in task.extra.items())
    facts = f", {len(task.facts)} facts" if task.facts else ""
    report.lines.append(f"data: {t.name}{' (' + files + ')' if files else ''}: {len(task.train)} training and "
                        f"{len(task.test)} test questions{extra}{facts}")
    return task


def _models(recipe: Recipe, report: CheckReport) -> None:
    """Every model installed or found, every endpoint reached with its key (the preflight `cowest run` does)."""
    from .preflight import model_problems

    for name, problem in model_problems(recipe).items():
        cfg = recipe.ablations.strong if name == "ablations.strong" else getattr(recipe, name)
        if problem:
            report.problems.append(problem)
        else:
            ok = f"{cfg.endpoint()} reached, key accepted" if cfg.backend == "openai" else _found(cfg.model)
            report.lines.append(f"model: {name}: {cfg.backend} {cfg.model}: {ok}")


def _found(spec: str) -> str:
    """How a usable local model was found: on disk (or in the Hub cache), or on the Hub, to download at first use."""
    from .models.hub import is_cached, is_hub_id

    return "on the Hub, downloaded at first use" if is_hub_id(spec) and not is_cached(spec) else "found"


def _plan(recipe: Recipe, task: TaskData, report: CheckReport) -> None:
    """The stages `cowest run` would run, in order, each up to date or why it would run."""
    from .ledger import explain, run_plan

    try:
        verdicts = explain(recipe, run_plan(recipe, task), RunLayout(recipe.run_dir))
    except (CowestError, ValueError, KeyError) as e:
        report.problems.append(f"plan: {e}")
        return
    report.lines.append(f"plan: {recipe.run_dir}")
    report.lines += [f"  {name}: {verdict}" for name, verdict in verdicts.items()]
    if recipe.ablations.any:
        report.lines.append("  ablations: after the evaluation (sub-runs in ablations/)")
