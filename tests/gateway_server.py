"""A real gateway on loopback for HTTP tests (fixtures in tests/api/conftest.py): `warden_server` starts uvicorn in a thread over a fresh
database (SQLite and PostgreSQL through `db_url`), registers agents and people, and hands out an
httpx client per identity.

Identities registered:
    agents  a0 .. a4     autonomy A0..A4, every tool, owned by owner@test.local
            narrow       A2, only crm.* tools
    people  founder@test.local (founder), approver@test.local, approver2@test.local,
            owner@test.local (approver who owns the agents), auditor@test.local, viewer@test.local
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gateway import identities
from gateway.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime

AGENTS = {f"a{level}": (f"A{level}", ("*",)) for level in range(5)} | {"narrow": ("A2", ("crm.*",))}
OWNER = "owner@test.local"
PEOPLE = {
    "founder": ("founder@test.local", "founder"),
    "approver": ("approver@test.local", "approver"),
    "approver2": ("approver2@test.local", "approver"),
    "owner": (OWNER, "approver"),
    "auditor": ("auditor@test.local", "auditor"),
    "viewer": ("viewer@test.local", "viewer"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running gateway and a client per identity (`server.client("a2")`)."""

    runtime: Runtime
    base_url: str
    tokens: dict[str, str]
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, who: str | None = None) -> httpx.Client:
        key = who or "anonymous"
        if key not in self._clients:
            headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
            self._clients[key] = httpx.Client(base_url=self.base_url, headers=headers, timeout=30)
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def packet(agent: str, tool: str, params: dict[str, Any], *, packet_id: str | None = None,
           evidence: dict[str, Any] | None = None, claims: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "packet_id": packet_id or f"p-{time.monotonic_ns()}",
        "agent": agent,
        "action": {"tool": tool, "params": params},
        "evidence": evidence or {},
        "proof": {"invariant_checks": claims or []},
        "context": {"task_id": "t-1"},
    }


def refund(agent: str, amount: int, **kw: Any) -> dict[str, Any]:
    """A refund packet whose invariants hold (reconciled order)."""
    return packet(agent, "stripe.refund", {"charge": "ch_test", "amount": amount, "currency": "usd"},
                  evidence={"reconciled": True, "order_total": amount}, **kw)


def note(agent: str, **kw: Any) -> dict[str, Any]:
    """An L0 CRM note."""
    return packet(agent, "crm.log_note", {"record_id": "rec_1", "body": "called the customer"}, **kw)


def start_server(settings: Settings, *, setup: Callable[[Runtime], dict[str, str]] | None = None) -> tuple[Server, Callable[[], None]]:
    runtime = Runtime(settings)
    tokens = (setup or register_identities)(runtime)
    app = create_app(runtime)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    handle = Server(runtime, f"http://127.0.0.1:{port}", tokens)

    def stop() -> None:
        handle.close()
        server.should_exit = True
        thread.join(timeout=15)

    return handle, stop


def register_identities(runtime: Runtime) -> dict[str, str]:
    tokens: dict[str, str] = {}

    def work(conn: Any) -> None:
        now = time.time()
        for name, (autonomy, tools) in AGENTS.items():
            _a, tokens[name] = identities.add_agent(conn, runtime.ledger, name, autonomy, tools, OWNER, now, "test")
        for key, (email, role) in PEOPLE.items():
            _u, tokens[key] = identities.add_user(conn, runtime.ledger, email, role, now, "test")

    runtime.gateway._write(work)
    return tokens


def server_config(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    base = Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        signing_key_file=tmp_path / "data" / "ledger.key",
        policy_reload=False,
        outbox_workers=1,
        outbox_backoff_base_seconds=0.01,
        outbox_backoff_max_seconds=0.05,
        checkpoint_every_entries=50,
        log_json=True,
    )
    return replace(base, **overrides)



