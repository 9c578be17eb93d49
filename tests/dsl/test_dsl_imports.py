"""The policy language imports one way: no module of `dsl/` or `invariants/` reaches itself
again through its imports, whether they stand at the top of a file or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dsl", "invariants")


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports anywhere in its source."""
    files = {
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                    base = ".".join([*parts, base] if base else parts)
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            cycle = visit(imported, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_dsl_and_invariants_have_no_import_cycle() -> None:
    graph = import_graph(REPO, PACKAGES)
    assert "dsl.syntax_errors" in graph["dsl.parser"]
    assert "invariants" in graph["dsl.expressions"]
    assert find_cycle(graph) is None


def test_invariants_do_not_import_the_policy_language() -> None:
    graph = import_graph(REPO, PACKAGES)
    for module, imported in graph.items():
        if module.split(".")[0] == "invariants":
            assert not any(name.split(".")[0] == "dsl" for name in imported), module


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (tmp_path / "pkg" / "b.py").write_text("from .c import g\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n\ndef g():\n    return pkg.a\n")
    assert find_cycle(import_graph(tmp_path, ("pkg",))) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
