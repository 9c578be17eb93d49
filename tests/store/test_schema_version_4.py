"""Schema version 4 (indexes for the console's lists of decisions) upgrades a version 3 database
holding decisions, keeps them, and the activity page's query reads the new index; on SQLite and
PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, insert, select, text

from console import queries
from gateway.store import schema as gateway_schema
from ledger import schema as ledger_schema
from ledger.database import make_engine

NEW_INDEXES = {"ix_decisions_created", "ix_decisions_agent_created"}


def _row(i: int) -> dict[str, object]:
    return {"decision_id": f"dec_{i:026d}", "agent": "refund-bot", "packet_id": f"p-{i}", "packet_hash": "sha256:0",
            "tool": "stripe.refund", "status": "executed", "risk": 1, "policy_digest": "sha256:0",
            "packet": "{}", "decision": "{}", "created_at": 1000.0 + i, "updated_at": 1000.0 + i,
            "expires_at": None}


def test_version_4_indexes_a_version_3_database_keeping_its_decisions(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        ledger_schema.upgrade(engine)
        ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:3])
        with engine.begin() as conn:  # as version 3 of an earlier release left the table
            for name in NEW_INDEXES:
                conn.execute(text(f"DROP INDEX {name}"))
            conn.execute(insert(gateway_schema.decisions), [_row(i) for i in range(3)])
        assert NEW_INDEXES.isdisjoint(index["name"] for index in inspect(engine).get_indexes("decisions"))

        upgrade = ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:4])
        assert upgrade == (3, 4)
        assert gateway_schema.MIGRATIONS[3].__name__ == "_decision_list_indexes"
        assert NEW_INDEXES <= {index["name"] for index in inspect(engine).get_indexes("decisions")}
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (4, gateway_schema.LATEST_VERSION)
        with engine.connect() as conn:
            gateway_schema.require_current(conn)
            ids = list(conn.execute(select(gateway_schema.decisions.c.decision_id)
                                    .order_by(gateway_schema.decisions.c.created_at.desc())).scalars())
            assert ids == [f"dec_{i:026d}" for i in (2, 1, 0)]
            if engine.dialect.name == "sqlite":
                query = (select(*queries._COLUMNS).order_by(gateway_schema.decisions.c.created_at.desc(),
                                                            gateway_schema.decisions.c.decision_id.desc()).limit(51))
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
                assert "ix_decisions_created" in plan and "TEMP B-TREE" not in plan, plan
        latest = gateway_schema.LATEST_VERSION
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (latest, latest)
    finally:
        engine.dispose()


def test_activity_pages_by_key_through_ties_in_time(db_url: str) -> None:
    """The page key (created_at, decision_id) walks every row once, newest first, also where
    several decisions share a time."""
    from ledger.database import read_only

    engine = make_engine(db_url)
    try:
        gateway_schema.upgrade(engine)
        rows = [_row(i) | {"created_at": 1000.0 + i // 3} for i in range(10)]
        with engine.begin() as conn:
            conn.execute(insert(gateway_schema.decisions), [r | {"decision": _decision(r)} for r in rows])
        seen: list[str] = []
        before = None
        with read_only(engine.connect()) as conn:
            while True:
                page, before = queries.activity(conn, queries.Filters(before=before), limit=4)
                seen += [r.decision_id for r in page]
                if before is None:
                    break
        expected = [r["decision_id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["decision_id"]),
                                                     reverse=True)]
        assert seen == expected
    finally:
        engine.dispose()


def _decision(row: dict[str, object]) -> str:
    from gateway.engine.models import Decision

    return Decision.model_validate({"decision_id": row["decision_id"], "packet_id": row["packet_id"],
                                    "status": "executed", "risk": "L1", "autonomy": "A2",
                                    "policy_digest": "sha256:0"}).model_dump_json()
