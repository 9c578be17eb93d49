"""Crash safety of a real `warden serve` process: kill -9 while executions are in flight, restart
on the same database and data dir, twice, then check that nothing acknowledged was lost and
nothing was executed twice.

Each round fires L1/L0 packets (small refunds, CRM notes) from several client threads at a
gateway whose sandbox connectors take 200 ms per call, and sends SIGKILL at a moment when the
sandbox call ledger holds an executed call whose outcome the gateway has not recorded yet (the
answer is "travelling back"). After the last restart and once the outbox has drained:

- every decision a client got a 200/202 for is in the audit log, as recorded;
- every decision in the database was executed: status `executed`, exactly one `execution`
  entry with outcome `succeeded`, its idempotency key executed exactly once in the sandbox
  (re-driven calls are replays, counted apart), with the answer the client saw, if it saw one;
- the executions caught in flight by a kill were replayed, not executed again;
- `warden audit export` then `warden audit verify --key <verifier key>` exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))

from warden_process import AGENT, Deployment, WardenProcess, prepare  # noqa: E402

from connectors.call_ledger import SandboxCallLedger  # noqa: E402
from gateway.cli.main import main as warden  # noqa: E402
from gateway.store.schema import decisions, executions  # noqa: E402
from ledger.database import make_engine, read_only  # noqa: E402

CLIENT_THREADS = 6
LATENCY_MS = 200
ACKS_BEFORE_KILL = 12  # acknowledged decisions per round before the kill is armed
ROUNDS = 2
DRAIN_SECONDS = 60.0


def packet(packet_id: str, n: int) -> dict[str, Any]:
    """An L1 refund well under the approval limit, or an L0 CRM note: both execute at A2."""
    if n % 2:
        action = {"tool": "stripe.refund",
                  "params": {"charge": "ch_" + packet_id.replace("-", "_"), "amount": 100 + n % 4000, "currency": "usd"}}
        evidence: dict[str, Any] = {"reconciled": True, "order_total": 10_000}
    else:
        action = {"tool": "crm.log_note", "params": {"record_id": f"rec_{n % 50}", "body": f"note {packet_id}"}}
        evidence = {}
    return {"packet_id": packet_id, "agent": AGENT, "action": action, "evidence": evidence,
            "proof": {"invariant_checks": []}, "context": {"task_id": "crash"}}


@dataclass
class Load:
    """Client threads submitting packets until stopped; what each got back."""

    server: WardenProcess
    token: str
    label: str
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # packet_id → decision
    unanswered: list[str] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(CLIENT_THREADS)]
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, thread: int) -> None:
        with self.server.client(self.token) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                packet_id = f"{self.label}-t{thread}-{n}"
                try:
                    answer = client.post("/v1/actions", json=packet(packet_id, n))
                except httpx.TransportError:  # the server died under this request
                    with self.lock:
                        self.unanswered.append(packet_id)
                    time.sleep(0.01)
                    continue
                with self.lock:
                    if answer.status_code in (200, 202):
                        self.acknowledged[packet_id] = answer.json()
                    else:
                        self.refused.append((packet_id, answer.status_code, answer.text[:300]))

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def in_flight(sandbox: SandboxCallLedger, engine: Any) -> set[str]:
    """Idempotency keys (decision ids) executed in the sandbox whose outcome the gateway has not
    recorded: the sandbox is read first, so a key found here was in flight when the database was
    read."""
    executed = set(sandbox.executions_by_key())
    if not executed:
        return set()
    with read_only(engine.connect()) as conn:
        recorded = set(conn.execute(
            select(executions.c.decision_id).where(executions.c.state == "succeeded")).scalars())
    return executed - recorded


def kill_with_executions_in_flight(server: WardenProcess, load: Load, sandbox: SandboxCallLedger,
                                   engine: Any) -> None:
    deadline = time.monotonic() + 30
    while load.count() < ACKS_BEFORE_KILL or not in_flight(sandbox, engine):
        assert time.monotonic() < deadline, (
            f"no execution in flight after {load.count()} acknowledged decisions; refused: "
            f"{load.refused[:3]}\n{server.log_tail()}")
        assert server.process is not None and server.process.poll() is None, server.log_tail()
        time.sleep(0.005)
    server.kill9()


def audit_log(client: httpx.Client) -> list[dict[str, Any]]:
    """Every entry of the log, through GET /v1/audit/entries (1000 per call)."""
    entries: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/audit/entries", params={"from": len(entries)})
        assert page.status_code == 200, page.text
        body = page.json()
        entries += [item["entry"] for item in body["entries"]]
        if len(entries) >= body["size"] or not body["entries"]:
            return entries


def wait_until_drained(server: WardenProcess, engine: Any, client: httpx.Client,
                       acknowledged: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Poll until no execution is left to run; then every acknowledged decision as served now."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        with read_only(engine.connect()) as conn:
            states = Counter(conn.execute(select(executions.c.state)).scalars())
        if set(states) <= {"succeeded", "failed"}:
            break
        assert time.monotonic() < deadline, f"the outbox did not drain: {dict(states)}\n{server.log_tail()}"
        time.sleep(0.1)
    assert states["failed"] == 0, f"executions failed: {dict(states)}\n{server.log_tail()}"
    final: dict[str, dict[str, Any]] = {}
    for packet_id, decision in acknowledged.items():
        decision_id = decision["decision_id"]
        answer = client.get(f"/v1/actions/{decision_id}")
        while answer.status_code == 200 and answer.json()["status"] != "executed" and time.monotonic() < deadline:
            answer = client.get(f"/v1/actions/{decision_id}", params={"wait": 5})
        assert answer.status_code == 200, answer.text
        final[packet_id] = answer.json()
    return final


def test_kill9_during_executions_then_restart(db_url: str, tmp_path: Path) -> None:
    deployment: Deployment = prepare(
        db_url, tmp_path, sandbox_latency_ms=LATENCY_MS, outbox_workers=2, policy_reload="false",
        outbox_recover_on_start="true",
        checkpoint_every_entries=40, log_level="info",
    )
    engine = make_engine(db_url)
    sandbox: SandboxCallLedger | None = None
    acknowledged: dict[str, dict[str, Any]] = {}
    unanswered: list[str] = []
    caught: list[set[str]] = []
    began = time.monotonic()
    phases: list[str] = []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - began:.1f}s")

    server = WardenProcess(deployment).start()
    phase("started")
    try:
        sandbox = SandboxCallLedger(deployment.sandbox_ledger_path)
        for round_ in range(ROUNDS):
            load = Load(server, deployment.agent_token, f"r{round_}").start()
            try:
                kill_with_executions_in_flight(server, load, sandbox, engine)
            finally:
                load.finish()
            phase("killed")
            assert not load.refused, f"refused packets: {load.refused[:5]}"
            acknowledged |= load.acknowledged
            unanswered += load.unanswered
            # The process is dead: what its sandbox calls executed but its database never
            # recorded is now fixed, and must be replayed (not executed again) after the restart.
            caught.append(in_flight(sandbox, engine))
            server = WardenProcess(deployment).start()  # WAL recovery, outbox re-drive
            phase("restarted")

        agent = server.client(deployment.agent_token)
        auditor = server.client(deployment.auditor_token)
        with agent, auditor:
            final = wait_until_drained(server, engine, agent, acknowledged)
            entries = audit_log(auditor)
            checkpoint = auditor.get("/v1/audit/checkpoint")
        phase("drained")
        assert checkpoint.status_code == 200, checkpoint.text

        # -- every acknowledged decision is recorded, and was executed with the answer it showed
        decision_entries = {e["subject"]: e for e in entries if e["kind"] == "decision"}
        execution_entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in entries:
            if e["kind"] == "execution":
                execution_entries[e["subject"]].append(e)
        assert len(acknowledged) >= ROUNDS * ACKS_BEFORE_KILL
        for packet_id, seen in acknowledged.items():
            decision_id = seen["decision_id"]
            entry = decision_entries.get(decision_id)
            assert entry is not None, f"acknowledged decision {decision_id} ({packet_id}) is not in the audit log"
            assert entry["data"]["packet"]["packet_id"] == packet_id
            assert entry["actor"] == AGENT
            assert seen["audit"]["seq"] == entry["seq"]
            assert final[packet_id]["status"] == "executed", final[packet_id]
            if seen["status"] == "executed":
                assert final[packet_id]["execution"] == seen["execution"]

        # -- every decision in the database (answered or not) executed exactly once
        with read_only(engine.connect()) as conn:
            rows = conn.execute(select(decisions.c.decision_id, decisions.c.packet_id, decisions.c.status)).all()
        assert {row.decision_id for row in rows} == set(decision_entries)
        assert {r.status for r in rows} == {"executed"}, Counter(r.status for r in rows)
        executed_keys = sandbox.executions_by_key()
        twice = {key: n for key, n in executed_keys.items() if n != 1}
        assert not twice, f"idempotency keys executed more than once: {twice}"
        assert set(executed_keys) == {row.decision_id for row in rows}
        for row in rows:
            recorded = execution_entries[row.decision_id]
            assert [e["data"]["outcome"] for e in recorded] == ["succeeded"], (row.decision_id, recorded)
            answer = sandbox.answer(row.decision_id)
            assert answer is not None
            assert recorded[0]["data"]["external_id"] == answer.external_id
            assert recorded[0]["data"]["idempotency_key"] == row.decision_id

        # -- the kills did catch executions in flight, and the restarts replayed them
        assert any(caught), "no kill caught an execution in flight; the test exercised nothing"
        for key in set().union(*caught):
            calls = sandbox.calls(key)
            assert [c.replayed for c in calls][0] is False and any(c.replayed for c in calls[1:]), (key, calls)

        # -- the log verifies offline, across both crashes
        # A clean shutdown: uvicorn re-raises the SIGTERM it handled, so the process ends by it.
        assert server.stop() in (0, -signal.SIGTERM), server.log_tail()
        assert "Application shutdown complete" in server.log_tail(500)
        out = tmp_path / "export"
        assert warden(["audit", "export", "--db", db_url, "--out", str(out)]) == 0
        assert warden(["audit", "verify", str(out), "--key", deployment.verifier_key]) == 0
        phase("verified")
        print(f"acknowledged {len(acknowledged)}, unanswered {len(unanswered)}, decisions {len(rows)}, "
              f"caught in flight {[len(c) for c in caught]}, replays "
              f"{sum(1 for c in sandbox.calls() if c.replayed)}, entries {len(entries)}; {', '.join(phases)}")
    finally:
        server.kill9()
        if sandbox is not None:
            sandbox.close()
        engine.dispose()
