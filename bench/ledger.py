"""Audit ledger benchmark: durable appends, export + verification, proofs at a million entries.

    python bench/ledger.py [--size 1000000] [--no-postgres] [--postgres-size N] [--workdir DIR]

Prints, in one run:
  - the disk's fsync latency (what bounds one-transaction-per-append rates),
  - durable appends/s on SQLite (WAL, synchronous=FULL): one entry per transaction, batched, and
    through the gateway's log writer (16 threads, one entry per job),
  - durable appends/s on PostgreSQL (fsync on, synchronous_commit on; a throwaway server started
    like the test suite's, tests/postgres.py) with 1 and 4 writer processes, single and batched,
  - on a `--size`-entry log: export and verification throughput (entries/s) for the export folder
    and for the live database, and inclusion / consistency proof times (median, p99) and sizes.

The big log is built through `Ledger.append_many` (the same encoding, hashing, subtree storage and
head update as every append) in transactions of 50,000 entries, not one transaction per entry:
building a million entries one fsync at a time would take over an hour and measure only the disk.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ledger.checkpointer import Checkpointer, CheckpointPolicy  # noqa: E402
from ledger.database import make_engine, read_only  # noqa: E402
from ledger.export import export_log  # noqa: E402
from gateway.store.schema import upgrade as upgrade_gateway  # noqa: E402
from gateway.store.writer import Writer  # noqa: E402
from ledger.entry import EntryData  # noqa: E402
from ledger.note import generate_key  # noqa: E402
from ledger.schema import upgrade  # noqa: E402
from ledger.store import Ledger, NewEntry  # noqa: E402
from ledger.verify import verify_export, verify_log  # noqa: E402

ORIGIN = "bench.warden/audit"


def entry(i: int, actor: str = "refund-bot") -> NewEntry:
    """A realistic decision entry (~400 bytes of canonical JSON)."""
    return NewEntry(
        "decision",
        actor,
        f"dec_{i:08d}",
        {
            "packet_id": f"01J9Z4{i:020d}",
            "status": "executed" if i % 3 else "pending_approval",
            "risk": "L1",
            "tool": "stripe.refund",
            "params": {"charge": f"ch_{i}", "amount": 1000 + i % 90000, "currency": "usd"},
            "reasons": [{"policy": "refunds", "rule": "large_refund", "effect": "escalate"}],
            "policy_digest": "sha256:" + "ab" * 32,
        },
    )


def fsync_latency_ms(directory: Path, rounds: int = 50) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, b"x" * 512)
            os.fsync(fd)
        return (time.perf_counter() - start) / rounds * 1000
    finally:
        os.close(fd)
        path.unlink()


def appends_per_second(url: str, count: int, batch: int) -> float:
    """One process appending `count` entries, `batch` per committed transaction."""
    engine = make_engine(url)
    ledger = Ledger()
    start = time.perf_counter()
    for first in range(0, count, batch):
        with engine.begin() as conn:
            ledger.append_many(conn, [entry(i) for i in range(first, min(first + batch, count))])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return count / elapsed


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[5])
from pathlib import Path
from bench.ledger import entry
from ledger.database import make_engine
from ledger.store import Ledger
url, count, batch, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
engine = make_engine(url)
ledger = Ledger()
while not go.exists():
    time.sleep(0.002)
for first in range(0, count, batch):
    with engine.begin() as conn:
        ledger.append_many(conn, [entry(i) for i in range(first, min(first + batch, count))])
print(time.time())
"""


def parallel_appends_per_second(url: str, writers: int, count: int, batch: int, workdir: Path) -> float:
    """`writers` processes appending `count` entries each; aggregate committed entries/s."""
    go = workdir / f"go-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(count), str(batch), str(go), str(ROOT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(writers)
    ]
    time.sleep(1.5)
    start = time.time()
    go.touch()
    ends = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(err)
        ends.append(float(out.strip()))
    return writers * count / (max(ends) - start)


