"""The README's result tables are generated from the files published under results/, and stay in sync with them."""

from __future__ import annotations

from pathlib import Path

from cowest.publish import check_readme

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_published_results() -> None:
    readme = ROOT / "README.md"
    assert "<!-- cowest:table results/" in readme.read_text(encoding="utf-8")
    assert check_readme(readme) == []  # a stale block: run `cowest readme` after publishing
