"""Traceable numbers: publish a run's small result files, and keep README tables generated from them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .compare import compare_markdown
from .io import atomic_dir, read_json

# Small result files of a run, relative to the run directory (weights, caches and training data never match).
RUN_PATTERNS: tuple[str, ...] = (
    "config.yaml", "report.md", "*manifest.json", "*/*manifest.json",
    "eval*/results.json", "eval*/results.csv", "eval*/results.md", "eval*/predictions.jsonl",
    "round_*/mining_stats.json", "round_*/pairs.jsonl", "round_*/pairs_heldout.jsonl", "round_*/heldout.json",
    "round_*/train_log.jsonl", "sft/train_log.jsonl",
)
COMPARE_FILES: tuple[str, ...] = ("compare.json", "compare.md")
NEVER = {"adapter", "merged", "cache.sqlite"}  # path parts that are never published, whatever matched

BLOCK = re.compile(r"(<!-- cowest:table (\S+) (\S+) -->\n)(.*?)(<!-- /cowest:table -->)", re.DOTALL)


class PublishError(ValueError):
    """Something that cannot be published or rendered; the message names the path or block."""


def publishable(src: Path) -> list[Path]:
    """The files publish() copies from a run or compare directory, relative to it, sorted."""
    src = Path(src)
    if (src / "compare.json").is_file() and not (src / "config.yaml").is_file():
        return [Path(n) for n in COMPARE_FILES if (src / n).is_file()]
    if not (src / "config.yaml").is_file():
        raise PublishError(f"{src}: neither a run directory (config.yaml) nor a comparison (compare.json)")
    found = {p.relative_to(src) for pat in RUN_PATTERNS for p in src.glob(pat) if p.is_file()}
    return sorted(p for p in found if not NEVER & set(p.parts))


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


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def eval_markdown(run_dir: Path, eval_name: str = "eval") -> str:
    """Results table of a published run's evaluation: primary and secondary metric, truncation, strong tokens."""
    path = Path(run_dir) / eval_name / "results.json"
    if not path.is_file():
        raise PublishError(f"{path}: missing")
    res = read_json(path)
    systems = res["systems"]
    if not systems:
        return "(no systems)\n"
    metrics = list(next(iter(systems.values()))["metrics"])[:2]
    cut = any("truncated_share" in r for r in systems.values())
    head = ["system", *metrics, *(["cut by token cap"] if cut else []), "strong tok/q"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in systems.values():
        cells = [r["label"]]
        for m in metrics:
            v = r["metrics"].get(m)
            cells.append(f"{_pct(v['value'])} [{_pct(v['lo'])}, {_pct(v['hi'])}]" if v else "—")
        if cut:
            cells.append(_pct(r["truncated_share"]) if "truncated_share" in r else "—")
        cells.append(f"{r['strong_prompt_tokens_per_q'] + r['strong_completion_tokens_per_q']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    cfg_path = Path(run_dir) / "config.yaml"
    cfg = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}) if cfg_path.is_file() else {}
    conf = (cfg.get("eval") or {}).get("confidence")
    ci = f"{100 * float(conf):g}% bootstrap CIs" if conf is not None else "bootstrap CIs"
    split = res.get("split", eval_name)
    lines += ["", f"{res.get('recipe', Path(run_dir).name)}, {split} split, {res.get('n')} questions; brackets: {ci}."]
    return "\n".join(lines) + "\n"


def render_block(target: str, kind: str, root: Path) -> str:
    """The generated body of one README block: `compare` or `eval` of a published directory under root."""
    root = Path(root).resolve()
    folder = (root / target).resolve()
    if root != folder and root not in folder.parents:
        raise PublishError(f"cowest:table {target} {kind}: {target} is outside {root}")
    if kind == "compare":
        path = folder / "compare.json"
        if not path.is_file():
            raise PublishError(f"cowest:table {target} {kind}: {path} missing")
        return compare_markdown(read_json(path))
    if kind == "eval":
        return eval_markdown(folder)
    raise PublishError(f"cowest:table {target} {kind}: unknown kind {kind!r} (compare or eval)")


def _blocks(text: str) -> list[re.Match]:
    """Every table block in a README text."""
    return list(BLOCK.finditer(text))


def render_readme(readme_text: str, root: Path) -> str:
    """The README text with every `cowest:table` block's body regenerated from the files under root."""
    return BLOCK.sub(lambda m: m.group(1) + render_block(m.group(2), m.group(3), root) + m.group(5), readme_text)


def check_readme(readme: Path) -> list[str]:
    """Names (`DIR KIND`) of the README's blocks whose body differs from the regenerated one; [] when in sync."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    return [f"{m.group(2)} {m.group(3)}" for m in _blocks(text)
            if m.group(4) != render_block(m.group(2), m.group(3), readme.parent)]
