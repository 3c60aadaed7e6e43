"""The README's result tables are generated from the files published under results/, and stay in sync with them."""

from __future__ import annotations

from pathlib import Path

import re

from cowest.config import ModelConfig
from cowest.publish import check_readme

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_published_results() -> None:
    readme = ROOT / "README.md"
    assert "<!-- cowest:table results/" in readme.read_text(encoding="utf-8")
    assert check_readme(readme) == []  # a stale block: run `cowest readme` after publishing


def test_readme_retry_defaults_are_the_model_configs() -> None:
    """The retry paragraph of "Your own models" states each knob's default: the numbers are ModelConfig's own."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    para = text[text.index("When an endpoint fails"):text.index("### Recipes")]
    stated = dict(re.findall(r"`(\w+)` \((\d+(?:\.\d+)?)\)", para))
    assert {"timeout_s", "deadline_s", "max_retries", "connect_retries", "retry_initial_s"} <= stated.keys()
    for name, value in stated.items():
        assert float(value) == ModelConfig.model_fields[name].default, name
