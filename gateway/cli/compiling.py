"""The policy folder a command works on, compiled: shared by `warden policy` and the history
commands (`warden policy impact` compiles its candidate here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.guard import CommandError
from gateway.cli.options import settings

if TYPE_CHECKING:
    from dsl.model import PolicySet


DIR_HELP = "policy directory (default: the policy_dir setting, the shipped policies unless configured)"


def policy_dir(args: argparse.Namespace) -> Path:
    """DIR (or --dir) if given, else the policy_dir setting."""
    directory: Path = args.dir or settings(args).policy_dir
    return directory


def compile_dir(directory: Path) -> PolicySet:
    """The compiled PolicySet of `directory`. Compile errors propagate as `PolicyCompileError`:
    the guard prints every diagnostic and exits 3."""
    from connectors.registry import catalog_tool_names
    from dsl import compile_policy_dir

    if not directory.is_dir():
        raise CommandError(f"{directory}: no such policy directory")
    try:
        # the catalog's tool names let the linter warn about a policy naming no known tool
        return compile_policy_dir(directory, known_tools=catalog_tool_names())
    except OSError as exc:
        raise CommandError(f"{directory}: cannot read: {exc}") from None
