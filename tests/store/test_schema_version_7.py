"""Schema version 7 (policy sets kept by digest) upgrades a version 6 database, keeping what it
holds; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from gateway.store import schema as gateway_schema
from gateway.store.policy_sets import list_policy_sets, load_policy_set, save_policy_set
from ledger import schema as ledger_schema
from ledger.database import make_engine


def test_version_7_adds_the_policy_sets_table(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        ledger_schema.upgrade(engine)
        ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:6])
        with engine.begin() as conn:  # as version 6 of an earlier release left the database
            conn.execute(text("DROP TABLE policy_sets"))
            conn.execute(text("INSERT INTO gateway_state (key, value) VALUES ('kept', '{}')"))
        assert "policy_sets" not in inspect(engine).get_table_names()

        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (6, 7)
        with engine.begin() as conn:
            gateway_schema.require_current(conn)
            assert conn.execute(text("SELECT value FROM gateway_state WHERE key = 'kept'")).scalar_one() == "{}"
            assert save_policy_set(conn, "sha256:" + "ab" * 32, {"a.policy": "policy a {}\n", "é.policy": "# ünïcode\n"}, 5.0)
            assert not save_policy_set(conn, "sha256:" + "ab" * 32, {"other.policy": ""}, 6.0)
        with engine.connect() as conn:
            kept = load_policy_set(conn, "sha256:" + "ab" * 32)
            assert kept is not None and kept.files == {"a.policy": "policy a {}\n", "é.policy": "# ünïcode\n"}
            assert kept.activated_at == 5.0
            assert load_policy_set(conn, "sha256:" + "cd" * 32) is None
            assert list_policy_sets(conn) == [("sha256:" + "ab" * 32, 5.0)]
    finally:
        engine.dispose()
