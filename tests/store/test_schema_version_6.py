"""Schema version 6 (webhooks: endpoints, the delivery outbox, attempts) upgrades a version 5
database, keeping what it holds; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from gateway.store import schema as gateway_schema
from ledger import schema as ledger_schema
from ledger.database import make_engine

NEW_TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}


def test_version_6_adds_the_webhook_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        ledger_schema.upgrade(engine)
        ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:5])
        with engine.begin() as conn:  # as version 5 of an earlier release left the database
            for name in ("webhook_attempts", "webhook_deliveries", "webhook_endpoints"):
                conn.execute(text(f"DROP TABLE {name}"))
            conn.execute(text("INSERT INTO gateway_state (key, value) VALUES ('kept', '{}')"))
        assert NEW_TABLES.isdisjoint(inspect(engine).get_table_names())

        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (5, gateway_schema.LATEST_VERSION)
        assert NEW_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            gateway_schema.require_current(conn)
            assert conn.execute(text("SELECT value FROM gateway_state WHERE key = 'kept'")).scalar_one() == "{}"
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (gateway_schema.LATEST_VERSION,) * 2
    finally:
        engine.dispose()
