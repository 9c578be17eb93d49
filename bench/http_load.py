"""Warden over HTTP against a bare FastAPI app, with wrk as the load generator.

    python bench/http_load.py [--duration 15] [--connections 16] [--threads 2] [--warmup 3]
                         [--backends sqlite,postgresql] [--processes 1,2,4] [--approvals 20]
                         [--json FILE] [--py-spy DIR] [--fsyncs]

For each backend (SQLite in a temporary folder; PostgreSQL started for the run by
`tests/postgres.py`, durable: fsync and synchronous commit on) the script starts, one after the
other:

  (a) bare: `bench/bare_app.py`, FastAPI under uvicorn, one POST endpoint that parses the body
      into `gateway.models.Packet` and returns a fixed JSON answer;
  (b) warden: `warden serve` (its own process, default settings apart from the database, the
      data dir and `policy_reload = false`) with one registered agent (A2, tools *) that decides,
      records (decision row + audit entry + outbox row, one commit), executes through the
      sandbox connectors (latency 0) and records the execution, per request. On PostgreSQL once
      per count in `--processes` (default 1): `warden serve --workers N`, each N on a database
      of its own. SQLite supports one gateway process, so there Warden always runs one.

and drives each from a separate process with
`wrk -t2 -c16 -d15s --latency -s bench/wrk/post.lua URL` (after a warm-up run of the same kind,
not counted). The Lua script posts small refunds (L1) and CRM notes (L0), each with a packet_id
of its own. The table shows requests/s, p50 and p99 latency, the answers outside 2xx and the
socket errors (a run with any is INVALID: its figures say nothing), and Warden's throughput as
a fraction of bare's on the same backend, and, per request completed in the measured run:

  - server CPU ms: utime + stime of the server process and its descendants (with N processes:
    the parent and every worker; reaped ones through cutime + cstime) from /proc/PID/stat, read
    just before and just after wrk, in clock ticks (os.sysconf("SC_CLK_TCK")); also as a ratio
    of Warden's to bare's. It is the steadiest figure on a shared machine. On PostgreSQL the
    database server's own CPU (the postmaster and its backends, read the same way) is shown
    apart as `db cpu`;
  - statements: `warden_db_statements_total` read from Warden's /metrics before and after (bare
    has no database: n/a). With N processes each scrape reaches one of them, so the script
    scrapes over new connections until `warden_process_info` has named every worker, and adds
    up their counts (n/a if a worker was replaced during the run). The scrapes count their own
    few reads in the difference;
  - fsyncs (with `--fsyncs`): fsync + fdatasync calls, counted by
    `strace -f -c -e trace=fsync,fdatasync -p PID` attached to the server (and, on PostgreSQL,
    to every process of the database server) for the measured run. strace stops the server at
    every system call it makes, so the other figures of a run with `--fsyncs` are slowed: take
    them from a run without it. When ptrace is not permitted the column says n/a.

With several counts in `--processes`, each Warden row also shows its throughput as a multiple
of one process's (`vs 1 proc`, when 1 is among the counts).

Approval round trips under load (`--approvals N`, default 20; 0: none): after each Warden
run's measured run, wrk drives the same load again while a separate client, `--approvals` times
in turn, submits an L2 refund as the agent ($600: the shipped refund policy sends it to an
approver; 202 `pending_approval`), starts the agent's long-poll `GET /v1/actions/{id}?wait=30`
(its request written to the socket, then 150 ms for the gateway to park it), and approves it
as an approver registered for the run (`POST /v1/approvals/{id}/approve`). The clock starts
before the approve POST and stops when the long-poll answers `executed` (when it answers
`executing`, the approval committed and the connector call under way, the agent long-polls
again, as any agent waits). Reported: median and p90, and the approve POST's own latency. A
round that goes wrong (a status other than expected, a timeout) or a non-2xx answer or socket
error of that wrk run makes the Warden run INVALID. wrk's figures of this second run are not
reported (it only makes the load), and it is stopped once the rounds are done. With several
processes the long-poll and the approval may land in different processes: the long-poll then
sees the change at its next periodic re-read of the decision.

The goals (Warden >= 50% of bare's throughput, p99 <=
25 ms at 16 connections) are reported PASS or MISS, never asserted. After each Warden run the
database is read back: decisions recorded and executions succeeded must equal the 2xx answers
(of both wrk runs, the check packets and the approved refunds).

The servers run this checkout's code (its folder is put first on their PYTHONPATH).

`--py-spy DIR` also samples the Warden process during each measured run with py-spy (when it
is installed: `pip install py-spy` into the venv; not a dependency of Warden) and writes
`DIR/<backend>-warden[-N].txt` (collapsed stacks; with N processes, of every one of them) and a
top-functions summary; sampling slows the server a little, so take the headline figures from a
run without it.

Not part of the test suite; figures depend on the machine (wrk, the server and PostgreSQL share
its cores). Exit code: 0 when every run was valid, 1 when one was not, 2 when wrk is missing.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as `python bench/X.py`, this folder comes first on sys.path, where this file
# (`http.py`) would hide the standard library's `http` (and `ledger.py` the `ledger`
# package): the folder is taken off the path before anything else is imported.
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The servers (`python -m gateway.cli serve`, bare_app.py) import this checkout's code too.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "crash"))

import httpx  # noqa: E402

from warden_process import Deployment, WardenProcess, clean_environment, free_port, prepare  # noqa: E402

LUA = ROOT / "bench" / "wrk" / "post.lua"
BARE_APP = ROOT / "bench" / "bare_app.py"
AGENT = "bench-bot"
APPROVER = "approver@bench.local"
#: $600, over the shipped refund policy's $500 line: L2, an approver must approve it.
APPROVAL_AMOUNT = 60_000
GOAL_RATIO = 0.50
GOAL_P99_MS = 25.0
GOAL_CONNECTIONS = 16


@dataclass
class Run:
    backend: str
    target: str
    processes: int = 1  # gateway processes (`warden serve --workers N`); bare: one
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    answered_before: int = 0  # 2xx answers before the measured run (check packet, warm-up)
    answered_after: int = 0  # 2xx answers after it (the approval run's load, the approved refunds)
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    recorded: dict[str, int] = field(default_factory=dict)  # warden: what the database holds
    recorded_note: str = ""
    cpu_ms_per_request: float | None = None  # the server process (and its descendants)
    db_cpu_ms_per_request: float | None = None  # PostgreSQL's processes, when the backend is PostgreSQL
    statements: dict[str, int] | None = None  # warden_db_statements_total's increase, by kind
    fsyncs: int | None = None  # with --fsyncs: fsync + fdatasync calls during the measured run
    fsync_note: str = ""  # why fsyncs is None
    approval_ms: list[float] = field(default_factory=list)  # approve POST → long-poll answers executed
    approve_post_ms: list[float] = field(default_factory=list)  # the approve POST's own latency
    approval_repolls: int = 0  # rounds whose first long-poll answered `executing`
    problems: list[str] = field(default_factory=list)

    @property
    def statements_per_request(self) -> float | None:
        if self.statements is None or not self.requests:
            return None
        return sum(self.statements.values()) / self.requests

    @property
    def fsyncs_per_request(self) -> float | None:
        return None if self.fsyncs is None or not self.requests else self.fsyncs / self.requests

    @property
    def valid(self) -> bool:
        return not self.problems


# -- wrk -------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, run: Run) -> Run:
    """Fill `run` from wrk's report: the `done()` JSON line first, the text report as a check."""
    found = re.search(r"^WRK_JSON (\{.*\})$", output, re.M)
    text_rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if found is None or text_rps is None:
        run.problems.append("wrk printed no report (see its output above)")
        return run
    report = json.loads(found[1])
    latency = report["latency_us"]
    run.rps = float(text_rps[1])
    run.requests = int(report["requests"])
    run.p50_ms, run.p90_ms = latency["p50"] / 1000, latency["p90"] / 1000
    run.p99_ms, run.max_ms = latency["p99"] / 1000, latency["max"] / 1000
    run.non2xx = int(report["non2xx"])
    run.socket_errors = {k: int(v) for k, v in report["errors"].items() if k != "status" and v}
    run.first_error = report["first_error"]
    distribution = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M))
    if "99" in distribution:  # wrk's own rounding of the same histogram; keep it if they differ
        run.p99_ms = _ms(distribution["99"])
        run.p50_ms = _ms(distribution["50"])
    wrk_non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if wrk_non2xx:
        run.non2xx = max(run.non2xx, int(wrk_non2xx[1]))
    if run.non2xx:
        run.problems.append(f"{run.non2xx} answers outside 2xx, first: {run.first_error}")
    if run.socket_errors:
        run.problems.append(f"socket errors: {run.socket_errors}")
    if run.requests == 0:
        run.problems.append("no request completed")
    return run


