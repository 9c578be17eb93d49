"""Crash safety of the log writer's commit: kill -9 aimed at the writer mid-batch, when a batch's
rows are written but not committed. No acknowledged decision is lost, and no unacknowledged one
half-appears.

1. A gateway without failpoint takes concurrent load until some decisions are acknowledged, and
   stops: a history the crash must not touch.
2. A gateway started with `WARDEN_FAILPOINT=writer.before_commit=PATH` (`gateway/store/writer.py`)
   takes concurrent load; its first batch of two jobs or more writes its rows, reports them to
   PATH (`from_seq`, the entries' seq, kind and subject) and waits. The test sends SIGKILL then.
3. Before the restart, in the database: the log ends at `from_seq` (head, entries, Merkle nodes,
   checkpoints); no decision, outbox row or incident names a held decision; the held execution
   outcomes were not recorded; the sandbox never ran a held decision.
4. After the restart, before any new load: the log's first `from_seq` entries are those read
   before it, and whatever follows is only the restart re-driving executions of decisions
   recorded before `from_seq`; still nothing names a held decision.
5. Once the outbox drained: every acknowledged decision is in the log as its answer showed and
   executed exactly once; the held outcomes were reconciled (found in the sandbox's records), not sent again; each decision row
   has exactly one decision entry and vice versa; every outbox row has its decision row; an export
   of the log verifies offline.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from crash_support import (  # noqa: E402
    Load, audit_log, check_executed_once, check_rows_match_entries, wait_until_drained,
)
from warden_process import Deployment, WardenProcess, prepare  # noqa: E402

from connectors.call_ledger import SandboxCallLedger  # noqa: E402
from gateway.cli.main import main as warden  # noqa: E402
from gateway.store.schema import decisions, executions, incidents  # noqa: E402
from gateway.store.writer import FAILPOINT_ENV  # noqa: E402
from ledger.database import make_engine, read_only  # noqa: E402
from ledger.schema import NODE_LEVEL_SHIFT, checkpoints, entries, head, nodes  # noqa: E402

HISTORY_ACKS = 12  # decisions acknowledged by the first gateway, before the failpoint is armed
REPORT_SECONDS = 60.0  # how long the armed gateway may take to hold a batch


def wait_for_report(server: WardenProcess, path: Path, load: Load) -> dict[str, Any]:
    """The failpoint's report, once the armed gateway holds a batch."""
    deadline = time.monotonic() + REPORT_SECONDS
    while not path.exists():
        assert server.process is not None and server.process.poll() is None, (
            f"warden serve exited before the failpoint held a batch:\n{server.log_tail()}")
        assert not load.refused, f"refused packets: {load.refused[:5]}"
        assert time.monotonic() < deadline, (
            f"the failpoint held no batch within {REPORT_SECONDS:.0f} s ({load.count()} decisions "
            f"acknowledged, report expected at {path}):\n{server.log_tail()}")
        time.sleep(0.01)
    return dict(json.loads(path.read_text(encoding="utf-8")))


def naming(engine: Any, decision_ids: set[str]) -> dict[str, list[str]]:
    """Decision rows, outbox rows and incidents that name one of `decision_ids`."""
    with read_only(engine.connect()) as conn:
        return {
            "decisions": list(conn.execute(select(decisions.c.decision_id)
                                           .where(decisions.c.decision_id.in_(decision_ids))).scalars()),
            "executions": list(conn.execute(select(executions.c.decision_id)
                                            .where(executions.c.decision_id.in_(decision_ids))).scalars()),
            "incidents": list(conn.execute(select(incidents.c.decision_id)
                                           .where(incidents.c.decision_id.in_(decision_ids))).scalars()),
        }


