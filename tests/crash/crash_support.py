"""What the crash tests share: the load they drive at a `warden serve` process, how they read
what it recorded, and the checks every crash must pass.

- `Load(server, token, label).start()`: client threads submitting packets that execute (L1
  refunds, L0 CRM notes) until `finish()`; what each got back (acknowledged, unanswered, refused).
- `audit_log(client)`: every entry of the log, through GET /v1/audit/entries.
- `in_flight(sandbox, engine)`: idempotency keys executed in the sandbox whose outcome the gateway
  has not recorded.
- `wait_until_drained(...)`: poll until the outbox is empty; every acknowledged decision as
  served now.
- `check_executed_once(...)`: every acknowledged decision is in the log as its answer showed, and
  every decision in the database was executed exactly once, as the log says.
- `check_rows_match_entries(...)`: each decision row has exactly one decision entry and each
  decision entry its row; every outbox row and incident refers to a decision row.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Row, select

from warden_process import AGENT, WardenProcess

from connectors.call_ledger import SandboxCallLedger
from gateway.store.schema import decisions, executions, incidents
from ledger.database import read_only

CLIENT_THREADS = 6
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
    """`threads` client threads submitting packets until stopped; what each got back. With
    `together`, each thread first opens its connection, then all send their first packet at once:
    a burst that reaches the log writer as one batch of several jobs, or two."""

    server: WardenProcess
    token: str
    label: str
    threads: int = CLIENT_THREADS
    together: bool = False
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # packet_id → decision
    unanswered: list[str] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: list[threading.Thread] = field(default_factory=list)
    _ready: threading.Barrier | None = field(default=None, init=False, repr=False)

    def start(self) -> Load:
        self._ready = threading.Barrier(self.threads) if self.together else None
        self.clients = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(self.threads)]
        for thread in self.clients:
            thread.start()
        return self

    def _run(self, thread: int) -> None:
        with self.server.client(self.token) as client:
            if self._ready is not None:
                assert client.get("/healthz").status_code == 200  # the connection, kept alive
                self._ready.wait(timeout=60)
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
        for thread in self.clients:
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


def check_executed_once(entries: list[dict[str, Any]], acknowledged: dict[str, dict[str, Any]],
                        final: dict[str, dict[str, Any]], engine: Any,
                        sandbox: SandboxCallLedger) -> list[Row[Any]]:
    """Once the outbox has drained (`final` from `wait_until_drained`), with `entries` the whole
    log: every acknowledged decision is in the log as its answer showed and ended executed, with
    the answer it showed if it saw one; every decision in the database (answered or not) was
    executed exactly once (re-driven calls are replays), with one `execution` entry, `succeeded`,
    carrying the sandbox's answer. Returns the decision rows."""
    decision_entries = {e["subject"]: e for e in entries if e["kind"] == "decision"}
    execution_entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if e["kind"] == "execution":
            execution_entries[e["subject"]].append(e)
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

    with read_only(engine.connect()) as conn:
        rows: list[Row[Any]] = list(conn.execute(
            select(decisions.c.decision_id, decisions.c.packet_id, decisions.c.status)).all())
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
    return rows


def check_rows_match_entries(entries: list[dict[str, Any]], engine: Any) -> None:
    """With `entries` the whole log: each decision row has exactly one `decision` entry and each
    `decision` entry its row; every outbox (`executions`) row and every incident that names a
    decision refers to a decision row."""
    per_subject = Counter(e["subject"] for e in entries if e["kind"] == "decision")
    repeated = {subject: n for subject, n in per_subject.items() if n != 1}
    assert not repeated, f"decisions with more than one decision entry: {repeated}"
    with read_only(engine.connect()) as conn:
        decided = set(conn.execute(select(decisions.c.decision_id)).scalars())
        queued = set(conn.execute(select(executions.c.decision_id)).scalars())
        named = set(conn.execute(select(incidents.c.decision_id)
                                 .where(incidents.c.decision_id.is_not(None))).scalars())
    assert decided == set(per_subject), (
        f"decision rows without an entry: {sorted(decided - set(per_subject))[:5]}; "
        f"decision entries without a row: {sorted(set(per_subject) - decided)[:5]}")
    assert queued <= decided, f"outbox rows without a decision row: {sorted(queued - decided)[:5]}"
    assert named <= decided, f"incidents naming no decision row: {sorted(named - decided)[:5]}"
