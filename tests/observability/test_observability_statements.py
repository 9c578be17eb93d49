"""`warden_db_statements_total`: the statements a gateway sends to its database, by kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from gateway.runtime.metrics import STATEMENT_KINDS, Metrics, statement_kind
from gateway_server import Server, refund, server_config, start_server
from ledger.database import make_engine


def statements(body: str) -> dict[str, float]:
    """kind → value of warden_db_statements_total in an exposition text."""
    return {sample.labels["kind"]: sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples if sample.name == "warden_db_statements_total"}


def test_statements_are_sorted_into_read_write_and_other() -> None:
    assert statement_kind("SELECT 1") == "read"
    assert statement_kind("select 1") == "read"
    assert statement_kind("\n  WITH t AS (SELECT 1) SELECT * FROM t") == "read"
    assert statement_kind("INSERT INTO t VALUES (1)") == "write"
    assert statement_kind("UPDATE t SET a = 1") == "write"
    assert statement_kind("DELETE FROM t") == "write"
    for other in ("BEGIN IMMEDIATE", "SAVEPOINT sa_1", "RELEASE SAVEPOINT sa_1", "PRAGMA foreign_keys", ""):
        assert statement_kind(other) == "other"


def test_reported_as_zero_until_an_engine_sends_a_statement(tmp_path: Path) -> None:
    metrics = Metrics(process=False)
    assert statements(metrics.render()[0].decode()) == dict.fromkeys(STATEMENT_KINDS, 0.0)
    engine = make_engine(f"sqlite:///{tmp_path / 'count.db'}")
    metrics.count_statements(engine)
    metrics.count_statements(engine)  # attaching twice counts once
    try:
        with engine.begin() as conn:  # BEGIN IMMEDIATE (other), then three statements
            conn.execute(text("CREATE TABLE t (a INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            conn.execute(text("SELECT a FROM t")).all()
    finally:
        engine.dispose()
    assert statements(metrics.render()[0].decode()) == {"read": 1.0, "write": 1.0, "other": 2.0}


@pytest.fixture
def gateway(db_url: str, tmp_path: Path) -> Iterator[Server]:
    server, stop = start_server(server_config(db_url, tmp_path))
    try:
        yield server
    finally:
        stop()


def test_a_submitted_packet_raises_the_count(gateway: Server) -> None:
    scrape = gateway.client().get
    before = statements(scrape("/metrics").text)
    response = gateway.client("a2").post("/v1/actions", json=refund("a2", 2500))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "executed"
    after = statements(scrape("/metrics").text)
    assert set(after) == set(STATEMENT_KINDS)
    assert after["write"] - before["write"] >= 3  # at least the decision, its audit entry, its execution
    assert after["read"] > before["read"]
