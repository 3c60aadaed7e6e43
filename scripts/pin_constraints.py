"""Write constraints.txt: the exact versions of cowest's dependency closure installed in this environment.

pyproject.toml states what cowest needs (lower bounds); constraints.txt pins the set the tests ran on, which the
Makefile installs from. Run it with the venv that passed the tests: `.venv/bin/python scripts/pin_constraints.py`.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("test",)  # the extras `make setup` installs


def roots(pyproject: Path) -> list[Requirement]:
    """The project's own requirements: its dependencies and those of the extras the Makefile installs."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def _wanted(req: Requirement, extras: set[str]) -> bool:
    # A marker such as `extra == "x"` applies only when that extra was asked for.
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def closure(reqs: list[Requirement]) -> dict[str, str]:
    """Each installed distribution these requirements pull in, by canonical name, with its installed version."""
    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, set()) for r in reqs]
    while todo:
        req, parent_extras = todo.pop()
        if not _wanted(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)
        pinned[name] = dist.version
        todo += [(Requirement(line), set(req.extras)) for line in dist.requires or []]
    return pinned


def render(pinned: dict[str, str]) -> str:
    """constraints.txt's text: a header, then one `name==version` a line, sorted."""
    # A local label (torch's +cpu) would rule out the same release from other indexes.
    lines = [f"{name}=={version.split('+')[0]}" for name, version in sorted(pinned.items())]
    head = "# Exact versions the test suite ran on; regenerate with scripts/pin_constraints.py.\n"
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = ROOT / "constraints.txt"
    out.write_text(render(closure(roots(ROOT / "pyproject.toml"))), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
