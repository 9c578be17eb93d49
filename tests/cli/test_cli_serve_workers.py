"""`warden serve --workers N`: N gateway processes on one listening socket (PostgreSQL only),
supervised by their parent; every accepted connection has TCP_NODELAY."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli_support import EXIT_OK, EXIT_USAGE, Serving, free_port, warden
from gateway.cli.listening import listen

SMALL_REFUND = {
    "agent": "demo-agent",
    "action": {"tool": "stripe.refund", "params": {"charge": "ch_3PqX", "amount": 2500, "currency": "usd"}},
    "evidence": {"order_total": 2500, "reconciled": True},
    "proof": {"invariant_checks": [{"id": "refund_reconciled", "status": "PASS", "value": True}]},
}  # fmt: skip


# -- TCP_NODELAY ---------------------------------------------------------------------------------


def test_connections_accepted_on_the_listening_socket_have_tcp_nodelay() -> None:
    """uvicorn serves `listen()`'s socket through asyncio's `create_server(sock=...)`, as every
    worker does; each accepted connection must have TCP_NODELAY, or every keep-alive response
    waits ~40 ms for the client's delayed ACK (Nagle)."""
    sock = listen("127.0.0.1", 0)
    assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted = transport.get_extra_info("socket")
                seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock, backlog=16)
        _reader, writer = await asyncio.open_connection(*sock.getsockname())
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    # On a thread of its own: a browser test in this process may hold an event loop on this one.
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(asyncio.run(accepted_nodelay())))
    try:
        runner.start()
        runner.join(timeout=60)
        assert result and result[0] != 0
    finally:
        sock.close()


