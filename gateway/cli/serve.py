"""`warden serve`: run the gateway with uvicorn.

    warden serve [--config warden.toml] [--host H] [--port P] [--demo]

The listening socket is bound first: a port that is taken is one line (`warden serve: port 8080
on 127.0.0.1 is in use; choose another with --port`, exit 2) before anything is opened, created
or printed. Then the gateway is built from the settings (database, signing key, policies), the
demo banner printed, and uvicorn serves on that socket.

`--demo` makes a first start useful on its own: it registers a demo agent (`demo-agent`, A2, all
tools, owned by ops@demo.local), a founder (founder@demo.local), an approver
(approver@demo.local) and an auditor (auditor@demo.local), writes their tokens to
`<data_dir>/demo-tokens.env` (mode 0600) and prints them with the address to send requests to
and commands to copy. Later starts print the same tokens again. Each start also prints a fresh
one-time console sign-in link per person (an invite: it sets their password).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option, settings

DEMO_AGENT = ("demo-agent", "A2", ("*",), "ops@demo.local")
DEMO_USERS = (("founder@demo.local", "founder"), ("approver@demo.local", "approver"),
              ("auditor@demo.local", "auditor"))
DEMO_FILE = "demo-tokens.env"
BACKLOG = 2048  # uvicorn's default
SPEAKER = "warden serve"


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway (HTTP API) with uvicorn")
    add_config_option(serve)
    serve.add_argument("--host", default=None, help="listen address (default: setting `host`)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: setting `port`)")
    serve.add_argument("--demo", action="store_true",
                       help="register a demo agent, founder, approver and auditor and print their tokens")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    configured = settings(args)
    host = args.host or configured.host
    port = args.port if args.port is not None else configured.port
    if not 0 < port < 65536:
        raise CommandError(f"port {port} is not a TCP port", prefix=SPEAKER)
    listening = listen(host, port)
    try:
        app, runtime = _build(configured)
        if args.demo:
            tokens = demo_identities(runtime)
            links = demo_sign_in_links(runtime, host, port) if configured.console else {}
            _print_demo(tokens, host, port, runtime, links)
        return _run(app, runtime, listening, host, port)
    finally:
        listening.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or the one line that says why there cannot be one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # on Linux a port bound but not yet listening elsewhere fails here
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"port {port} on {host} is in use; choose another with --port",
                               prefix=SPEAKER) from None
        raise CommandError(f"cannot listen on {host} port {port}: {exc.strerror or exc}", prefix=SPEAKER) from None
    return sock


def _build(configured: Any) -> tuple[Any, Any]:
    from gateway.http.app import create_app
    from gateway.logs import configure_logging
    from gateway.runtime.runtime import Runtime

    configure_logging(configured.log_level, json=configured.log_json)
    runtime = Runtime(configured)
    return create_app(runtime), runtime


def _run(app: Any, runtime: Any, listening: socket.socket, host: str, port: int) -> int:
    import uvicorn

    from gateway.runtime.reload import install_sighup

    if runtime.watcher is not None:
        install_sighup(runtime.watcher)  # `kill -HUP` reloads the policies at once
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[listening])
    except KeyboardInterrupt:
        pass
    if not server.started:
        raise CommandError("the gateway stopped before it had started; see the log above", prefix=SPEAKER)
    return EXIT_OK


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


def _print_demo(tokens: dict[str, str], host: str, port: int, runtime: Any, links: dict[str, str]) -> None:
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
        f"Warden is starting on {base} (database {database}, sandbox connectors).",
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
