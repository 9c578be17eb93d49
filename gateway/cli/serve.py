"""`warden serve`: run the gateway with uvicorn, in one process or in several.

    warden serve [--config warden.toml] [--host H] [--port P] [--workers N] [--demo]

The listening socket is bound first (`gateway.cli.listening`): a port that is taken is one line
(`warden serve: port 8080 on 127.0.0.1 is in use; choose another with --port`, exit 2) before
anything is opened, created or printed. Then the gateway is built from the settings (database,
signing key, policies), the demo banner printed, and uvicorn serves on that socket.

`--workers N` (setting `workers`) runs N gateway processes on that one socket; the kernel hands
each new connection to one of them. SQLite supports one gateway process, so with SQLite it is
refused (one line, exit 2). On PostgreSQL:

1. a first child process does the start-up work once: the schema upgrade, the signing key (made
   on a first start), the `policy_activated` entry, the demo identities and banner, and, when
   `outbox_recover_on_start` is set (this gateway is the only one on its database), the
   re-driving of executions a previous run left in flight. It exits; a failure here is the same
   line and exit code as for one process;
2. the parent forks the N workers (`gateway.cli.supervisor`). Each builds its own `Runtime`
   with `outbox_recover_on_start` off: a worker that starts while others run, the first time or
   after a crash, must not take over executions a live process is running; what a dead worker
   held goes to the others when its lease expires. Each worker's log lines carry `worker`, and
   `/readyz` and `warden_process_info` name the process that answered;
3. the parent supervises: SIGTERM or SIGINT stops every worker gracefully, SIGHUP reloads the
   policies in each, a worker that dies is restarted, and one that keeps failing at start-up
   stops the gateway with the reason.

Every process that serves freezes what start-up allocated out of the garbage collector's reach
and collects less often (`tune_gc`).

`--demo` makes a first start useful on its own: it registers a demo agent (`demo-agent`, A2, all
tools, owned by ops@demo.local), a founder (founder@demo.local), an approver
(approver@demo.local) and an auditor (auditor@demo.local), writes their tokens to
`<data_dir>/demo-tokens.env` (mode 0600) and prints them with the address to send requests to
and commands to copy. Later starts print the same tokens again. Each start also prints a fresh
one-time console sign-in link per person (an invite: it sets their password).
"""

from __future__ import annotations

import contextlib

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli import guard
from gateway.cli.exits import EXIT_OK, EXIT_USAGE
from gateway.cli.guard import CommandError
from gateway.cli.listening import BACKLOG, SPEAKER, listen
from gateway.cli.options import add_config_option, loaded, settings

DEMO_AGENT = ("demo-agent", "A2", ("*",), "ops@demo.local")
DEMO_USERS = (("founder@demo.local", "founder"), ("approver@demo.local", "approver"),
              ("auditor@demo.local", "auditor"))
DEMO_FILE = "demo-tokens.env"
#: The collector's thresholds once a serving process has started: see `tune_gc`.
GC_THRESHOLDS = (10_000, 10, 10)

log = logging.getLogger("warden.serve")


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway (HTTP API) with uvicorn")
    add_config_option(serve)
    serve.add_argument("--host", default=None, help="listen address (default: setting `host`)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: setting `port`)")
    serve.add_argument("--workers", type=int, default=None, metavar="N",
                       help="gateway processes on the one listening socket (default: setting `workers`; "
                            "more than 1 needs PostgreSQL)")
    serve.add_argument("--demo", action="store_true",
                       help="register a demo agent, founder, approver and auditor and print their tokens")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    configured = settings(args)
    host = args.host or configured.host
    port = args.port if args.port is not None else configured.port
    if not 0 < port < 65536:
        raise CommandError(f"port {port} is not a TCP port", prefix=SPEAKER)
    workers = _workers(args, configured)
    listening = listen(host, port)
    try:
        if workers > 1:
            return _serve_workers(args, configured, listening, host, port, workers)
        app, runtime = _build(configured)
        if args.demo:
            _demo(runtime, host, port, workers)
        return _run(app, runtime, listening, host, port)
    finally:
        listening.close()


def _workers(args: argparse.Namespace, configured: Any) -> int:
    """How many gateway processes: `--workers`, else the setting; more than one only on PostgreSQL."""
    workers: int
    if args.workers is not None:
        workers, given = args.workers, f"--workers {args.workers}"
        if not 1 <= workers <= 64:
            raise CommandError(f"{given}: expected 1 to 64 processes", prefix=SPEAKER)
    else:
        workers = configured.workers
        given = f"workers = {workers} ({loaded(args).sources.get('workers', 'settings')})"
    if workers > 1 and configured.database_url.startswith("sqlite"):
        raise CommandError(f"SQLite supports one gateway process; {given} needs a PostgreSQL database_url",
                           prefix=SPEAKER)
    return workers