def _server_side_nodelay(pid: int, port: int, client_port: int) -> int | None:
    """TCP_NODELAY of the connection 127.0.0.1:port ← client_port as process `pid` holds it: its
    socket inode from /proc/net/tcp, the descriptor in /proc/PID/fd, a duplicate through
    pidfd_getfd(2), then getsockopt. None where pidfd_getfd is not permitted (it needs the
    right to ptrace `pid`); the in-process test of `listen()` checks TCP_NODELAY everywhere."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port and state == "01":
            inode = fields[9]
    assert inode is not None, f"no connection {port} <- {client_port}"
    fds = [int(fd.name) for fd in Path(f"/proc/{pid}/fd").iterdir()
           if os.readlink(fd) == f"socket:[{inode}]"]  # fmt: skip
    assert fds, f"process {pid} does not hold the connection from port {client_port}"
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        duplicate = libc.syscall(438, pidfd, fds[0], 0)  # SYS_pidfd_getfd, the same on every arch
        if duplicate < 0:
            code = ctypes.get_errno()
            if code in (errno.EPERM, errno.ENOSYS):
                return None
            raise OSError(code, os.strerror(code))
    finally:
        os.close(pidfd)
    with socket.socket(fileno=duplicate) as held:
        return held.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


# -- SQLite: one process -------------------------------------------------------------------------


def test_more_than_one_worker_needs_postgresql(tmp_path: Path) -> None:
    done = warden("serve", "--workers", "2", "--demo", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (EXIT_USAGE, "")
    assert done.stderr == ("warden serve: SQLite supports one gateway process; --workers 2 needs a PostgreSQL "
                           "database_url\n")
    (tmp_path / "warden.toml").write_text("workers = 3\n")
    done = warden("serve", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert done.stderr == ("warden serve: SQLite supports one gateway process; workers = 3 (warden.toml:1) needs a "
                           "PostgreSQL database_url\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warden.toml"]  # nothing opened or created
    done = warden("serve", "--workers", "0", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (EXIT_USAGE, "warden serve: --workers 0: expected 1 to 64 processes\n")


def test_one_process_answers_keep_alive_requests_with_tcp_nodelay(tmp_path: Path) -> None:
    port = free_port()
    with Serving("--port", str(port), cwd=tmp_path, port=port,
                 env={"WARDEN_POLICY_RELOAD": "false", "WARDEN_LOG_LEVEL": "warning"}) as server:  # fmt: skip
        assert server.process is not None
        with socket.create_connection(("127.0.0.1", port)) as client:
            answer = _get(client, "/readyz")
            assert answer["process"] == {"worker": 1, "workers": 1, "pid": server.process.pid}
            nodelay = _server_side_nodelay(server.process.pid, port, client.getsockname()[1])
            if nodelay is None:
                pytest.skip("pidfd_getfd is not permitted here; the in-process test of listen() checks TCP_NODELAY")
            assert nodelay != 0


# -- PostgreSQL: N processes -----------------------------------------------------------------------


def _get(client: socket.socket, path: str) -> dict[str, object]:
    """One keep-alive GET over an open connection; its JSON body."""
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += client.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    answer: dict[str, object] = json.loads(body)
    return answer


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_workers_share_one_socket_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    port = free_port()
    env = {"WARDEN_DATABASE_URL": postgres_url, "WARDEN_POLICY_RELOAD": "false", "WARDEN_LOG_LEVEL": "info"}
    with Serving("--workers", "2", "--demo", "--port", str(port), cwd=tmp_path, port=port, env=env,
                 stop_signal=signal.SIGTERM) as server:  # fmt: skip
        assert server.process is not None
        banner = server.banner()
        assert "sandbox connectors, 2 processes)." in banner
        token = re.search(r"export WARDEN_AGENT_TOKEN=(\S+)", banner)[1]  # type: ignore[index]
        _eventually(lambda: "all 2 workers are serving" in server.log.read_text(), "the workers did not start")
        workers = _children(server.process.pid)
        assert len(workers) == 2

        # New connections go to whichever worker accepts first: open them one by one, keeping
        # them, until each worker holds one; each has TCP_NODELAY in the worker that holds it.
        clients: list[socket.socket] = []
        served: dict[int, int] = {}  # client port -> the pid serving it
        try:
            while set(served.values()) != workers:
                assert len(clients) < 200, f"one process took every connection: {served}"
                client = socket.create_connection(("127.0.0.1", port))
                clients.append(client)
                process = _get(client, "/readyz")["process"]
                assert isinstance(process, dict) and process["workers"] == 2 and process["pid"] in workers
                assert _get(client, "/readyz")["process"] == process  # keep-alive: the same process
                served[client.getsockname()[1]] = int(process["pid"])
            for client_port, pid in served.items():
                assert _server_side_nodelay(pid, port, client_port) in (None, 1), f"no TCP_NODELAY in {pid}"
        finally:
            for client in clients:
                client.close()

        # Submits from several connections at once: every one decided, recorded and executed.
        def submit(n: int) -> tuple[int, str, int]:
            with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as agent:
                answers = [agent.post("/v1/actions", json={**SMALL_REFUND, "packet_id": f"w-{n}-{i}"})
                           for i in range(5)]
                pid = agent.get("/readyz").json()["process"]["pid"]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            return len({a.json()["decision_id"] for a in answers}), answers[-1].json()["status"], pid

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(submit, range(8)))
        assert [(count, status) for count, status, _pid in results] == [(5, "executed")] * 8

        # A worker that dies is replaced; the gateway keeps answering.
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        _eventually(lambda: len(_children(server.process.pid) - {killed}) == 2, "no worker replaced the dead one")
        _eventually(lambda: f"(pid {killed}) was killed by signal SIGKILL; starting another" in server.log.read_text(),
                    "the restart was not logged")
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as agent:
            after = agent.post("/v1/actions", json={**SMALL_REFUND, "packet_id": "after-restart"})
        assert (after.status_code, after.json()["status"]) == (200, "executed")
        workers = _children(server.process.pid)

    # SIGTERM: every process stops cleanly, and the log is one gap-free sequence.
    assert server.returncode == EXIT_OK, server.log.read_text()[-3000:]
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    log = server.log.read_text()
    assert "Traceback" not in log and "every worker has stopped" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {line["worker"] for line in lines if line.get("logger") == "uvicorn.error"} == {1, 2}
    verified = warden("audit", "verify", "--db", "--key", "warden-data/ledger.pub", cwd=tmp_path,
                      env={"WARDEN_DATABASE_URL": postgres_url})  # fmt: skip
    assert verified.returncode == EXIT_OK, verified.stdout + verified.stderr


# -- the supervisor ----------------------------------------------------------------------------

SUPERVISED = """
import json, os, signal, sys, time
from gateway.cli import supervisor
from gateway.logs import configure_logging

