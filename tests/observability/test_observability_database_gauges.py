"""Deployment state read from the database at scrape time, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

from gateway.store.killswitch import KillSwitch, write_kill_switch
from gateway.runtime.metrics import Metrics
from gateway.store.schema import decisions, executions, upgrade
from ledger.checkpointer import Checkpointer
from ledger.database import make_engine
from ledger.note import Signer
from ledger.store import Ledger

GAUGES = (
    "warden_pending_approvals",
    "warden_outbox_pending",
    "warden_audit_log_entries",
    "warden_kill_switch_engaged",
)


def scrape(metrics: Metrics) -> dict[str, float]:
    """Unlabelled sample name → value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = sample.value
    return out


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def add_decision(conn: object, n: int, status: str, state: str | None = None) -> None:
    decision_id = f"dec_{n:030d}"
    conn.execute(insert(decisions).values(  # type: ignore[attr-defined]
        decision_id=decision_id, agent="refund-bot", packet_id=f"p{n}", packet_hash="sha256:" + "0" * 64,
        tool="stripe.refund", status=status, risk=1, policy_digest="sha256:" + "1" * 64,
        packet="{}", decision="{}", created_at=1000.0, updated_at=1000.0,
        expires_at=2000.0 if status == "pending_approval" else None,
    ))
    if state is not None:
        conn.execute(insert(executions).values(  # type: ignore[attr-defined]
            decision_id=decision_id, tool="stripe.refund", params="{}", state=state, attempts=0,
            next_attempt_at=1000.0, created_at=1000.0, updated_at=1000.0,
        ))


def test_a_fresh_database_reports_zeros_and_no_checkpoint_age(engine: Engine) -> None:
    values = scrape(Metrics(engine, process=False))
    assert {name: values[name] for name in GAUGES} == dict.fromkeys(GAUGES, 0.0)
    assert "warden_audit_checkpoint_age_seconds" not in values
    assert values["warden_metrics_scrape_errors_total"] == 0


def test_gauges_follow_the_database(engine: Engine) -> None:
    ledger = Ledger()
    with engine.begin() as conn:
        add_decision(conn, 1, "pending_approval")
        add_decision(conn, 2, "pending_approval")
        add_decision(conn, 3, "executed", "succeeded")
        add_decision(conn, 4, "executed", "pending")
        add_decision(conn, 5, "executed", "running")
        add_decision(conn, 6, "executed", "failed")
        for n in range(5):
            ledger.append(conn, "decision", "refund-bot", f"dec_{n}", {"n": n})
    with engine.begin() as conn:
        signer = Signer("warden.test", Ed25519PrivateKey.generate())
        assert Checkpointer(signer, clock=lambda: 1000.0).sign_now(conn) is not None
    with engine.begin() as conn:
        ledger.append(conn, "kill_switch", "founder@example.com", "kill_switch", {"engaged": True})
        write_kill_switch(conn, KillSwitch(engaged=True, reason="test", by="founder@example.com", at=1000.0))

    metrics = Metrics(engine, process=False, clock=lambda: 1042.5)
    values = scrape(metrics)
    assert values["warden_pending_approvals"] == 2
    assert values["warden_outbox_pending"] == 2
    assert values["warden_audit_log_entries"] == 6
    assert values["warden_audit_checkpoint_age_seconds"] == 42.5
    assert values["warden_kill_switch_engaged"] == 1
    assert values["warden_metrics_scrape_errors_total"] == 0

    with engine.begin() as conn:
        write_kill_switch(conn, KillSwitch(engaged=False))
    assert scrape(metrics)["warden_kill_switch_engaged"] == 0


def drop_database(db_url: str, engine: Engine) -> None:
    """Remove the database under the engine's feet (the SQLite file, or the PostgreSQL database)."""
    engine.dispose()
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        Path(str(url.database)).unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(url.database) + suffix).unlink(missing_ok=True)
        return
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_a_dropped_database_is_a_scrape_error_not_an_exception(engine: Engine, db_url: str) -> None:
    metrics = Metrics(engine, process=False)
    metrics.observe_decision("executed", "stripe.refund", 1, 0.001)
    assert scrape(metrics)["warden_audit_log_entries"] == 0
    drop_database(db_url, engine)

    values = scrape(metrics)
    assert values["warden_metrics_scrape_errors_total"] == 1
    assert not set(GAUGES) & set(values)
    assert values["warden_decision_seconds_count"] == 1  # the rest of the scrape is intact
    assert scrape(metrics)["warden_metrics_scrape_errors_total"] == 2
    assert metrics.database.errors == 2


def test_an_unreachable_server_is_a_scrape_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://warden@127.0.0.1:{port}/warden?connect_timeout=2")
    metrics = Metrics(engine, process=False)
    values = scrape(metrics)
    assert values["warden_metrics_scrape_errors_total"] == 1
    assert "warden_pending_approvals" not in values
