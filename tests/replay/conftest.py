"""Replay and impact tests: a gateway over SQLite and a real PostgreSQL, given a generated
history over HTTP (`history_support.generate`), shared by a module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "cli"))  # cli_support: `warden` as a shell runs it

from gateway_server import Server, module_server, policies_with  # noqa: E402
from history_support import History, generate  # noqa: E402


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    policies = policies_with(tmp_path_factory.mktemp("replay-policies"))
    for server in module_server(request, tmp_path_factory, "replay", policy_dir=policies,
                                policy_reload=True, policy_poll_seconds=3600):
        yield generate(server, policies, seed=13)


@pytest.fixture
def server(recorded: History) -> Server:
    return recorded.server
