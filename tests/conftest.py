"""Fixtures shared by every test area.

- `postgres_server` (session): a real PostgreSQL server started for this test run (one per
  pytest-xdist worker); see `tests/postgres.py`. Started only when a test asks for it.
- `postgres_url`: a fresh, empty database on that server, per test.
- `sqlite_url`: a fresh SQLite file in the test's tmp dir.
- `opa` (module): a fake OPA server on loopback evaluating tests/fakes/rego (`tests/fakes/opa.py`).
- `db_url`: parametrised over both, so a suite written once runs against SQLite and PostgreSQL
  (test ids end in `[sqlite]` / `[postgresql]`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes.opa import FakeOpa  # noqa: E402
from postgres import PostgresServer  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warden.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(scope="module")
def opa() -> Iterator[FakeOpa]:
    fake = FakeOpa().start()
    try:
        yield fake
    finally:
        fake.stop()
