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


def _default(path: str):
    """The default of a dotted recipe field (`sft_recall.target`), or None when the path is not a recipe field."""
    from pydantic import BaseModel

    from cowest.config import Recipe

    model: type[BaseModel] = Recipe
    for part in path.split("."):
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        if field.annotation is not None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
        else:
            return field.default
    return None


def test_readme_knob_defaults_are_the_recipes():
    """Every "`section.field` (N" the README states for a recipe field is that field's default."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.findall(r"`([a-z_]+\.[a-z_.]+)` \((?:default )?(\d+(?:\.\d+)?)[;,)]", text)
    checked = [(path, value, _default(path)) for path, value in stated if _default(path) is not None]
    assert len(checked) >= 5, stated
    assert [(p, v, d) for p, v, d in checked if float(v) != float(d)] == []