def _build(configured: Any, *, logs: bool = True) -> tuple[Any, Any]:
    from gateway.http.app import create_app
    from gateway.logs import configure_logging
    from gateway.runtime.runtime import Runtime

    if logs:
        configure_logging(configured.log_level, json=configured.log_json)
    runtime = Runtime(configured)
    return create_app(runtime), runtime


class _Stopped(SystemExit):
    """SIGTERM: stop serving, a clean exit (uvicorn raises the signal again once it has stopped)."""

    def __init__(self) -> None:
        super().__init__(EXIT_OK)


def _stop_on_sigterm() -> None:
    def stop(_signum: int, _frame: object) -> None:
        raise _Stopped

    signal.signal(signal.SIGTERM, stop)


def tune_gc() -> None:
    """Once start-up is done, before serving: what start-up allocated (the modules, the compiled
    policies, SQLAlchemy's and pydantic's structures: about 160,000 tracked objects) is moved out
    of the collector's reach with `gc.freeze()`, and the young generation's threshold is raised
    from 700 to 10,000 objects.

    Measured with `bench/http_load.py` on PostgreSQL (16 connections, ~100 requests/s, collections
    timed with `gc.callbacks`; shared 2-core machine): with the defaults a request's objects in
    flight crossed the threshold of 700 about 13 times a second (0.3 ms each), every collection
    promoted them, and so about every 15 s a full collection walked the whole heap for 69 to 229
    ms, stalling every request in flight. Frozen, a full collection took 3 to 4 ms. At 10,000 the
    requests in flight no longer reach the threshold (2 young collections in 44 s, 2 to 6 ms
    each, none older), so nothing they hold is promoted; at 50,000 none ran at all. Server CPU per
    request fell by 5 to 15% in each of 4 paired runs. Generations 1 and 2 keep their thresholds
    (10, 10): cyclic garbage is still collected, and a full collection now only walks what
    serving has kept.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run(app: Any, runtime: Any, listening: socket.socket, host: str, port: int,
         ready: Callable[[], None] | None = None) -> int:
    """Serve `app` on `listening` until SIGTERM or SIGINT (then exit 0); `ready()` once serving."""
    import uvicorn

    from gateway.runtime.reload import install_sighup

    if runtime.watcher is not None:
        install_sighup(runtime.watcher)  # `kill -HUP` reloads the policies at once
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=5, backlog=BACKLOG)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and ready is not None:
                ready()

    server = Server(config)
    _stop_on_sigterm()
    tune_gc()
    with contextlib.suppress(KeyboardInterrupt, _Stopped):  # the ways a gateway is asked to stop
        server.run(sockets=[listening])
    if not server.started:
        raise CommandError("the gateway stopped before it had started; see the log above", prefix=SPEAKER)
    return EXIT_OK


def _serve_workers(args: argparse.Namespace, configured: Any, listening: socket.socket, host: str, port: int,
                   workers: int) -> int:
    """N processes on `listening` (PostgreSQL): the start-up work once, then the supervisor."""
    from gateway.cli.supervisor import Supervisor, SupervisorFailed
    from gateway.logs import configure_logging

    configure_logging(configured.log_level, json=configured.log_json)
    import gateway.http.app  # noqa: F401 - loaded once here; the forks share it
    import uvicorn  # noqa: F401

    prepared = _in_child(args, lambda: _prepare(args, configured, host, port, workers))
    if prepared != EXIT_OK:
        return prepared  # the child said why
    gc.freeze()  # what the parent loaded stays out of the workers' collections: its pages stay shared
    worker_settings = configured.model_copy(update={"outbox_recover_on_start": False})

    def serve(number: int, ready: Callable[[], None]) -> int:
        _stop_on_sigterm()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the policy watcher takes it (`_run`)
        return guard.run(lambda _args: _worker(worker_settings, listening, host, port, number, workers, ready), args)

    try:
        Supervisor(workers, serve, forward_sighup=configured.policy_reload).run()
    except SupervisorFailed as failed:
        raise CommandError(str(failed), failed.code if failed.code > 0 else EXIT_USAGE, prefix=SPEAKER) from None
    return EXIT_OK


def _in_child(args: argparse.Namespace, work: Callable[[], int]) -> int:
    """Run `work` in a forked child (the parent keeps no database connection and no thread);
    its exit code. Its failures are reported by the child, as any command's are."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = guard.run(lambda _args: work(), args)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        raise CommandError(f"the start-up was killed by signal {signal.Signals(-code).name}", prefix=SPEAKER)
    return code


