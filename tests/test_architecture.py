"""The house rules of docs/architecture.md, checked on the source: small files and functions, imports without a
circle (lazy ones included; a type behind TYPE_CHECKING is no dependency), tests on public names only."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "cowest"
TESTS = Path(__file__).resolve().parent
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its body, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(x) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                   for stmt in n.body for x in ast.walk(stmt)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    resolved = set()
    for target in found:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the import graph, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n))), None)


def test_no_source_file_over_400_lines_and_no_function_over_60():
    long_files = [f"{p.relative_to(SRC)}: {n}" for p in SRC.rglob("*.py")
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES]
    long_functions = [f"{p.relative_to(SRC)}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1}"
                      for p in SRC.rglob("*.py") for f in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                      if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long_files and not long_functions, (long_files, long_functions)


def test_the_import_graph_has_no_circle():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph["cowest.config"] and graph["cowest.run"]  # the graph is read, not empty
    assert cycle(graph) is None, " -> ".join(cycle(graph))
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the finder finds one


def test_tests_use_public_names_only():
    private = []
    for path in TESTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cowest"):
                private += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.endswith("__")]
    assert not private, private


def test_the_method_reads_in_under_700_lines():
    """The four stages and the collaboration, as docs/architecture.md tells a reader to read them."""
    method = ["stages/sft.py", "stages/mine.py", "stages/dpo.py", "stages/evaluate.py", "collab/pipeline.py",
              "collab/feedback.py"]
    lines = sum(len((SRC / m).read_text(encoding="utf-8").splitlines()) for m in method)
    assert 300 < lines < 700, lines
