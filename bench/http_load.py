"""Warden over HTTP against a bare FastAPI app, with wrk as the load generator.

    python bench/http_load.py [--duration 15] [--connections 16] [--threads 2] [--warmup 3]
                         [--backends sqlite,postgresql] [--json FILE] [--py-spy DIR]

For each backend (SQLite in a temporary folder; PostgreSQL started for the run by
`tests/postgres.py`, durable: fsync and synchronous commit on) the script starts, one after the
other:

  (a) bare: `bench/bare_app.py`, FastAPI under uvicorn, one POST endpoint that parses the body
      into `gateway.models.Packet` and returns a fixed JSON answer;
  (b) warden: `warden serve` (its own process, default settings apart from the database, the
      data dir and `policy_reload = false`) with one registered agent (A2, tools *) that decides,
      records (decision row + audit entry + outbox row, one commit), executes through the
      sandbox connectors (latency 0) and records the execution, per request.

and drives each from a separate process with
`wrk -t2 -c16 -d15s --latency -s bench/wrk/post.lua URL` (after a warm-up run of the same kind,
not counted). The Lua script posts small refunds (L1) and CRM notes (L0), each with a packet_id
of its own. The table shows requests/s, p50 and p99 latency, the answers outside 2xx and the
socket errors (a run with any is INVALID: its figures say nothing), and Warden's throughput as
a fraction of bare's on the same backend. The goals (Warden >= 50% of bare's throughput, p99 <=
25 ms at 16 connections) are reported PASS or MISS, never asserted. After each Warden run the
database is read back: decisions recorded and executions succeeded must equal the 2xx answers.

`--py-spy DIR` also samples the Warden process during each measured run with py-spy (when it
is installed: `pip install py-spy` into the venv; not a dependency of Warden) and writes
`DIR/<backend>-warden.txt` (collapsed stacks) and a top-functions summary; sampling slows the
server a little, so take the headline figures from a run without it.

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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "crash"))

import httpx  # noqa: E402

from warden_process import Deployment, WardenProcess, clean_environment, free_port, prepare  # noqa: E402

LUA = ROOT / "bench" / "wrk" / "post.lua"
BARE_APP = ROOT / "bench" / "bare_app.py"
AGENT = "bench-bot"
GOAL_RATIO = 0.50
GOAL_P99_MS = 25.0
GOAL_CONNECTIONS = 16


@dataclass
class Run:
    backend: str
    target: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    answered_before: int = 0  # 2xx answers before the measured run (check packet, warm-up)
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    recorded: dict[str, int] = field(default_factory=dict)  # warden: what the database holds
    recorded_note: str = ""
    problems: list[str] = field(default_factory=list)

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
def bare_app(workdir: Path) -> Iterator[str]:
    port = free_port()
    log = open(workdir / "bare.log", "wb")
    process = subprocess.Popen([sys.executable, str(BARE_APP), "--port", str(port)], cwd=workdir,
                               env=clean_environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}/v1/actions"
    finally:
        _stop(process)
        log.close()


@contextmanager
def warden(db_url: str, workdir: Path) -> Iterator[tuple[WardenProcess, Deployment]]:
    deployment = prepare(db_url, workdir, agent=AGENT, sandbox_latency_ms=0, policy_reload="false")
    server = WardenProcess(deployment).start()
    try:
        yield server, deployment
    finally:
        if server.process is not None:
            _stop(server.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'warden.db'}"
        return
    from postgres import PostgresServer  # tests/postgres.py

    server = PostgresServer(durable=True).start()
    try:
        yield server.create_database("warden_bench")
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
    answered = run.answered_before + run.requests - run.non2xx
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


# -- profiling -------------------------------------------------------------------------------


def py_spy() -> str | None:
    venv = Path(sys.executable).parent / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    tool = py_spy()
    if tool is None:
        print("    --py-spy: py-spy is not installed (pip install py-spy into the venv); not profiling")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                             "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
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
            *, profile_pid: int | None = None) -> Run:
    print(f"  {backend} / {target}: warm-up {args.warmup:g} s")
    warmed = 0
    if args.warmup > 0:
        warm = parse_wrk(wrk(url, seconds=args.warmup, connections=args.connections, threads=args.threads,
                             token=token, quiet=True), Run(backend, target))
        if not warm.valid:
            print(f"    warm-up: {'; '.join(warm.problems)}")
        warmed = warm.requests - warm.non2xx
    profiler = None
    if profile_pid is not None and args.py_spy is not None:
        profiler = start_profile(profile_pid, args.duration, args.py_spy / f"{backend}-{target}.txt")
    run = parse_wrk(wrk(url, seconds=args.duration, connections=args.connections, threads=args.threads,
                        token=token), Run(backend, target))
    run.answered_before = 1 + (warmed if args.warmup > 0 else 0)
    if profiler is not None:
        profiler.wait(timeout=args.duration + 60)
        path = args.py_spy / f"{backend}-{target}.txt"
        if path.exists():
            summary = summarise_profile(path)
            (args.py_spy / f"{backend}-{target}-top.txt").write_text(summary + "\n")
            print("\n".join("    " + line for line in summary.splitlines()[:20]))
    return run


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    with database(backend, workdir) as db_url:
        with bare_app(workdir) as url:
            problem = check_once(url, None, None)
            run = measure(backend, "bare", url, None, args) if problem is None else Run(backend, "bare", problems=[problem])
            runs.append(run)
        with warden(db_url, workdir / "warden") as (server, deployment):
            url = f"{server.base_url}/v1/actions"
            problem = check_once(url, deployment.agent_token, "executed")
            if problem is not None:
                runs.append(Run(backend, "warden", problems=[problem]))
                return runs
            run = measure(backend, "warden", url, deployment.agent_token, args, profile_pid=server.pid)
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


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    header = f"{'backend':<11} {'target':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>7}  vs bare"
    print(header)
    print("-" * len(header))
    bare = {r.backend: r for r in runs if r.target == "bare"}
    for r in runs:
        base = bare.get(r.backend)
        ratio = f"{r.rps / base.rps:6.1%}" if r.target == "warden" and base and base.rps else ""
        errors = sum(r.socket_errors.values())
        flag = "" if r.valid else "  INVALID"
        print(f"{r.backend:<11} {r.target:<7} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.non2xx:>8} {errors:>7}  {ratio}{flag}")
    print()
    for r in runs:
        if not r.valid:
            print(f"INVALID {r.backend}/{r.target}: {'; '.join(r.problems)}")
    for r in runs:
        if r.target != "warden":
            continue
        base = bare.get(r.backend)
        if r.recorded_note:
            print(f"{r.backend}: {r.recorded_note}")
        if base is None or not base.rps or not r.valid or not base.valid:
            print(f"{r.backend}: goals not checked (a run is missing or invalid)")
            continue
        ratio = r.rps / base.rps
        print(f"{r.backend}: throughput {ratio:.1%} of bare (goal >= {GOAL_RATIO:.0%}): "
              f"{'PASS' if ratio >= GOAL_RATIO else 'MISS'}")
        at = "" if args.connections == GOAL_CONNECTIONS else f" (measured at {args.connections} connections, the goal is stated at {GOAL_CONNECTIONS})"
        print(f"{r.backend}: p99 {r.p99_ms:.2f} ms (goal <= {GOAL_P99_MS:g} ms){at}: "
              f"{'PASS' if r.p99_ms <= GOAL_P99_MS else 'MISS'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Warden over HTTP against a bare FastAPI app (wrk).")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (default 15)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of uncounted load first (default 3; 0: none)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile Warden during each run into DIR")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - {"sqlite", "postgresql"})
    if unknown or not backends:
        parser.error(f"--backends: unknown {', '.join(unknown) or '(none given)'}; use sqlite and/or postgresql")
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--duration >= 1, --connections >= 1, --threads >= 1, --warmup >= 0")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk needs a connection per thread)")
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
          f"warm-up {args.warmup:g} s, backends {', '.join(args.backends)}")
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
        args.json.write_text(json.dumps({"machine": machine(), "runs": [asdict(r) for r in runs]}, indent=2) + "\n")
    return 0 if all(r.valid for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
