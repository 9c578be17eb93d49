"""Schema version 5 (live connectors: an execution's first call time and whether its last
outcome is unknown) upgrades a version 4 database holding executions, keeps them, and what it
adds reads as "known, never called"; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import insert, inspect, select, text

from gateway.store import schema as gateway_schema
from ledger import schema as ledger_schema
from ledger.database import make_engine

NEW_COLUMNS = {"first_attempt_at", "outcome_unknown"}


def test_version_5_adds_the_outcome_columns_keeping_the_executions(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        ledger_schema.upgrade(engine)
        ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:4])
        with engine.begin() as conn:  # as version 4 of an earlier release left the table
            for name in NEW_COLUMNS:
                conn.execute(text(f"ALTER TABLE executions DROP COLUMN {name}"))
            conn.execute(text(
                "INSERT INTO executions (decision_id, tool, params, state, attempts, next_attempt_at, created_at, "
                "updated_at) VALUES ('dec_1', 'stripe.refund', '{}', 'pending', 0, 1.0, 1.0, 1.0)"))
        assert NEW_COLUMNS.isdisjoint(c["name"] for c in inspect(engine).get_columns("executions"))

        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (4, gateway_schema.LATEST_VERSION)
        assert NEW_COLUMNS <= {c["name"] for c in inspect(engine).get_columns("executions")}
        with engine.connect() as conn:
            gateway_schema.require_current(conn)
            row = conn.execute(select(gateway_schema.executions)).one()
            assert (row.decision_id, row.first_attempt_at, row.outcome_unknown) == ("dec_1", None, 0)
        with engine.begin() as conn:  # a row written without the new columns gets their defaults
            conn.execute(insert(gateway_schema.executions).values(
                decision_id="dec_2", tool="crm.log_note", params="{}", state="pending", attempts=0,
                next_attempt_at=2.0, created_at=2.0, updated_at=2.0))
            assert conn.execute(select(gateway_schema.executions.c.outcome_unknown)
                                .where(gateway_schema.executions.c.decision_id == "dec_2")).scalar_one() == 0
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (gateway_schema.LATEST_VERSION, gateway_schema.LATEST_VERSION)
    finally:
        engine.dispose()
