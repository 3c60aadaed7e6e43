"""cowest installs as a library: pyproject.toml states lower bounds, constraints.txt pins what the tests ran on."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["test"]
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"constraints.txt:{n}: {line!r} is no exact pin"
        assert "+" not in specs[0].version and "*" not in specs[0].version, f"constraints.txt:{n}: {line!r}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"constraints.txt:{n}: {req.name} pinned twice"
        pins[name] = specs[0].version
    return pins


def _load_pin_script():
    spec = importlib.util.spec_from_file_location("pin_constraints", ROOT / "scripts" / "pin_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pyproject_states_lower_bounds_only() -> None:
    for req in _requirements():
        ops = {s.operator for s in req.specifier}
        assert ops == {">="}, f"pyproject.toml: {req} should state only a lower bound (pins go in constraints.txt)"


def test_constraints_pin_every_requirement_within_its_bounds() -> None:
    pins = _pins()
    for req in _requirements():
        version = pins.get(canonicalize_name(req.name))
        assert version is not None, f"constraints.txt pins no version of {req.name}"
        assert req.specifier.contains(version, prereleases=True), f"constraints.txt: {req.name}=={version} vs {req}"


def test_makefile_installs_from_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in makefile.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs
    for line in installs:
        assert "-c constraints.txt" in line, f"Makefile: {line.strip()!r} installs without the constraints"
        assert not re.search(r"==\d", line), f"Makefile: {line.strip()!r} pins a version itself"
    assert re.search(r"^\$\(VENV\)/\.installed: .*constraints\.txt", makefile, re.M)  # a new pin reinstalls


def test_pin_script_follows_requirements_and_their_markers() -> None:
    pin = _load_pin_script()
    pinned = pin.closure([Requirement("requests")])
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= set(pinned)
    assert "pysocks" not in pinned  # behind requests' `socks` extra, which nobody asked for
    text = pin.render({"torch": "2.13.0+cpu", "accelerate": "1.15.0"})
    assert text.splitlines()[1:] == ["accelerate==1.15.0", "torch==2.13.0"]
