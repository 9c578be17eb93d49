"""The shape of `gateway.cli`: one module per command, none too big, no import cycles; `--help`
fast; every command that reads settings takes `--config`."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.cli
from gateway.cli.main import build_parser

PACKAGE = Path(gateway.cli.__file__).parent
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py"))
#: What `--help` must not load: the database, the policy compiler and CEL, the crypto stack, the
#: policy analysis (Z3), the server.
HEAVY = ("sqlalchemy", "psycopg", "lark", "cel", "dsl", "invariants", "cryptography", "ledger", "connectors",
         "uvicorn", "fastapi", "gateway.engine", "gateway.store", "gateway.runtime", "gateway.http",
         "z3", "celpy", "gateway.analysis")  # fmt: skip


def _imports(module: str) -> set[str]:
    """The `gateway.cli` modules `module` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "gateway.cli":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway.cli."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("gateway.cli.")}
    return found & set(MODULES)


def test_one_module_per_command() -> None:
    commands = {action.dest for action in _subcommands(build_parser())}
    assert commands == {"serve", "policy", "agents", "users", "config", "db", "keys", "audit", "connectors",
                        "actions", "mcp", "webhooks", "replay"}
    assert commands <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_no_module_is_over_400_lines(module: str) -> None:
    assert len((PACKAGE / f"{module}.py").read_text().splitlines()) <= 400


def test_no_import_cycles() -> None:
    graph = {module: _imports(module) for module in MODULES}
    assert graph["main"] and [m for m, imported in graph.items() if "main" in imported] == ["__main__"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in graph[module]:
                visit(imported, (*path, module))
            done.add(module)

    for module in MODULES:
        visit(module, ())


@pytest.mark.parametrize("command", [[], ["serve"], ["policy", "explain"], ["policy", "analyze"],
                                     ["agents", "add"], ["users"],
                                     ["config", "show"], ["db", "upgrade"], ["keys", "generate"], ["audit", "verify"]])
def test_help_does_not_load_the_heavy_parts(tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "gateway.cli", *command, "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "usage: warden" in done.stdout
    loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "gateway.cli.main" in loaded
    assert sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)) == []


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action._choices_actions


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        yield " ".join(path), parser
    for action in children:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


LEAVES = dict(_leaves(build_parser()))
WITH_DB = {"db upgrade", "keys rotate", "audit checkpoint", "audit export", "audit verify", "actions compensate",
           "replay", "policy show", "policy diff", "policy impact",
           *(name for name in LEAVES if name.startswith(("agents ", "users ", "webhooks ")))}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_command_takes_the_settings_file_and_those_with_a_database_take_db(name: str) -> None:
    options = {option for action in LEAVES[name]._actions for option in action.option_strings}
    assert ("--config" in options) == (name != "config list")  # `config list` shows the table, no values
    assert ("--db" in options) == (name in WITH_DB)
