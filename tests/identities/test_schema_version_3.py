"""Schema version 3 (console accounts) upgrades a version 2 database holding rows; on SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    insert,
    select,
)

from gateway.store import identities as ids
from gateway.store import schema as gateway_schema
from ledger import schema as ledger_schema
from ledger.database import make_engine
from ledger.store import Ledger

NEW_TABLES = {"invites", "console_sessions", "login_failures", "passkeys"}

# The two tables version 3 changes, as version 2 left them.
_v2 = MetaData()
_v2_users = Table(
    "users", _v2,
    Column("email", String(254), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)  # fmt: skip
_v2_incidents = Table(
    "incidents", _v2,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("agent", String(64), nullable=True),
    Column("decision_id", String(40), nullable=True),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("audit_seq", BigInteger, nullable=True),
)  # fmt: skip
for _table in gateway_schema.metadata.sorted_tables:
    if _table.name not in NEW_TABLES | {"users", "incidents"}:
        _table.to_metadata(_v2)


def _create_version_2_tables(conn: Connection) -> None:
    _v2.create_all(conn)


def _version_two(url: str) -> Any:
    """A database whose gateway tables are as version 2 left them, recorded as version 2."""
    engine = make_engine(url)
    ledger_schema.upgrade(engine)
    ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT,
                                    [_create_version_2_tables, gateway_schema.MIGRATIONS[1]])
    return engine


def test_version_3_upgrades_a_version_2_database_keeping_its_rows(db_url: str) -> None:
    engine = _version_two(db_url)
    try:
        assert NEW_TABLES.isdisjoint(inspect(engine).get_table_names())
        with engine.begin() as conn:
            ids.add_user(conn, Ledger(), "ana@example.com", "founder", 1.0, "cli:operator")
            conn.execute(insert(_v2_incidents).values(kind="tamper", summary="s", detail="{}", created_at=2.0))
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (2, gateway_schema.LATEST_VERSION)
        assert gateway_schema.LATEST_VERSION >= 3
        found = inspect(engine)
        assert NEW_TABLES <= set(found.get_table_names())
        assert "password_hash" in {c["name"] for c in found.get_columns("users")}
        assert {"acknowledged_at", "acknowledged_by"} <= {c["name"] for c in found.get_columns("incidents")}
        assert "ix_passkeys_email" in {index["name"] for index in found.get_indexes("passkeys")}
        with engine.begin() as conn:
            gateway_schema.require_current(conn)
            row = conn.execute(select(gateway_schema.users)).one()
            assert (row.email, row.role, row.password_hash) == ("ana@example.com", "founder", None)
            incident = conn.execute(select(gateway_schema.incidents)).one()
            assert (incident.kind, incident.acknowledged_at, incident.acknowledged_by) == ("tamper", None, None)
            ids.set_password(conn, Ledger(), "ana@example.com", "a long enough password", 3.0, "cli:operator")
            token, _session = ids.start_session(conn, "ana@example.com", 4.0, "127.0.0.1")
            conn.execute(insert(gateway_schema.passkeys).values(
                credential_id="AAAA", email="ana@example.com", public_key="pQ", sign_count=2**40, rp_id="localhost",
                origin="http://localhost:8080", created_at=5.0))  # fmt: skip
        with engine.begin() as conn:
            assert ids.session_for(conn, token, 5.0, idle_seconds=60, max_seconds=60) is not None
        latest = gateway_schema.LATEST_VERSION
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (latest, latest)
    finally:
        engine.dispose()


@pytest.mark.parametrize("start", [0, 1])
def test_a_new_or_version_1_database_reaches_the_latest_version(db_url: str, start: int) -> None:
    """Version 1 creates what the tables are now, so the later steps find some already there."""
    engine = make_engine(db_url)
    try:
        if start:
            ledger_schema.upgrade(engine)
            ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:start])
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (start, gateway_schema.LATEST_VERSION)
        with engine.connect() as conn:
            gateway_schema.require_current(conn)
        assert NEW_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
