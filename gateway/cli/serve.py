"""`warden serve`: run the gateway with uvicorn.

    warden serve [--config warden.toml] [--host H] [--port P] [--demo]

`--demo` makes a first start useful on its own: it registers a demo agent (`demo-agent`, A2, all
tools, owned by ops@demo.local), a founder (founder@demo.local) and an approver
(approver@demo.local), writes their tokens to `<data_dir>/demo-tokens.env` (mode 0600) and prints
them with the address to send requests to. Later starts print the same tokens again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

DEMO_AGENT = ("demo-agent", "A2", ("*",), "ops@demo.local")
DEMO_USERS = (("founder@demo.local", "founder"), ("approver@demo.local", "approver"),
              ("auditor@demo.local", "auditor"))
DEMO_FILE = "demo-tokens.env"


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway (HTTP API) with uvicorn")
    serve.add_argument("--config", type=Path, default=None, help="settings file (default: ./warden.toml if present)")
    serve.add_argument("--host", default=None, help="listen address (default: setting `host`)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: setting `port`)")
    serve.add_argument("--demo", action="store_true",
                       help="register a demo agent, founder and approver and print their tokens")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from gateway.cli.exits import EXIT_OK, EXIT_USAGE
    from gateway.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"warden serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if not 0 < port < 65536:
        print(f"warden serve: port {port} is not a TCP port", file=sys.stderr)
        return EXIT_USAGE
    try:
        app, runtime = _build(settings)
    except Exception as exc:  # start-up problems are the operator's to fix: one clear line
        print(f"warden serve: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.demo:
        tokens = demo_identities(runtime)
        _print_demo(tokens, host, port, runtime)
    import uvicorn

    from gateway.runtime.reload import install_sighup

    if runtime.watcher is not None:
        install_sighup(runtime.watcher)  # `kill -HUP` reloads the policies at once
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
    return EXIT_OK


def _build(settings: Any) -> tuple[Any, Any]:
    from gateway.http.app import create_app
    from gateway.logs import configure_logging
    from gateway.runtime.runtime import Runtime

    configure_logging(settings.log_level, json=settings.log_json)
    runtime = Runtime(settings)
    return create_app(runtime), runtime


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

    runtime.gateway._write(work)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in tokens.items())
    return tokens


def _print_demo(tokens: dict[str, str], host: str, port: int, runtime: Any) -> None:
    from dsl.shipped import builtin_policy_dir

    base = f"http://{host}:{port}"
    path = Path(runtime.settings.data_dir) / DEMO_FILE
    example = builtin_policy_dir() / "examples" / "refund-small.json"
    if example.is_relative_to(Path.cwd()):  # started in a source checkout: policies/examples/...
        example = example.relative_to(Path.cwd())
    lines = [
        "",
        f"Warden is starting on {base} (database {runtime.settings.database_url}, sandbox connectors).",
        f"Demo identities (also in {path}, mode 0600; `source` it in your shell):",
        *(f"  export {k}={v}" for k, v in tokens.items()),
        "",
        f"  submit:   curl -s {base}/v1/actions -H \"Authorization: Bearer $WARDEN_AGENT_TOKEN\" --json @{example}",
        f"  approve:  curl -s -X POST {base}/v1/approvals/DECISION_ID/approve -H \"Authorization: Bearer $WARDEN_APPROVER_TOKEN\"",
        f"  API docs: {base}/docs",
        f"  audit log verifier key: {runtime.signer.verifier_key} (in {Path(runtime.settings.signing_key_file).with_suffix('.pub')})",
        "",
    ]
    print("\n".join(lines), flush=True)
