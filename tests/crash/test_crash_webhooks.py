"""`kill -9` of `warden serve` with webhook deliveries pending loses none: a real process, a slow
receiver on loopback that verifies every signature, SIGKILL while deliveries are queued (and
executions in flight), a restart on the same database; then every event of every decision
arrives (at least once: duplicates share a `webhook-id`), each decision's in log order."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from warden_process import WardenProcess, prepare  # noqa: E402

from gateway.events.reader import read_events  # noqa: E402
from gateway.store.schema import webhook_deliveries  # noqa: E402
from gateway_server import note  # noqa: E402
from ledger.database import make_engine, read_only  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

DECISIONS = 12


def pending(engine: object) -> int:
    with read_only(engine.connect()) as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(webhook_deliveries)
                                .where(webhook_deliveries.c.state == "pending")).scalar_one())


def test_kill9_with_deliveries_pending_loses_none(db_url: str, tmp_path: Path) -> None:
    deployment = prepare(db_url, tmp_path, sandbox_latency_ms=50, policy_reload="false",
                         webhook_backoff_base_seconds=0.05, webhook_backoff_max_seconds=0.3,
                         webhook_max_attempts=100)
    receiver = Receiver()
    receiver.delay = 0.1  # slow: deliveries queue up behind it
    added = deployment.cli("webhooks", "add", receiver.url, "--events", "decision", "execution")
    assert added.returncode == 0, added.stderr
    receiver.secret = added.stdout.strip()
    assert receiver.secret.startswith("whsec_") and "registered webhook whk_" in added.stderr
    engine = make_engine(db_url)
    receiver.start()
    server = WardenProcess(deployment).start()
    try:
        with server.client(deployment.agent_token) as client:
            for n in range(DECISIONS):
                response = client.post("/v1/actions", json=note(deployment.agent, packet_id=f"hook-{n}"))
                assert response.status_code in (200, 202), response.text
        deadline = time.monotonic() + 30
        while len(receiver.received) < 3 or pending(engine) == 0:
            assert time.monotonic() < deadline, f"no delivery under way\n{server.log_tail()}"
            time.sleep(0.01)
        server.kill9()
        before = len(receiver.unique())
        assert pending(engine) > 0

        server = WardenProcess(deployment).start()
        deadline = time.monotonic() + 60

        def expected() -> list[str]:
            with read_only(engine.connect()) as conn:
                _last, found = read_events(conn, -1, limit=100_000)
            return [e.id for e in found if e.kind in ("decision", "execution")]

        while set(receiver.ids()) != set(expected()) or pending(engine):
            assert time.monotonic() < deadline, (f"{len(set(receiver.ids()))} of {len(expected())} events arrived\n"
                                                 f"{server.log_tail()}")
            time.sleep(0.05)
    finally:
        server.stop()
        receiver.stop()
        engine.dispose()
    got = receiver.unique()
    assert receiver.rejected == 0 and before < len(got)
    decisions = {d["body"]["decision_id"] for d in got}
    assert len(decisions) == DECISIONS
    for decision_id in decisions:  # in order per decision: the decision, then its execution
        kinds = [d["body"]["type"] for d in got if d["body"]["decision_id"] == decision_id]
        assert kinds == ["decision", "execution"], kinds
    seqs = [d["body"]["seq"] for d in got]
    assert seqs == sorted(seqs)
