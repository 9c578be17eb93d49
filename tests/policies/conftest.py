"""Fixtures for the shipped policies and the `warden policy` commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dsl import compile_policy_dir
from dsl.model import PolicySet
from gateway.engine.decider import Decider
from gateway.config import SHIPPED_POLICY_DIR

WardenRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def shipped_policy_set() -> PolicySet:
    return compile_policy_dir(SHIPPED_POLICY_DIR)


@pytest.fixture(scope="session")
def shipped_engine(shipped_policy_set: PolicySet) -> Decider:
    return Decider(shipped_policy_set)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A scratch copy of the shipped policies and their tests, to break on purpose."""
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICY_DIR, target)
    return target


def _warden_command() -> list[str]:
    """The installed `warden` script beside this interpreter, else the module itself."""
    script = Path(sys.executable).parent / "warden"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
def warden(tmp_path: Path) -> WardenRun:
    """Run `warden ...` in a subprocess (in a scratch working directory) and capture it."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_warden_command(), *map(str, args)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)

    return run