def committed_log(engine: Any, from_seq: int) -> list[dict[str, Any]]:
    """The log as the database holds it after the kill, checked to end at `from_seq`: the head,
    the entries, the Merkle subtrees and the checkpoints know nothing of the held batch."""
    with read_only(engine.connect()) as conn:
        size, last_leaf = conn.execute(select(head.c.size, head.c.last_leaf)).one()
        rows = conn.execute(select(entries.c.seq, entries.c.leaf_hash, entries.c.body).order_by(entries.c.seq)).all()
        subtrees = list(conn.execute(select(nodes.c.node)).scalars())
        signed = conn.execute(select(func.max(checkpoints.c.size))).scalar()
    assert size == from_seq, f"the log's head says {size} entries, the batch held from {from_seq}"
    assert [row.seq for row in rows] == list(range(from_seq)), (
        f"{len(rows)} entries (last seq {rows[-1].seq if rows else None}) where the log ends at {from_seq}")
    assert from_seq == 0 or bytes(last_leaf) == bytes(rows[-1].leaf_hash)
    beyond = []
    for node in subtrees:
        level, index = node >> NODE_LEVEL_SHIFT, node & ((1 << NODE_LEVEL_SHIFT) - 1)
        if (index + 1) << level > from_seq:
            beyond.append((level, index))
    assert not beyond, f"Merkle subtrees covering entries of the held batch: {beyond[:5]}"
    assert signed is None or signed <= from_seq, f"a checkpoint of size {signed} > {from_seq}"
    return [json.loads(bytes(row.body)) for row in rows]


