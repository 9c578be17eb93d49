"""Several processes appending at once still give one gap-free, verifiable sequence."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ledger import merkle
from ledger.database import make_engine
from ledger.entry import GENESIS_PREV, decode_entry
from ledger.keys import write_signer_key
from ledger.note import generate_key
from ledger.schema import upgrade
from ledger.store import Ledger
from ledger.verify import verify_log

WORKERS = 4
APPENDS = 200

# Each worker waits for the "go" file so that all of them append at the same time, then appends
# one entry per transaction and checkpoints every 10 entries with the shared key, the way gateway
# processes do.
WORKER = """
import sys, time
from pathlib import Path
from ledger.checkpointer import Checkpointer, CheckpointPolicy
from ledger.database import make_engine
from ledger.keys import read_signer_key
from ledger.store import Ledger

url, name, count, go, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
engine = make_engine(url)
ledger = Ledger()
checkpointer = Checkpointer(read_signer_key(key), CheckpointPolicy(every_entries=10, every_seconds=3600))
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
for i in range(count):
    with engine.begin() as conn:
        ledger.append(conn, "decision", name, f"{name}-{i}", {"i": i})
        checkpointer.maybe_sign(conn)
engine.dispose()
"""


def _run_workers(url: str, go: Path, key: Path) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"w{n}", str(APPENDS), str(go), str(key)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    time.sleep(0.5)  # let the interpreters start; the workers then begin together
    go.touch()
    failures = []
    for process in processes:
        _out, err = process.communicate(timeout=300)
        if process.returncode != 0:
            failures.append(err)
    assert not failures, failures[0]


def test_concurrent_appends_from_processes_form_one_chain(postgres_url: str, tmp_path: Path) -> None:
    _check_concurrent_appends(postgres_url, tmp_path)


def test_concurrent_appends_from_processes_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _check_concurrent_appends(sqlite_url, tmp_path)


def _check_concurrent_appends(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    upgrade(engine)
    signer = generate_key("warden.test/log")
    write_signer_key(tmp_path / "log.key", signer)
    _run_workers(url, tmp_path / "go", tmp_path / "log.key")
    ledger = Ledger()
    with engine.connect() as conn:
        bodies = list(ledger.iter_entries(conn))
        head = ledger.head(conn)
        notes = ledger.checkpoint_notes(conn)
    engine.dispose()
    sizes = [size for size, _note in notes]
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and len(sizes) >= WORKERS * APPENDS // 10
    report = verify_log(bodies, [note for _size, note in notes], signer.verifier_key)
    assert report.ok, report.summary()
    decoded = [decode_entry(body) for body in bodies]
    assert [e.seq for e in decoded] == list(range(WORKERS * APPENDS))
    assert head.size == WORKERS * APPENDS
    previous = GENESIS_PREV
    for entry in decoded:
        assert entry.prev == previous, f"broken prev link at seq {entry.seq}"
        previous = entry.leaf_hash.hex()
    assert head.last_leaf.hex() == previous
    assert head.root == merkle.root([e.leaf_hash for e in decoded])
    assert Counter(e.actor for e in decoded) == {f"w{n}": APPENDS for n in range(WORKERS)}
    assert len({e.subject for e in decoded}) == WORKERS * APPENDS
