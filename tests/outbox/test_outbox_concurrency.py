"""Many claimers at once (threads sharing an outbox, separate processes) never run a row twice."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from outbox_support import FakeClock, RecordingConnector, add_decision, audit_entries, execution_row
from sqlalchemy import Engine

from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.store import Ledger

ROWS = 40


def test_threads_never_run_a_row_twice(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    ids = [add_decision(engine, clock()) for _ in range(ROWS)]
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            start.wait()
            while outbox.run_due(limit=3):
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert sorted(connector.keys_called()) == sorted(ids)
    assert all(execution_row(engine, i).state == "succeeded" for i in ids)
    assert len(audit_entries(engine, "execution")) == ROWS


# Each process says it is ready, waits for the "go" file so that both claim at the same time, drains the queue
# with its own outbox and connector, and prints every idempotency key its connector was called with.
PROCESS = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from outbox_support import RecordingConnector
from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.database import make_engine
from ledger.store import Ledger

url, go, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[4])
engine = make_engine(url)
engine.connect().close()
connector = RecordingConnector()
outbox = Outbox(Writer(engine, Ledger()), connector)
ready.touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
idle = 0
while idle < 5:
    idle = 0 if outbox.run_due(limit=2) else idle + 1
    if idle:
        time.sleep(0.01)
engine.dispose()
print(json.dumps(connector.keys_called()))
"""


def test_processes_never_run_a_row_twice(engine: Engine, db_url: str, tmp_path: Path) -> None:
    ids = [add_decision(engine, time.time()) for _ in range(ROWS)]
    go = tmp_path / "go"
    here = str(Path(__file__).parent)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, db_url, str(go), here, str(tmp_path / f"ready-{n}")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
        time.sleep(0.01)
    go.touch()
    called: list[str] = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        called += json.loads(out)
    assert sorted(called) == sorted(ids), "a row ran twice or not at all"
    assert all(execution_row(engine, i).state == "succeeded" for i in ids)
    assert len(audit_entries(engine, "execution")) == ROWS
