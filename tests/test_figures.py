"""README figures (`cowest:value`) are read from result files: rendered, checked for staleness, and refused clearly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cowest.figures import FigureError, render_values, stale_values
from cowest.publish import check_readme

ROOT = Path(__file__).resolve().parent.parent


def fig(spec: str, text: str = "?") -> str:
    return f"<!-- cowest:value {spec} -->{text}<!-- /cowest:value -->"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "c.json").write_text(json.dumps(
        {"diffs": {"cowest - refine": {"diff": 0.2, "lo": 0.13333, "hi": 0.26687}}, "runs": [{"n": 40, "s": 0.725}]}))
    (tmp_path / "r" / "p.jsonl").write_text('{"a": 1}\n{"a": 2}\n\n')
    return tmp_path


def test_figures_render_from_their_files(root):
    diff = fig('r/c.json "diffs.cowest - refine" pts_ci')
    text = (f"CoWest - refinement {diff} over "
            f"{fig('r/c.json runs.0.n int')} questions, {fig('r/c.json runs.0.s pct')} stated, "
            f"{fig('r/p.jsonl . count')} pairs.")
    out = render_values(text, root)
    assert re.sub(r"<!--.*?-->", "", out) == "CoWest - refinement +20.0 [+13.3, +26.7] over 40 questions, 72.5% stated, 2 pairs."
    assert stale_values(out, root) == [] and len(stale_values(text, root)) == 4
    (root / "r" / "c.json").write_text(json.dumps({"runs": [{"n": 41, "s": 0.725}], "diffs": {}}))
    assert stale_values(fig("r/c.json runs.0.n int", "40"), root) == ["value r/c.json runs.0.n int"]


@pytest.mark.parametrize("spec, says", [
    ("r/c.json runs.0.n nope", "unknown format 'nope'"),
    ("r/missing.json runs.0.n int", "r/missing.json missing"),
    ("r/c.json runs.3.n int", "'runs.3.n' not in r/c.json"),
    ("r/c.json runs.0.zz int", "'runs.0.zz' not in r/c.json"),
    ("../c.json x int", "outside"),
    ("r/c.json int", "expected FILE PATH FORMAT"),
])
def test_a_bad_figure_is_named(root, spec, says):
    with pytest.raises(FigureError, match=re.escape(says)):
        render_values(fig(spec), root)


def test_readme_figures_are_in_sync_with_results():
    """Every figure of the README renders from its file (a stale one would be listed)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- cowest:value results/" in text
    assert stale_values(text, ROOT) == [] and check_readme(ROOT / "README.md") == []
    # a line that opens with an HTML comment starts an HTML block in Markdown: the paragraph would end there
    assert not [line for line in text.splitlines() if line.startswith("<!-- cowest:value")]