def test_kill9_mid_batch_then_restart(db_url: str, tmp_path: Path) -> None:
    deployment: Deployment = prepare(
        db_url, tmp_path, outbox_workers=2, policy_reload="false", outbox_recover_on_start="true",
        checkpoint_every_entries=10, log_level="info",
    )
    report_path = tmp_path / "failpoint.json"
    engine = make_engine(db_url)
    sandbox: SandboxCallLedger | None = None
    began = time.monotonic()
    phases: list[str] = []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - began:.1f}s")

    server = WardenProcess(deployment).start()
    try:
        sandbox = SandboxCallLedger(deployment.sandbox_ledger_path)

        # -- a history: decisions acknowledged and executed by a gateway that then stops
        history = Load(server, deployment.agent_token, "history").start()
        try:
            deadline = time.monotonic() + REPORT_SECONDS
            while history.count() < HISTORY_ACKS:
                assert not history.refused, f"refused packets: {history.refused[:5]}"
                assert time.monotonic() < deadline, (
                    f"only {history.count()} decisions acknowledged in {REPORT_SECONDS:.0f} s\n{server.log_tail()}")
                time.sleep(0.01)
        finally:
            history.finish()
        assert not history.refused and not history.unanswered, (history.refused[:5], history.unanswered[:5])
        assert server.stop() in (0, -signal.SIGTERM), server.log_tail()
        phase("history")

        # -- the armed gateway holds a batch before its commit; SIGKILL
        armed = WardenProcess(deployment, env={FAILPOINT_ENV: f"writer.before_commit={report_path}"})
        server = armed.start()
        load = Load(server, deployment.agent_token, "armed", together=True).start()
        try:
            report = wait_for_report(server, report_path, load)
        finally:
            load.stop.set()  # no new request; those the held batch blocks end with the process
            server.kill9()
            load.finish()
        phase("killed")
        assert not any(thread.is_alive() for thread in load.clients), "a client still waits for an answer"
        assert not load.refused, f"refused packets: {load.refused[:5]}"
        acknowledged = history.acknowledged | load.acknowledged

        from_seq: int = report["from_seq"]
        held: list[dict[str, Any]] = report["entries"]
        assert report["pid"] == armed.pid
        assert len(held) >= 2, f"the held batch holds {len(held)} entries; the drill exercised nothing: {report}"
        assert [e["seq"] for e in held] == list(range(from_seq, from_seq + len(held))), report
        assert {e["kind"] for e in held} <= {"decision", "execution"}, report
        held_decisions = {e["subject"] for e in held if e["kind"] == "decision"}
        held_outcomes = {e["subject"] for e in held if e["kind"] == "execution"}
        # nobody was told of what the batch holds: the writer answers only after a commit
        for packet_id, seen in acknowledged.items():
            assert seen["decision_id"] not in held_decisions, (packet_id, seen)
            assert seen["audit"]["seq"] < from_seq, (packet_id, seen)
            if seen["status"] == "executed":
                assert seen["decision_id"] not in held_outcomes, (packet_id, seen)

        # -- before the restart: the database holds nothing of the batch
        committed = committed_log(engine, from_seq)
        assert naming(engine, held_decisions) == {"decisions": [], "executions": [], "incidents": []}
        recorded_at = {e["subject"]: e["seq"] for e in committed if e["kind"] == "decision"}
        assert held_outcomes <= set(recorded_at), "an outcome held for a decision the log does not hold"
        with read_only(engine.connect()) as conn:
            outcome_rows = conn.execute(select(decisions.c.decision_id, decisions.c.status, executions.c.state)
                                        .join(executions, executions.c.decision_id == decisions.c.decision_id)
                                        .where(decisions.c.decision_id.in_(held_outcomes))).all()
        assert len(outcome_rows) == len(held_outcomes)
        for row in outcome_rows:  # the outcome's row updates went with the batch
            assert (row.status, row.state) == ("executing", "running"), row
            assert sandbox.executions_by_key().get(row.decision_id) == 1, row
        ran = sorted(decision_id for decision_id in held_decisions if sandbox.count(decision_id))
        assert not ran, f"the sandbox ran decisions that were never committed: {ran}"

        # -- restart; before any new load, the log is the committed one, plus re-driven outcomes
        server = WardenProcess(deployment).start()
        phase("restarted")
        with server.client(deployment.auditor_token) as auditor:
            restarted = audit_log(auditor)
        assert restarted[:from_seq] == committed, "the restart changed the log's committed entries"
        for entry in restarted[from_seq:]:  # a re-driven execution: its reconciliation, its outcome
            assert entry["kind"] in ("reconciliation", "execution") and entry["subject"] in recorded_at, (
                f"entry {entry['seq']} after the restart is no re-driven execution: {entry}")
        assert naming(engine, held_decisions) == {"decisions": [], "executions": [], "incidents": []}

        # -- once drained: acknowledged decisions kept, everything executed exactly once
        agent = server.client(deployment.agent_token)
        auditor = server.client(deployment.auditor_token)
        with agent, auditor:
            final = wait_until_drained(server, engine, agent, acknowledged)
            log = audit_log(auditor)
        phase("drained")
        assert len(history.acknowledged) >= HISTORY_ACKS
        rows = check_executed_once(log, acknowledged, final, engine, sandbox)
        check_rows_match_entries(log, engine)
        assert not held_decisions & {e["subject"] for e in log if e["kind"] == "decision"}
        ran = sorted(decision_id for decision_id in held_decisions if sandbox.count(decision_id))
        assert not ran, f"the sandbox ran decisions that were never committed: {ran}"
        found = {e["subject"] for e in log if e["kind"] == "reconciliation" and e["data"]["found"]}
        for decision_id in held_outcomes:  # the outcome was lost with the batch: reconciled, not run again
            calls = sandbox.calls(decision_id)
            assert [c.replayed for c in calls] == [False], (decision_id, calls)
            assert decision_id in found, f"{decision_id}'s lost outcome was not reconciled"

        # -- the log verifies offline, across the crash
        assert server.stop() in (0, -signal.SIGTERM), server.log_tail()
        out = tmp_path / "export"
        assert warden(["audit", "export", "--db", db_url, "--out", str(out)]) == 0
        assert warden(["audit", "verify", str(out), "--key", deployment.verifier_key]) == 0
        phase("verified")
        print(f"acknowledged {len(history.acknowledged)} + {len(load.acknowledged)}, unanswered "
              f"{len(load.unanswered)}, held {len(held)} entries of {report['jobs']} jobs from seq {from_seq} "
              f"({len(held_decisions)} decisions, {len(held_outcomes)} outcomes), decisions {len(rows)}, "
              f"entries {len(log)}; {', '.join(phases)}")
    finally:
        server.kill9()
        if sandbox is not None:
            sandbox.close()
        engine.dispose()
