"""Crash safety of a real `warden serve` process: kill -9 while executions are in flight, restart
on the same database and data dir, twice, then check that nothing acknowledged was lost and
nothing was executed twice.

Each round fires L1/L0 packets (small refunds, CRM notes) from several client threads at a
gateway whose sandbox connectors take 200 ms per call, and sends SIGKILL at a moment when the
sandbox call ledger holds an executed call whose outcome the gateway has not recorded yet (the
answer is "travelling back"). After the last restart and once the outbox has drained:

- every decision a client got a 200/202 for is in the audit log, as recorded;
- every decision in the database was executed: status `executed`, exactly one `execution`
  entry with outcome `succeeded`, its idempotency key executed exactly once in the sandbox, with
  the answer the client saw, if it saw one;
- the executions caught in flight by a kill were reconciled (a `reconciliation` entry found the
  sandbox's record of the call), not sent again;
- `warden audit export` then `warden audit verify --key <verifier key>` exits 0.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from crash_support import Load, audit_log, check_executed_once, in_flight, wait_until_drained  # noqa: E402
from warden_process import Deployment, WardenProcess, prepare  # noqa: E402

from connectors.call_ledger import SandboxCallLedger  # noqa: E402
from gateway.cli.main import main as warden  # noqa: E402
from ledger.database import make_engine  # noqa: E402

LATENCY_MS = 200
ACKS_BEFORE_KILL = 12  # acknowledged decisions per round before the kill is armed
ROUNDS = 2


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

        # -- every acknowledged decision is recorded, and was executed with the answer it showed;
        # -- every decision in the database (answered or not) executed exactly once
        assert len(acknowledged) >= ROUNDS * ACKS_BEFORE_KILL
        rows = check_executed_once(entries, acknowledged, final, engine, sandbox)

        # -- the kills did catch executions in flight, and the restarts reconciled them: the
        # -- outcome was unknown, the sandbox's records showed the call, so it was not sent again
        assert any(caught), "no kill caught an execution in flight; the test exercised nothing"
        found = {e["subject"] for e in entries if e["kind"] == "reconciliation" and e["data"]["found"]}
        for key in set().union(*caught):
            calls = sandbox.calls(key)
            assert [c.replayed for c in calls] == [False], (key, calls)
            assert key in found, f"{key} was caught in flight but not reconciled"

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
