"""Traceable numbers: publish a run's small result files, and keep README tables generated from them."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
from pathlib import Path
from typing import Callable

from .errors import CowestError
from .figures import render_values, stale_values
from .io import atomic_dir, read_json
from .layout import ComparisonDir, RunLayout
from .report.artifacts import Artifacts, load
from .report.seeds import compare_markdown
from .report.stages import stage_rows
from .report.tables import (
    ablation_tables,
    comparisons_markdown,
    dpo_heldout_rows,
    draft_rows,
    fact_recall_rows,
    level_label,
    md_table,
    mining_round_rows,
    or_missing,
    results_markdown,
)

BLOCK = re.compile(r"(<!-- cowest:table (\S+) (\S+) -->\n)(.*?)(<!-- /cowest:table -->)", re.DOTALL)


class PublishError(CowestError, ValueError):
    """Something that cannot be published or rendered; the message names the path or block."""


def publishable(src: Path) -> list[Path]:
    """The files publish() copies from a run or compare directory, relative to it, sorted."""
    run, comparison = RunLayout(src), ComparisonDir(Path(src))
    if comparison.json.is_file() and not run.config.is_file():
        return [p.relative_to(comparison.dir) for p in (comparison.json, comparison.md) if p.is_file()]
    if not run.config.is_file():
        raise PublishError(f"{src}: neither a run directory ({run.config.name}) nor a comparison "
                           f"({comparison.json.name})")
    return run.published()


def publish(src: Path, dest: Path) -> list[Path]:
    """Copy the small result files of a run (or compare.json/.md of a comparison) to dest, replacing it atomically."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise PublishError(f"{src}: not a directory")
    s, d = src.resolve(), dest.resolve()
    if s == d or d in s.parents:
        raise PublishError(f"{dest}: would replace the directory being published")
    files = publishable(src)
    with atomic_dir(dest) as tmp:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, tmp / rel)
    return [dest / rel for rel in files]


def _loaded(run_dir: Path, path: Path) -> Artifacts:
    """The run's artifacts, or a PublishError when `path` (one of them) is missing or unreadable."""
    a = load(Path(run_dir))
    if not path.is_file():
        raise PublishError(f"{path}: missing")
    if bad := [w for w in a.warnings if w.startswith(path.relative_to(a.dir).as_posix())]:
        raise PublishError(f"{run_dir}/{bad[0]}")
    return a


def eval_markdown(run_dir: Path, eval_name: str = "eval") -> str:
    """A published run's evaluation as the report shows it: results, paired comparisons and draft diagnostics."""
    res = _loaded(run_dir, RunLayout(run_dir).eval(eval_name).results).evals[eval_name]
    parts = [results_markdown(res, keys=True)]
    if (comp := comparisons_markdown(res)):
        parts.append(comp)
    if (drafts := draft_rows(res))[1]:
        parts.append(md_table(*drafts))
    parts.append(f"{or_missing(res.recipe, Path(run_dir).name)}, {or_missing(res.split, eval_name)} split, {res.n} "
                 f"questions; brackets: {level_label(res.level)} bootstrap confidence intervals.")
    return "\n\n".join(parts) + "\n"


def diagnostics_markdown(run_dir: Path) -> str:
    """One published run's training evidence: SFT validation and recall, mining, held-out DPO per epoch."""
    a = load(Path(run_dir))
    parts = [md_table(*recall)] if (recall := fact_recall_rows(a))[1] else []
    parts += [md_table(*mining_round_rows(k, st)) for k, st in sorted(a.mining.items())]
    if (held := dpo_heldout_rows(a))[1]:
        parts.append(md_table(*held))
    if (valid := a.evals.get("eval_valid")) and (drafts := draft_rows(valid))[1]:
        parts.append(f"Held-out mined questions ({valid.n}), SFT vs aligned drafts refined:\n\n"
                     + md_table(*drafts))
    if not parts:
        raise PublishError(f"{run_dir}: no SFT, mining or DPO artifacts to report")
    return "\n\n".join(parts) + "\n"


def ablations_markdown(run_dir: Path) -> str:
    """A published run's ablations (including the alignment settings search) as tables."""
    a = _loaded(run_dir, RunLayout(run_dir).ablation_results)
    tables = ablation_tables(a.ablations, a.confidence)
    return "\n\n".join(f"{title}:\n\n{md_table(h, r)}" for title, h, r in tables) + "\n"


# README block kinds of a published run folder; the benchmarks' kinds are bench/render.py's (`bench_renderers`)
KINDS = {"eval": eval_markdown, "valid": lambda d: eval_markdown(d, "eval_valid"),
         "diagnostics": diagnostics_markdown, "ablations": ablations_markdown,
         "stages": lambda d: md_table(*stage_rows(load(Path(d)))) + "\n"}
BENCH_RENDER = Path(__file__).resolve().parents[2] / "bench" / "render.py"  # beside the bench scripts (a checkout)


@functools.cache
def bench_renderers(path: Path = BENCH_RENDER) -> dict[str, Callable[[Path], str]]:
    """The benchmarks' README block kinds: `RENDERERS` of bench/render.py, loaded from its path ({} without it)."""
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location("cowest_bench_render", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return dict(module.RENDERERS)


def render_block(target: str, kind: str, root: Path) -> str:
    """The generated body of one README block: `compare`, `eval`, `diagnostics`, `ablations` or `stages` of a published
    dir."""
    root = Path(root).resolve()
    folder = (root / target).resolve()
    if root != folder and root not in folder.parents:
        raise PublishError(f"cowest:table {target} {kind}: {target} is outside {root}")
    if kind == "compare":
        path = ComparisonDir(folder).json
        if not path.is_file():
            raise PublishError(f"cowest:table {target} {kind}: {path} missing")
        return compare_markdown(read_json(path))
    if kind in KINDS:
        return KINDS[kind](folder)
    bench = bench_renderers()
    if kind in bench:
        try:
            return bench[kind](folder)
        except FileNotFoundError as e:  # figures not written yet: the message says which script writes them
            raise PublishError(str(e)) from None
    raise PublishError(f"cowest:table {target} {kind}: unknown kind {kind!r} (compare, {', '.join([*KINDS, *bench])})")


def _blocks(text: str) -> list[re.Match]:
    """Every table block in a README text."""
    return list(BLOCK.finditer(text))


def render_readme(readme_text: str, root: Path) -> str:
    """The README text with every `cowest:table` block's body and every `cowest:value` figure regenerated from the
    files under root."""
    text = BLOCK.sub(lambda m: m.group(1) + render_block(m.group(2), m.group(3), root) + m.group(5), readme_text)
    return render_values(text, root)


def check_readme(readme: Path) -> list[str]:
    """Names (`DIR KIND`, `value FILE PATH FORMAT`) of the README's blocks and figures that differ from the regenerated
    ones; [] when in sync."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    return [f"{m.group(2)} {m.group(3)}" for m in _blocks(text)
            if m.group(4) != render_block(m.group(2), m.group(3), readme.parent)] + stale_values(text, readme.parent)
