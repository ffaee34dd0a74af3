"""The test harness stays easy to walk: no import cycle, no oversized module.

Imports are read with ast, so an import inside a function (the usual way to hide a
cycle) counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent / "harness"
PACKAGE = "tests.harness"
MAX_LINES = 400


def harness_imports(path: Path) -> set[str]:
    """The tests.harness modules that `path` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from tests.harness import rootfs` imports the module tests.harness.rootfs
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.removeprefix(f"{PACKAGE}.").split(".")[0] for name in names
                  if name.startswith(f"{PACKAGE}.")}
    return found & {p.stem for p in HARNESS.glob("*.py")} - {path.stem}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported, [*path, module]):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_harness_modules_import_each_other_without_a_cycle():
    graph = {path.stem: harness_imports(path) for path in HARNESS.glob("*.py")}
    assert "procs" in graph["pbx"]  # the walk sees the imports at all
    assert find_cycle(graph) is None


@pytest.mark.parametrize("path", sorted(HARNESS.glob("*.py")), ids=lambda p: p.name)
def test_harness_module_is_small(path: Path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