def log_writer_appends_per_second(url: str, threads: int, count: int) -> float:
    """`threads` callers in one process, each appending `count` entries one at a time through
    the gateway's log writer (staged work: whatever is queued shares one durable commit)."""
    engine = make_engine(url)
    upgrade_gateway(engine)
    writer = Writer(engine, Ledger(), background=True)

    def caller(offset: int) -> None:
        for i in range(offset, offset + count):
            item = entry(i)
            data = EntryData.of(item.data)
            writer.run_staged(lambda batch: batch.append(item.kind, item.actor, item.subject, data))

    try:
        workers = [threading.Thread(target=caller, args=(n * count,)) for n in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
    finally:
        writer.close()
        engine.dispose()
    return threads * count / elapsed


def fresh_sqlite(workdir: Path, name: str) -> str:
    url = f"sqlite:///{workdir / name}"
    upgrade(make_engine(url))
    return url


def section(title: str) -> None:
    print(f"\n== {title}")


def append_benchmarks(workdir: Path, with_postgres: bool, postgres_size: int) -> None:
    section("durable appends")
    print(f"disk fsync latency: {fsync_latency_ms(workdir):.2f} ms (bounds one-commit-per-append rates)")
    print(f"SQLite, 1 entry per transaction:      {appends_per_second(fresh_sqlite(workdir, 'a1.db'), 400, 1):>9,.0f} appends/s")
    for batch in (10, 100, 1000):
        rate = appends_per_second(fresh_sqlite(workdir, f"a{batch}.db"), 20_000 if batch > 10 else 4000, batch)
        print(f"SQLite, {batch:>4} entries per transaction: {rate:>9,.0f} appends/s")
    rate = log_writer_appends_per_second(fresh_sqlite(workdir, "gc.db"), 16, 200)
    print(f"SQLite, log writer, 16 threads x 1:   {rate:>9,.0f} appends/s")
    if not with_postgres:
        return
    from postgres import PostgresServer

    with PostgresServer(durable=True) as server:
        for writers, batch, count in ((1, 1, 1000), (4, 1, 500), (1, 100, 20_000), (4, 100, 10_000)):
            url = server.create_database()
            upgrade(make_engine(url))
            if writers == 1:
                rate = appends_per_second(url, count, batch)
            else:
                rate = parallel_appends_per_second(url, writers, count, batch, workdir)
            label = "1 entry per transaction" if batch == 1 else f"{batch} entries per transaction"
            print(f"PostgreSQL, {writers} writer{'s' if writers > 1 else ' '}, {label + ':':<30}{rate:>9,.0f} appends/s")
        url = server.create_database()
        upgrade(make_engine(url))
        rate = log_writer_appends_per_second(url, 16, 200)
        print(f"PostgreSQL, 1 process, log writer, 16 threads x 1:   {rate:>9,.0f} appends/s")
        if postgres_size:
            postgres_big_log(server.create_database(), postgres_size)


def postgres_big_log(url: str, size: int) -> None:
    section(f"a {size:,}-entry log (PostgreSQL)")
    rate = build_log(url, size)
    print(f"bulk build via append_many (50,000 per transaction): {rate:,.0f} entries/s")
    engine = make_engine(url)
    proof_benchmarks(engine, size)
    engine.dispose()


def build_log(url: str, size: int) -> float:
    """Bulk-build through append_many, signing a checkpoint every 100,000 entries."""
    engine = make_engine(url)
    upgrade(engine)
    ledger = Ledger()
    checkpointer = Checkpointer(generate_key(ORIGIN), CheckpointPolicy(every_entries=100_000))
    start = time.perf_counter()
    chunk = 50_000
    for first in range(0, size, chunk):
        with engine.begin() as conn:
            ledger.append_many(conn, [entry(i) for i in range(first, min(first + chunk, size))])
            checkpointer.maybe_sign(conn)
        print(f"  built {min(first + chunk, size):,} entries", file=sys.stderr, end="\r")
    with engine.begin() as conn:
        checkpointer.sign_now(conn)
    elapsed = time.perf_counter() - start
    engine.dispose()
    print(file=sys.stderr)
    BUILT_KEYS[url] = checkpointer.signer.verifier_key
    return size / elapsed


BUILT_KEYS: dict[str, str] = {}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def big_log_benchmarks(workdir: Path, size: int) -> None:
    section(f"a {size:,}-entry log (SQLite)")
    url = f"sqlite:///{workdir / 'big.db'}"
    rate = build_log(url, size)
    print(f"bulk build via append_many (50,000 per transaction): {rate:,.0f} entries/s")
    key = BUILT_KEYS[url]
    engine = make_engine(url)
    out = workdir / "export"
    seconds, _ = timed(lambda: export_log(engine, out))
    mib = (out / "entries.jsonl").stat().st_size / 2**20
    print(f"export:               {size / seconds:>10,.0f} entries/s  ({seconds:.1f} s, entries.jsonl {mib:,.0f} MiB)")
    seconds, report = timed(lambda: verify_export(out, key))
    assert report.ok, report.summary()  # type: ignore[attr-defined]
    print(f"verify export:        {size / seconds:>10,.0f} entries/s  ({seconds:.1f} s)")
    ledger = Ledger()

    def verify_db() -> object:
        with engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                notes = [note for _s, note in ledger.checkpoint_notes(conn)]
                return verify_log(ledger.iter_entries(conn), notes, key)

    seconds, report = timed(verify_db)
    assert report.ok, report.summary()  # type: ignore[attr-defined]
    print(f"verify live database: {size / seconds:>10,.0f} entries/s  ({seconds:.1f} s)")
    proof_benchmarks(engine, size)
    engine.dispose()


def proof_benchmarks(engine: object, size: int, rounds: int = 1000) -> None:
    ledger = Ledger()
    rng = random.Random(7)
    with engine.connect() as conn:  # type: ignore[attr-defined]
        for _ in range(200):  # warm the page cache: we time proofs, not the first disk reads
            ledger.inclusion(conn, rng.randrange(size), size)
        inclusion, consistency, inclusion_len, consistency_len = [], [], [], []
        for _ in range(rounds):
            seq = rng.randrange(size)
            start = time.perf_counter()
            receipt = ledger.inclusion(conn, seq, size)
            inclusion.append((time.perf_counter() - start) * 1000)
            inclusion_len.append(len(receipt.proof))
            size1 = rng.randrange(1, size)
            start = time.perf_counter()
            proof = ledger.consistency(conn, size1, size)
            consistency.append((time.perf_counter() - start) * 1000)
            consistency_len.append(len(proof.proof))
    for name, times, lengths in (("inclusion", inclusion, inclusion_len), ("consistency", consistency, consistency_len)):
        print(
            f"{name + ' proof:':<19} median {statistics.median(times):.2f} ms, p99 {percentile(times, 0.99):.2f} ms; "
            f"{max(lengths)} hashes max ({max(lengths) * 32} bytes), mean {statistics.mean(lengths):.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres-size", type=int, default=0, help="also build a log this big on PostgreSQL and time proofs")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="warden-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, workdir {workdir}")
    try:
        append_benchmarks(workdir, not args.no_postgres, args.postgres_size)
        big_log_benchmarks(workdir, args.size)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