def _prepare(args: argparse.Namespace, configured: Any, host: str, port: int, workers: int) -> int:
    """The start-up work of a gateway of several processes, done once before they start."""
    from gateway.runtime.runtime import Runtime

    runtime = Runtime(configured)  # the schema, the signing key, the policy_activated entry
    try:
        if args.demo:
            _demo(runtime, host, port, workers)
        if configured.outbox_recover_on_start:  # no worker runs yet: nothing live is taken over
            recovered = runtime.outbox.recover_in_flight()
            if recovered:
                log.info("re-driving %d execution(s) left running by a previous process", recovered)
    finally:
        runtime.stop()
    return EXIT_OK


def _worker(configured: Any, listening: socket.socket, host: str, port: int, number: int, workers: int,
            ready: Callable[[], None]) -> int:
    """One of the N processes: its own Runtime on the shared socket."""
    from gateway.runtime.process import set_worker

    set_worker(number, workers)
    for handler in logging.getLogger().handlers:  # as the parent configured them, each line naming its worker
        handler.addFilter(_WorkerField(number))
    app, runtime = _build(configured, logs=False)
    return _run(app, runtime, listening, host, port, ready)


class _WorkerField(logging.Filter):
    """Adds `worker` (the process's number) to every log record of a worker process."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("worker", self.number)
        return True


def _demo(runtime: Any, host: str, port: int, workers: int) -> None:
    tokens = demo_identities(runtime)
    links = demo_sign_in_links(runtime, host, port) if runtime.settings.console else {}
    _print_demo(tokens, host, port, runtime, links, workers)


def demo_identities(runtime: Any) -> dict[str, str]:
    """Register the demo identities once; returns name → token (from the tokens file later)."""
    from gateway.store import identities
    path = Path(runtime.settings.data_dir) / DEMO_FILE
    if path.exists():
        return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)
    tokens: dict[str, str] = {}

    def work(conn: Any) -> None:
        now = time.time()
        name, autonomy, tools, owner = DEMO_AGENT
        _agent, tokens["WARDEN_AGENT_TOKEN"] = identities.add_agent(
            conn, runtime.ledger, name, autonomy, tools, owner, now, "demo")
        for email, role in DEMO_USERS:
            _user, tokens[f"WARDEN_{role.upper()}_TOKEN"] = identities.add_user(
                conn, runtime.ledger, email, role, now, "demo")

    runtime.writer.run(work)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in tokens.items())
    return tokens


def demo_sign_in_links(runtime: Any, host: str, port: int) -> dict[str, str]:
    """A fresh one-time console link per demo person (each start: a used link does not work twice)."""
    from gateway.cli.users import console_address
    from gateway.store.identities import create_invite

    base = console_address(runtime.settings.public_url, host, port)

    def work(conn: Any) -> dict[str, str]:
        now = time.time()
        return {email: f"{base}/invite/{create_invite(conn, runtime.ledger, email, now, 'demo', runtime.settings.invite_ttl_seconds)}"
                for email, _role in DEMO_USERS}

    return dict(runtime.writer.run(work))


def _print_demo(tokens: dict[str, str], host: str, port: int, runtime: Any, links: dict[str, str],
                workers: int) -> None:
    from gateway.cli.users import console_address
    from dsl.shipped import builtin_policy_dir

    base = f"http://{host}:{port}"
    path = Path(runtime.settings.data_dir) / DEMO_FILE
    database = runtime.settings.masked()["database_url"]  # a password is never printed
    agent = '-H "Authorization: Bearer $WARDEN_AGENT_TOKEN"'
    approver = '-H "Authorization: Bearer $WARDEN_APPROVER_TOKEN"'
    examples = builtin_policy_dir() / "examples"
    if examples.is_relative_to(Path.cwd()):  # started in a source checkout: policies/examples/...
        examples = examples.relative_to(Path.cwd())
    lines = [
        "",
        f"Warden is starting on {base} (database {database}, sandbox connectors"
        f"{f', {workers} processes' if workers > 1 else ''}).",
        f"Demo identities (also in {path}, mode 0600; `source` it in your shell):",
        *(f"  export {k}={v}" for k, v in tokens.items()),
        "",
        f"  submit:   curl -s {base}/v1/actions {agent} --json @{examples}/refund-small.json",
        f"  escalate: curl -s {base}/v1/actions {agent} --json @{examples}/refund-large.json",
        f"  approve:  ID=$(curl -s '{base}/v1/approvals?status=pending' {approver} | jq -r '.[0].decision_id'); "
        f"curl -s -X POST {base}/v1/approvals/$ID/approve {approver}",
        f"  API docs: {base}/docs",
        *([f"  console:  {console_address(runtime.settings.public_url, host, port)}/ (each link below signs one "
           "person in once and sets their password)"] if links else []),
        *(f"    {email:<22} {link}" for email, link in links.items()),
        f"  audit log verifier key: {runtime.signer.verifier_key} (in {Path(runtime.settings.signing_key_file).with_suffix('.pub')})",
        "",
    ]
    print("\n".join(lines), flush=True)
