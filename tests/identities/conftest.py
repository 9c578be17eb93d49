"""Fixtures for the registry tests: a migrated database, and what it and its log hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gateway.store import schema as gateway_schema
from ledger import schema as ledger_schema
from ledger.database import make_engine
from ledger.store import Ledger


@dataclass
class Store:
    engine: Engine

    def entries(self, start: int = 0) -> list[dict[str, Any]]:
        """Every audit entry from `start` on, decoded."""
        with self.engine.connect() as conn:
            return [json.loads(body) for body in Ledger().iter_entries(conn, start)]

    def size(self) -> int:
        with self.engine.connect() as conn:
            return Ledger().head(conn).size

    def cells(self) -> Iterator[tuple[str, str, Any]]:
        """(table, column, value) for every cell of every Warden table: what a stolen copy holds."""
        tables = [*gateway_schema.metadata.sorted_tables, *ledger_schema.metadata.sorted_tables]
        with self.engine.connect() as conn:
            for table in tables:
                for row in conn.execute(select(table)).mappings():
                    for column, value in row.items():
                        yield table.name, column, value


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    gateway_schema.upgrade(engine)
    try:
        yield Store(engine)
    finally:
        engine.dispose()
