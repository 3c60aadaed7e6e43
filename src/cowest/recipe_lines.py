"""Where a recipe problem is: the YAML line of a field, or the `--set` option that gave its value; duplicate keys."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml


def line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the YAML node at a field location, or of its closest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in reversed(node.value) if k.value == str(part)), None)  # the last: YAML's
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def duplicate_keys(node: yaml.Node | None, path: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, dotted field) of every key a mapping repeats (PyYAML would keep the last one without a word)."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                found.append((key.start_mark.line + 1, ".".join((*path, name))))
            seen.add(name)
            found += duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys(item, (*path, str(i)))
    return found


class Locator:
    """Names where a field's value came from: `file:line` in the recipe, or the `--set` option that replaced it."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path, self.root = path, root
        self.overrides: list[tuple[tuple[str, ...], str]] = []  # (field path, the option as given)

    def overridden(self, assignment: str) -> None:
        """Record a `--set KEY=VALUE` applied to the recipe's data."""
        key = assignment.split("=", 1)[0].strip()
        self.overrides.append((tuple(key.split(".")), assignment))

    def where(self, loc: Sequence[str | int]) -> str:
        """`--set KEY=VALUE` when an override gave the field (or a block around it), else `file:line`."""
        parts = tuple(str(p) for p in loc)
        for key, assignment in reversed(self.overrides):  # the last override of a field is the one that holds
            if parts[: len(key)] == key:
                return f"--set {assignment}"
        line = line_of(self.root, loc)
        return f"{self.path}:{line}" if line else str(self.path)

    def problem(self, loc: Sequence[str | int], msg: str) -> str:
        """One problem line: where, the field's dotted path, what is wrong."""
        return f"{self.where(loc)}: field {'.'.join(str(p) for p in loc)}: {msg}"