def wrk(url: str, *, seconds: float, connections: int, threads: int, token: str | None,
        quiet: bool = False) -> str:
    env = dict(os.environ, BENCH_TOKEN=token or "", BENCH_AGENT=AGENT)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s", "-s", str(LUA), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    if not quiet:
        print("    $ " + " ".join(command[:-1] + [url]))
        print("\n".join("    | " + line for line in done.stdout.rstrip().splitlines()))
    if done.returncode != 0:
        print(f"    wrk exited with {done.returncode}: {done.stderr.strip()}", file=sys.stderr)
    return done.stdout


# -- what the server spent: CPU, statements, fsyncs -----------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3, the state, is [0])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone
        return None
    return raw[raw.rfind(")") + 2:].split()


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(root: int) -> float:
    """CPU time of `root` and its descendants: utime + stime of each (all its threads, live and
    ended), plus cutime + cstime (the descendants that ended and were waited for)."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime: fields 14-17
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLOCK_TICKS


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def statement_counts(metrics_url: str, processes: int = 1, tries: int = 200) -> dict[int, dict[str, int]] | None:
    """warden_db_statements_total by kind, per answering process (pid, from
    `warden_process_info`), from Warden's /metrics; over new connections until `processes`
    processes have answered (None: not there, or not every process answered in `tries` scrapes)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[int, dict[str, int]] = {}
    for _ in range(tries):
        try:
            body = httpx.get(metrics_url, timeout=30).text  # a new connection each time
        except httpx.HTTPError:
            return None
        counts: dict[str, int] = {}
        pid = None
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "warden_db_statements_total":
                    counts[sample.labels.get("kind", "")] = int(sample.value)
                elif sample.name == "warden_process_info":
                    pid = int(sample.labels["pid"])
        if not counts:
            return None
        found[pid or 0] = counts
        if len(found) >= processes:
            return found
    return None


