"""Figures in README prose, generated from published result files.

A figure is written `<!-- cowest:value FILE PATH FORMAT -->TEXT<!-- /cowest:value -->` on one line: FILE is a JSON
(or JSONL) file relative to the README, PATH picks a value in it (keys and list indices joined by dots; quote the
whole comment field when a key holds spaces), FORMAT says how it is written (`FORMATS`). `cowest readme` rewrites TEXT
from the file and `cowest readme --check` names every figure whose TEXT is stale.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, Callable

from .errors import CowestError

VALUE = re.compile(r"(<!-- cowest:value (.+?) -->)(.*?)(<!-- /cowest:value -->)")


class FigureError(CowestError, ValueError):
    """A figure whose file, path or format cannot be read; the message names the figure."""


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}"


def _ci(d: dict) -> str:
    mid = d["diff"] if "diff" in d else d["value"]
    return f"{_pts(mid)} [{_pts(d['lo'])}, {_pts(d['hi'])}]"


FORMATS: dict[str, Callable[[Any], str]] = {
    "pct": lambda v: f"{100 * v:.1f}%",  # a share: 0.725 -> 72.5%
    "pct0": lambda v: f"{100 * v:.0f}%",  # 0.55 -> 55%
    "score": lambda v: f"{100 * v:.1f}",  # a metric in points: 0.85 -> 85.0
    "pts": _pts,  # a difference in points: 0.25 -> +25.0
    "pts_ci": _ci,  # {diff|value, lo, hi} -> +20.0 [+13.3, +26.7]
    "int": lambda v: f"{int(v):d}",
    "count": lambda v: f"{len(v):d}",  # the number of items (a list, or a JSONL file's rows with PATH `.`)
    "f0": lambda v: f"{v:.0f}", "f1": lambda v: f"{v:.1f}", "f2": lambda v: f"{v:.2f}", "f3": lambda v: f"{v:.3f}",
    "min": lambda v: f"{v / 60:.1f}",  # seconds written as minutes
}


def _read(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def _pick(data: Any, path: str) -> Any:
    if path == ".":
        return data
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def render_value(spec: str, root: Path) -> str:
    """The text of one figure `FILE PATH FORMAT`, read from FILE under root."""
    try:
        file, path, fmt = shlex.split(spec)
    except ValueError:
        raise FigureError(f"cowest:value {spec}: expected FILE PATH FORMAT") from None
    if fmt not in FORMATS:
        raise FigureError(f"cowest:value {spec}: unknown format {fmt!r} ({', '.join(FORMATS)})")
    root = Path(root).resolve()
    target = (root / file).resolve()
    if root not in target.parents:
        raise FigureError(f"cowest:value {spec}: {file} is outside {root}")
    if not target.is_file():
        raise FigureError(f"cowest:value {spec}: {file} missing")
    try:
        return FORMATS[fmt](_pick(_read(target), path))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise FigureError(f"cowest:value {spec}: {path!r} not in {file} ({type(e).__name__}: {e})") from None


def render_values(text: str, root: Path) -> str:
    """The text with every figure's TEXT regenerated."""
    return VALUE.sub(lambda m: m.group(1) + render_value(m.group(2), root) + m.group(4), text)


def stale_values(text: str, root: Path) -> list[str]:
    """The specs of the figures whose TEXT differs from the regenerated one; [] when in sync."""
    return [f"value {m.group(2)}" for m in VALUE.finditer(text) if m.group(3) != render_value(m.group(2), root)]