supervisor.FIRST_PAUSE = 0.05
configure_logging("info")
mode, state = sys.argv[1], sys.argv[2]

def serve(number, ready):
    with open(state, "a") as out:
        out.write(json.dumps({"worker": number, "pid": os.getpid()}) + "\\n")
    if mode == "fails" and number == 2:
        return 7  # never ready
    ready()
    if mode == "dies-once" and number == 1 and sum('"worker": 1,' in line for line in open(state)) == 1:
        os._exit(5)  # serving, then gone: the first worker 1 only, however late worker 2 starts
    def hangup(*_):
        with open(state, "a") as out:
            out.write(json.dumps({"hup": number, "pid": os.getpid()}) + "\\n")

    signal.signal(signal.SIGHUP, hangup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.05)

try:
    supervisor.Supervisor(2, serve, forward_sighup=mode != "no-sighup").run()
except supervisor.SupervisorFailed as failed:
    print(json.dumps({"failed": str(failed), "code": failed.code}))
else:
    print(json.dumps({"stopped": True}))
"""


def _supervise(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SUPERVISED, mode, str(tmp_path / "started.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _lines(tmp_path: Path) -> list[dict[str, int]]:
    path = tmp_path / "started.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _started(tmp_path: Path) -> list[dict[str, int]]:
    return [line for line in _lines(tmp_path) if "worker" in line]


def test_a_worker_that_keeps_failing_at_start_up_stops_the_gateway(tmp_path: Path) -> None:
    supervised = _supervise(tmp_path, "fails")
    out, err = supervised.communicate(timeout=60)
    assert json.loads(out) == {"code": 7, "failed": "worker 2 exited with code 7 before it was serving, 3 times "
                                                    "in a row; stopping (its error is in the log above)"}
    assert [s["worker"] for s in _started(tmp_path)].count(2) == 3
    assert err.count("before it was serving; starting it again in") == 2
    assert all(not Path(f"/proc/{s['pid']}").exists() or _zombie(s["pid"]) for s in _started(tmp_path))


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_a_worker_that_dies_is_restarted_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    supervised = _supervise(tmp_path, "dies-once")
    _eventually(lambda: len(_started(tmp_path)) == 3, "the dead worker was not restarted")
    started = _started(tmp_path)
    ones = [s["pid"] for s in started if s["worker"] == 1]
    assert [s["worker"] for s in started].count(2) == 1 and len(ones) == 2 and ones[0] != ones[1]
    supervised.send_signal(signal.SIGTERM)
    out, err = supervised.communicate(timeout=60)
    assert json.loads(out) == {"stopped": True}
    assert "exited with code 5; starting another" in err and "every worker has stopped" in err
    assert all(not Path(f"/proc/{s['pid']}").exists() for s in _started(tmp_path))


@pytest.mark.parametrize("mode", ["serve", "no-sighup"])
def test_sighup_goes_to_every_worker_unless_they_do_not_reload(tmp_path: Path, mode: str) -> None:
    supervised = _supervise(tmp_path, mode)
    _eventually(lambda: len(_started(tmp_path)) == 2, "the workers did not start")
    time.sleep(0.5)  # both have installed their SIGHUP handler
    supervised.send_signal(signal.SIGHUP)
    if mode == "serve":
        _eventually(lambda: sorted(line["hup"] for line in _lines(tmp_path) if "hup" in line) == [1, 2],
                    "SIGHUP did not reach both workers")
    else:
        time.sleep(1.0)
    supervised.send_signal(signal.SIGTERM)
    _out, err = supervised.communicate(timeout=60)
    assert len(_started(tmp_path)) == 2  # nobody died of it or was restarted
    assert ("SIGHUP ignored" in err) == (mode == "no-sighup")
    if mode == "no-sighup":
        assert not any("hup" in line for line in _lines(tmp_path))


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    supervised = _supervise(tmp_path, "serve")
    _eventually(lambda: len(_started(tmp_path)) == 2, "the workers did not start")
    supervised.kill()
    supervised.communicate(timeout=30)
    pids = [s["pid"] for s in _started(tmp_path)]
    _eventually(lambda: all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in pids),
                "a worker outlived its parent")