def statements_between(before: dict[int, dict[str, int]] | None,
                       after: dict[int, dict[str, int]] | None) -> dict[str, int] | None:
    """The increase by kind, summed over the processes; None unless the same ones answered both
    times (a replaced worker's count would be lost)."""
    if before is None or after is None or set(before) != set(after):
        return None
    total: Counter[str] = Counter()
    for pid, counts in after.items():
        for kind, n in counts.items():
            total[kind] += n - before[pid].get(kind, 0)
    return dict(total)


class FsyncTrace:
    """`strace -f -c -e trace=fsync,fdatasync -p PID...` for the length of a run; `stop()` gives
    the number of calls, or None with the reason in `note`."""

    def __init__(self, pids: list[int], out: Path) -> None:
        self.out = out
        self.note = ""
        self.process: subprocess.Popen[str] | None = None
        if shutil.which("strace") is None:
            self.note = "n/a (strace is not installed)"
            return
        command = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out)]
        for pid in pids:
            command += ["-p", str(pid)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attaching to every thread takes a moment; the run starts after it
        if self.process.poll() is not None:
            self.note = "n/a (strace cannot attach)"
            self.process = None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            self.note = "n/a (strace did not stop)"
            return None
        if "Operation not permitted" in err:
            self.note = "n/a (strace cannot attach)"
            return None
        calls = 0
        try:
            for line in self.out.read_text().splitlines():
                fields = line.split()
                if fields and fields[-1] in ("fsync", "fdatasync"):
                    calls += int(fields[3])  # % time, seconds, usecs/call, calls, [errors], syscall
        except (OSError, ValueError, IndexError) as exc:
            self.note = f"n/a (strace's summary did not parse: {exc})"
            return None
        return calls


# -- the targets -----------------------------------------------------------------------------


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server at {base_url} did not answer within {timeout:.0f} s")
            time.sleep(0.05)


@contextmanager
def bare_app(workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    log = open(workdir / "bare.log", "wb")
    process = subprocess.Popen([sys.executable, str(BARE_APP), "--port", str(port)], cwd=workdir,
                               env=clean_environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}/v1/actions", process.pid
    finally:
        _stop(process)
        log.close()


@contextmanager
def warden(db_url: str, workdir: Path, processes: int = 1) -> Iterator[tuple[WardenProcess, Deployment, str]]:
    """`warden serve --workers N` (N = `processes`) over a prepared database, and an approver's
    token; yields once every worker serves."""
    deployment = prepare(db_url, workdir, agent=AGENT, sandbox_latency_ms=0, policy_reload="false",
                         workers=processes)
    added = deployment.cli("users", "add", APPROVER, "--role", "approver")
    if added.returncode != 0:
        raise RuntimeError(f"could not register the approver: {added.stderr.strip()}")
    server = WardenProcess(deployment).start()
    try:
        deadline = time.monotonic() + 60
        while processes > 1 and f"all {processes} workers are serving" not in server.log_tail(1_000_000):
            if server.process is not None and server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {processes} workers did not all start:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server, deployment, added.stdout.strip()
    finally:
        if server.process is not None:
            _stop(server.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[tuple[Callable[[str], str], int | None]]:
    """A function that makes a new, empty database and returns its URL, and the PostgreSQL
    server's postmaster PID (None for SQLite)."""
    if backend == "sqlite":
        yield lambda name: f"sqlite:///{workdir / f'{name}.db'}", None
        return
    from postgres import PostgresServer  # tests/postgres.py

    server = PostgresServer(durable=True).start()
    try:
        yield server.create_database, postmaster_pid(server.data_dir)
    finally:
        server.stop()


def recorded(db_url: str, settle_seconds: float = 30.0) -> dict[str, int]:
    """Decisions by status and executions by state, once the requests wrk left in flight have
    finished (no execution pending or running), or after `settle_seconds`."""
    from sqlalchemy import select

    from gateway.store.schema import decisions, executions
    from ledger.database import make_engine, read_only

    engine = make_engine(db_url, create=False)
    deadline = time.monotonic() + settle_seconds
    try:
        while True:
            with read_only(engine.connect()) as conn:
                statuses = Counter(conn.execute(select(decisions.c.status)).scalars())
                states = Counter(conn.execute(select(executions.c.state)).scalars())
            if set(states) <= {"succeeded", "failed"} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    return {**{f"decisions_{k}": v for k, v in statuses.items()},
            **{f"executions_{k}": v for k, v in states.items()}}


def check_recorded(run: Run) -> None:
    """The database must hold an executed decision for every 2xx answer (wrk drops the requests
    in flight when it stops, so it may hold a few more), each with its succeeded execution."""
    executed = run.recorded.get("decisions_executed", 0)
    succeeded = run.recorded.get("executions_succeeded", 0)
    answered = run.answered_before + run.requests - run.non2xx + run.answered_after
    others = {k: v for k, v in run.recorded.items() if k not in ("decisions_executed", "executions_succeeded")}
    consistent = executed >= answered and succeeded == executed and not others
    run.recorded_note = (f"the database holds {executed} executed decisions and {succeeded} succeeded "
                         f"executions for {answered} 2xx answers{f' (also: {others})' if others else ''}: "
                         f"{'OK' if consistent else 'MISMATCH'}")
    if not consistent:
        run.problems.append(run.recorded_note)


def check_once(url: str, token: str | None, want_status: str | None) -> str | None:
    """One packet through the target before the load: a misconfigured run fails here, clearly."""
    body = {"packet_id": f"check-{time.time_ns()}", "agent": AGENT,
            "action": {"tool": "crm.log_note", "params": {"record_id": "rec_1", "body": "check"}},
            "evidence": {}, "proof": {"invariant_checks": []}, "context": {}}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.post(url, json=body, headers=headers, timeout=30)
    if answer.status_code // 100 != 2:
        return f"the check packet got {answer.status_code}: {answer.text[:300]}"
    if want_status and answer.json().get("status") != want_status:
        return f"the check packet was {answer.json().get('status')!r}, not {want_status!r}"
    return None


# -- approval round trips under load ---------------------------------------------------------


def long_poll(base_url: str, token: str, decision_id: str, sent: threading.Event) -> tuple[int, dict[str, object]]:
    """The agent's `GET /v1/actions/{id}?wait=30` on a connection of its own; `sent` is set once
    the request is written to the socket (an HTTP client only returns once the answer is in)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    request = (f"GET /v1/actions/{decision_id}?wait=30 HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(request)
        sent.set()
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if status == 200 else {"error": body[:300].decode(errors="replace")}


def approval_round(base_url: str, agent: httpx.Client, approver: httpx.Client, agent_token: str,
                   packet_id: str) -> tuple[float, float, bool]:
    """One L2 refund submitted, long-polled by the agent and approved: (approve POST → the
    long-poll answers `executed`, the approve POST itself, whether the agent polled again) in ms.
    Raises RuntimeError when something is not as expected."""
    charge = "ch_" + packet_id.replace("-", "_")
    packet = {"packet_id": packet_id, "agent": AGENT,
              "action": {"tool": "stripe.refund",
                         "params": {"charge": charge, "amount": APPROVAL_AMOUNT, "currency": "usd"}},
              "evidence": {"order_total": APPROVAL_AMOUNT, "reconciled": True},
              "proof": {"invariant_checks": [{"id": "refund_reconciled", "status": "PASS"}]},
              "context": {"task_id": "bench-approval"}}
    submitted = agent.post("/v1/actions", json=packet)
    if submitted.status_code != 202 or submitted.json().get("status") != "pending_approval":
        raise RuntimeError(f"the L2 refund was not sent for approval: {submitted.status_code} {submitted.text[:300]}")
    decision_id = submitted.json()["decision_id"]
    sent = threading.Event()
    polled: dict[str, object] = {}

    def wait_for_it() -> None:
        try:
            polled["answer"] = long_poll(base_url, agent_token, decision_id, sent)
            polled["at"] = time.perf_counter()
        except Exception as exc:  # reported by the round
            polled["error"] = exc
            sent.set()

    poller = threading.Thread(target=wait_for_it, daemon=True)
    poller.start()
    sent.wait(30)
    time.sleep(0.15)  # the request reaches the gateway and is parked in its wait
    if "at" in polled or "error" in polled:
        raise RuntimeError(f"the long-poll answered before the approval: {polled}")
    started = time.perf_counter()
    approved = approver.post(f"/v1/approvals/{decision_id}/approve", json={"comment": "bench"})
    answered = time.perf_counter()
    if approved.status_code != 200:
        raise RuntimeError(f"the approval got {approved.status_code}: {approved.text[:300]}")
    poller.join(60)
    if "answer" not in polled:
        raise RuntimeError(f"the long-poll did not answer: {polled.get('error', 'timeout')}")
    status, body = polled["answer"]  # type: ignore[misc]
    at = float(polled["at"])  # type: ignore[arg-type]
    repolled = False
    while status == 200 and body.get("status") == "executing":  # approved, the connector call under way
        repolled = True
        again = agent.get(f"/v1/actions/{decision_id}", params={"wait": 30})
        status, body, at = again.status_code, again.json(), time.perf_counter()
    if status != 200 or body.get("status") != "executed":
        raise RuntimeError(f"the long-poll answered {status} {body}, not executed")
    return (at - started) * 1000, (answered - started) * 1000, repolled


def approvals_under_load(run: Run, base_url: str, agent_token: str, approver_token: str,
                         args: argparse.Namespace) -> None:
    """wrk's load again, and `args.approvals` approval round trips meanwhile (into `run`)."""
    env = dict(os.environ, BENCH_TOKEN=agent_token, BENCH_AGENT=AGENT)
    bound = max(30, 5 * args.approvals)  # wrk is stopped when the rounds are done
    load = subprocess.Popen(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{bound}s", "--latency",
                             "--timeout", "10s", "-s", str(LUA), f"{base_url}/v1/actions"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    nonce = f"{time.time_ns():x}"
    try:
        time.sleep(1.0)  # the load is on
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {agent_token}"}, timeout=60) as agent, \
                httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {approver_token}"},
                             timeout=60) as approver:
            for n in range(args.approvals):
                if load.poll() is not None:
                    run.problems.append(f"wrk ended before the approval rounds did ({n} of {args.approvals})")
                    break
                try:
                    total, post, repolled = approval_round(base_url, agent, approver, agent_token, f"appr-{nonce}-{n}")
                except (RuntimeError, httpx.HTTPError, OSError) as exc:
                    run.problems.append(f"approval round {n + 1}: {exc}")
                    break
                run.approval_ms.append(total)
                run.approve_post_ms.append(post)
                run.approval_repolls += repolled
    finally:
        if load.poll() is None:
            load.send_signal(signal.SIGINT)  # wrk stops and reports
        output, _ = load.communicate(timeout=60)
    background = parse_wrk(output, Run(run.backend, "load"))
    run.answered_after += background.requests - background.non2xx + len(run.approval_ms)
    run.problems += [f"the load during the approval rounds: {problem}" for problem in background.problems]


# -- profiling -------------------------------------------------------------------------------


def py_spy() -> str | None:
    venv = Path(sys.executable).parent / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, out: Path, *, subprocesses: bool = False) -> subprocess.Popen[bytes] | None:
    tool = py_spy()
    if tool is None:
        print("    --py-spy: py-spy is not installed (pip install py-spy into the venv); not profiling")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                             "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking",
                             *(["--subprocesses"] if subprocesses else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(path: Path, top: int = 25) -> str:
    """Inclusive share of samples per function (own code and libraries), from collapsed stacks."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f
                  for f in stack.split(";")[1:]]  # first frame: the thread
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            leaf[frames[-1]] += n
    lines = [f"{total} samples; inclusive share (a function and what it calls):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["self share (the function's own code):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in leaf.most_common(top)]
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------


def measure(backend: str, target: str, url: str, token: str | None, args: argparse.Namespace,
            *, server_pid: int, db_pid: int | None = None, metrics_url: str | None = None,
            profile: bool = False, workdir: Path, processes: int = 1) -> Run:
    """Warm up, then the measured wrk run, with the server's CPU (and the database server's,
    `db_pid`), Warden's statement count (`metrics_url`) and, with --fsyncs, strace around it."""
    name = target if processes == 1 else f"{target}-{processes}"
    print(f"  {backend} / {target}{f' ({processes} processes)' if processes > 1 else ''}: warm-up {args.warmup:g} s")
    warmed = 0
    if args.warmup > 0:
        warm = parse_wrk(wrk(url, seconds=args.warmup, connections=args.connections, threads=args.threads,
                             token=token, quiet=True), Run(backend, target))
        if not warm.valid:
            print(f"    warm-up: {'; '.join(warm.problems)}")
        warmed = warm.requests - warm.non2xx
    profiler = None
    if profile and args.py_spy is not None:
        profiler = start_profile(server_pid, args.duration, args.py_spy / f"{backend}-{name}.txt",
                                 subprocesses=processes > 1)
    trace = None
    if args.fsyncs:
        traced = process_tree(server_pid) + (process_tree(db_pid) if db_pid is not None else [])
        trace = FsyncTrace(traced, workdir / f"strace-{name}.txt")
    statements_before = statement_counts(metrics_url, processes) if metrics_url else None
    db_cpu_before = cpu_seconds(db_pid) if db_pid is not None else 0.0
    cpu_before = cpu_seconds(server_pid)
    output = wrk(url, seconds=args.duration, connections=args.connections, threads=args.threads, token=token)
    cpu_after = cpu_seconds(server_pid)
    db_cpu_after = cpu_seconds(db_pid) if db_pid is not None else 0.0
    statements_after = statement_counts(metrics_url, processes) if metrics_url else None
    run = parse_wrk(output, Run(backend, target, processes))
    run.answered_before = 1 + (warmed if args.warmup > 0 else 0)
    if run.requests:
        run.cpu_ms_per_request = 1000 * (cpu_after - cpu_before) / run.requests
        if db_pid is not None:
            run.db_cpu_ms_per_request = 1000 * (db_cpu_after - db_cpu_before) / run.requests
    run.statements = statements_between(statements_before, statements_after)
    if trace is not None:
        run.fsyncs = trace.stop()
        run.fsync_note = trace.note
    if profiler is not None:
        profiler.wait(timeout=args.duration + 60)
        path = args.py_spy / f"{backend}-{name}.txt"
        if path.exists():
            summary = summarise_profile(path)
            (args.py_spy / f"{backend}-{name}-top.txt").write_text(summary + "\n")
            print("\n".join("    " + line for line in summary.splitlines()[:20]))
    return run


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    with database(backend, workdir) as (new_database, db_pid):
        with bare_app(workdir) as (url, pid):
            problem = check_once(url, None, None)
            # bare has no database: no statements, and PostgreSQL's CPU and fsyncs are not its own
            run = measure(backend, "bare", url, None, args, server_pid=pid, workdir=workdir) if problem is None \
                else Run(backend, "bare", problems=[problem])
            runs.append(run)
        for processes in args.processes if backend == "postgresql" else [1]:
            db_url = new_database(f"warden_bench_{processes}")
            with warden(db_url, workdir / f"warden-{processes}", processes) as (server, deployment, approver):
                url = f"{server.base_url}/v1/actions"
                problem = check_once(url, deployment.agent_token, "executed")
                if problem is not None:
                    runs.append(Run(backend, "warden", processes, problems=[problem]))
                    continue
                run = measure(backend, "warden", url, deployment.agent_token, args, server_pid=server.pid,
                              db_pid=db_pid, metrics_url=f"{server.base_url}/metrics", profile=True,
                              workdir=workdir, processes=processes)
                if args.approvals:
                    print(f"    {args.approvals} approval round trips under the same load")
                    approvals_under_load(run, server.base_url, deployment.agent_token, approver, args)
                run.recorded = recorded(db_url)
                check_recorded(run)
                runs.append(run)
    return runs


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    load = "%.2f %.2f %.2f" % os.getloadavg()
    return (f"{os.cpu_count()} cores ({model or platform.machine()}), load average {load}; Python "
            f"{platform.python_version()}; {wrk_version[0] if wrk_version else 'wrk'}")


def percentile(values: list[float], q: float) -> float:
    """The value at rank q (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _figure(value: float | None, width: int, spec: str) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    header = (f"{'backend':<11} {'target':<7} {'procs':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
              f" {'errors':>7} {'cpu ms/req':>10} {'cpu/bare':>8} {'db cpu':>7} {'stmts/req':>9} {'fsyncs/req':>10}"
              f"  {'vs bare':>7}  vs 1 proc")
    print(header)
    print("-" * len(header))
    bare = {r.backend: r for r in runs if r.target == "bare"}
    single = {r.backend: r for r in runs if r.target == "warden" and r.processes == 1}
    for r in runs:
        base = bare.get(r.backend)
        ratio = f"{r.rps / base.rps:6.1%}" if r.target == "warden" and base and base.rps else ""
        one = single.get(r.backend)
        scaling = (f"{r.rps / one.rps:.2f}x" if r.target == "warden" and one is not None and one.rps and r.rps
                   and len(args.processes) > 1 else "")
        errors = sum(r.socket_errors.values())
        flag = "" if r.valid else "  INVALID"
        cpu = _figure(r.cpu_ms_per_request, 10, ".3f")
        cpu_ratio = (f"{r.cpu_ms_per_request / base.cpu_ms_per_request:7.1f}x"
                     if r.target == "warden" and base and base.cpu_ms_per_request and r.cpu_ms_per_request is not None
                     else f"{'':>8}")
        db_cpu = _figure(r.db_cpu_ms_per_request, 7, ".3f")
        stmts = _figure(r.statements_per_request, 9, ".1f")
        fsyncs = _figure(r.fsyncs_per_request, 10, ".3f") if args.fsyncs else f"{'-':>10}"
        print(f"{r.backend:<11} {r.target:<7} {r.processes:>5} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
              f" {r.non2xx:>8} {errors:>7} {cpu} {cpu_ratio} {db_cpu} {stmts} {fsyncs}  {ratio:>7}  {scaling}{flag}")
    print()
    print("procs: gateway processes (`warden serve --workers N`); cpu ms/req: utime+stime of the server "
          "process and its descendants (every worker) over the measured run, per request completed; "
          "cpu/bare: Warden's over bare's on the same backend; db cpu: the PostgreSQL server's processes "
          "(n/a: SQLite is inside Warden, bare has no database); stmts/req: warden_db_statements_total, "
          "summed over the workers (bare: n/a, no database); vs 1 proc: req/s over one process's.")
    for r in runs:
        if r.statements and r.requests:
            kinds = ", ".join(f"{n / r.requests:.1f} {kind}" for kind, n in r.statements.items())
            print(f"{r.backend}/{r.target}/{r.processes}: statements per request by kind: {kinds}")
    approving = [r for r in runs if r.approval_ms]
    if approving:
        print()
        print("approval round trips under the same load: approve POST -> the agent's long-poll answers `executed`")
        print(f"{'backend':<11} {'procs':>5} {'rounds':>7} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}"
              f" {'approve POST p50':>17}  long-poll again")
        for r in approving:
            print(f"{r.backend:<11} {r.processes:>5} {len(r.approval_ms):>3}/{args.approvals:<3} "
                  f"{statistics.median(r.approval_ms):>10.1f} {percentile(r.approval_ms, 0.90):>8.1f}"
                  f" {max(r.approval_ms):>8.1f} {statistics.median(r.approve_post_ms):>14.1f} ms  "
                  f"{r.approval_repolls} (first answer `executing`)")
    if args.fsyncs:
        print("fsyncs/req: fsync + fdatasync calls (strace -f -c; on PostgreSQL in Warden and every "
              "database server process) per request. strace was attached during the measured runs and "
              "slows the servers: their req/s, latency and CPU figures are low; take those from a run "
              "without --fsyncs.")
        for r in runs:
            if r.fsyncs is None and r.fsync_note:
                print(f"{r.backend}/{r.target}: fsyncs {r.fsync_note}")
    print()
    for r in runs:
        if not r.valid:
            print(f"INVALID {r.backend}/{r.target}/{r.processes}: {'; '.join(r.problems)}")
    for r in runs:
        if r.target != "warden":
            continue
        base = bare.get(r.backend)
        if r.recorded_note:
            print(f"{r.backend}, {r.processes} process(es): {r.recorded_note}")
        who = f"{r.backend}, {r.processes} process{'es' if r.processes > 1 else ''}"
        if base is None or not base.rps or not r.valid or not base.valid:
            print(f"{who}: goals not checked (a run is missing or invalid)")
            continue
        share = r.rps / base.rps
        print(f"{who}: throughput {share:.1%} of bare (goal >= {GOAL_RATIO:.0%}): "
              f"{'PASS' if share >= GOAL_RATIO else 'MISS'}")
        at = "" if args.connections == GOAL_CONNECTIONS else f" (measured at {args.connections} connections, the goal is stated at {GOAL_CONNECTIONS})"
        print(f"{who}: p99 {r.p99_ms:.2f} ms (goal <= {GOAL_P99_MS:g} ms){at}: "
              f"{'PASS' if r.p99_ms <= GOAL_P99_MS else 'MISS'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Warden over HTTP against a bare FastAPI app (wrk).")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (default 15)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of uncounted load first (default 3; 0: none)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--processes", default="1", metavar="N,N,...",
                        help="PostgreSQL: run Warden with `--workers N` for each (default 1; SQLite: always 1)")
    parser.add_argument("--approvals", type=int, default=20,
                        help="approval round trips under load after each Warden run (default 20; 0: none)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile Warden during each run into DIR")
    parser.add_argument("--fsyncs", action="store_true",
                        help="count fsync/fdatasync calls with strace during the measured runs (slows the servers)")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - {"sqlite", "postgresql"})
    if unknown or not backends:
        parser.error(f"--backends: unknown {', '.join(unknown) or '(none given)'}; use sqlite and/or postgresql")
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--duration >= 1, --connections >= 1, --threads >= 1, --warmup >= 0")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk needs a connection per thread)")
    try:
        processes = [int(n) for n in args.processes.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--processes: expected counts like 1,2,4, got {args.processes!r}")
    if not processes or any(not 1 <= n <= 64 for n in processes):
        parser.error("--processes: counts from 1 to 64")
    if args.approvals < 0:
        parser.error("--approvals >= 0")
    if processes != [1] and "postgresql" not in backends:
        parser.error("--processes: several processes need PostgreSQL (SQLite supports one gateway process)")
    args.processes = list(dict.fromkeys(processes))
    args.backends = backends
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/http_load.py: wrk (the HTTP load generator) is not installed; on Debian/Ubuntu run "
              "`apt-get install -y wrk`, elsewhere see https://github.com/wg/wrk", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    print(f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
          f"warm-up {args.warmup:g} s, backends {', '.join(args.backends)}, Warden processes on PostgreSQL: "
          f"{', '.join(map(str, args.processes))}, approval round trips: {args.approvals}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="warden-bench-http-") as tmp:
        for backend in args.backends:
            workdir = Path(tmp) / backend
            workdir.mkdir()
            try:
                runs += run_backend(backend, args, workdir)
            except Exception as exc:  # a backend that cannot start is reported, the others still run
                print(f"  {backend}: could not run: {exc}", file=sys.stderr)
                runs.append(Run(backend, "warden", problems=[f"could not run: {exc}"]))
    report(runs, args)
    if args.json:
        rows = [{**asdict(r), "statements_per_request": r.statements_per_request,
                 "fsyncs_per_request": r.fsyncs_per_request,
                 "approval_median_ms": statistics.median(r.approval_ms) if r.approval_ms else None,
                 "approval_p90_ms": percentile(r.approval_ms, 0.90) if r.approval_ms else None} for r in runs]
        args.json.write_text(json.dumps({"machine": machine(), "runs": rows}, indent=2) + "\n")
    return 0 if all(r.valid for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
