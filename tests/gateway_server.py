"""A real gateway on loopback for HTTP tests (fixtures in tests/api/conftest.py): `warden_server` starts uvicorn in a thread over a fresh
database (SQLite and PostgreSQL through `db_url`), registers agents and people, and hands out an
httpx client per identity. `server.base_url` is http://127.0.0.1:PORT for httpx; a browser opens
`server.console_url`, http://localhost:PORT/console/ (see tests/console/conftest.py).

Identities registered:
    agents  a0 .. a4     autonomy A0..A4, every tool, owned by owner@test.local
            narrow       A2, only crm.* tools
    people  founder@test.local (founder), approver@test.local, approver2@test.local,
            owner@test.local (approver who owns the agents), auditor@test.local, viewer@test.local

Connectors: the sandbox, or with `WARDEN_TEST_CONNECTORS=live` the live connectors against fake
providers on loopback (tests/fakes: Stripe, Shopify, HubSpot), one set per gateway, started with
it (`server.fakes`). `server.calls` says what the connectors did, whichever the mode:
executions per idempotency key, and how many calls reached a provider at all.

Shared helpers for the HTTP tests: `module_server` (one gateway per database for a module),
`audit_log` / `audit` (the hashed audit log as the auditor), `footprint` (what a request may have
left behind), `eventually` (poll until a check holds),
`policies_with` / `edit_policy` (a copy of the shipped policies with text edits).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dsl import builtin_policy_dir
from gateway.store import identities
from gateway.http.app import create_app
from gateway.config import Settings
from gateway.runtime.runtime import Runtime

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


#: Which connectors the HTTP tests' gateways run: "sandbox" (the default) or "live" (the live
#: connectors against fake providers on loopback).
CONNECTORS = os.environ.get("WARDEN_TEST_CONNECTORS", "sandbox")
LIVE = CONNECTORS == "live"


@dataclass
class Fakes:
    """The fake providers one live-mode gateway talks to."""

    stripe: Any
    shopify: Any
    crm: Any

    @classmethod
    def start(cls) -> Fakes:
        from fakes.crm import FakeHubSpot
        from fakes.shopify import FakeShopify
        from fakes.stripe import FakeStripe

        return cls(FakeStripe().start(), FakeShopify().start(), FakeHubSpot(autocreate=True).start())

    def all(self) -> list[Any]:
        return [self.stripe, self.shopify, self.crm]

    def settings(self) -> dict[str, Any]:
        from fakes.crm import TOKEN
        from fakes.stripe import DEFAULT_KEY

        return {"connectors_mode": "live", "connector_timeout_seconds": 5.0,
                "stripe_api_key": DEFAULT_KEY, "stripe_api_base": self.stripe.base_url,
                "shopify_shop": "warden-test.myshopify.com", "shopify_access_token": self.shopify.access_token,
                "shopify_api_base": self.shopify.base_url,
                "crm_access_token": TOKEN, "crm_api_base": self.crm.base_url}

    def stop(self) -> None:
        for fake in self.all():
            fake.stop()


@dataclass
class Calls:
    """What a gateway's connectors did: the sandbox's call ledger, or the fake providers' records."""

    runtime: Runtime
    fakes: Fakes | None

    def executions_by_key(self) -> dict[str, int]:
        """{idempotency key: times it took effect}: 1 for every executed action, or a bug."""
        if self.fakes is None:
            ledger = self.runtime.registry.call_ledger
            assert ledger is not None
            return ledger.executions_by_key()
        counts: dict[str, int] = {}
        for fake in self.fakes.all():
            for key, count in fake.effects_by_key().items():
                if key is not None:
                    counts[key] = counts.get(key, 0) + count
        return counts

    def executed(self, key: str) -> int:
        return self.executions_by_key().get(key, 0)

    def total(self) -> int:
        """Every call that acted (the sandbox: every recorded call, replays included; live: every
        effect on a provider's objects, the background connector checks' reads not counted)."""
        if self.fakes is None:
            ledger = self.runtime.registry.call_ledger
            assert ledger is not None
            return len(ledger.calls())
        return sum(len(fake.effects) for fake in self.fakes.all())


@dataclass
class Server:
    """A running gateway and a client per identity (`server.client("a2")`)."""

    runtime: Runtime
    base_url: str
    tokens: dict[str, str]
    fakes: Fakes | None = None
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def calls(self) -> Calls:
        return Calls(self.runtime, self.fakes)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def console_url(self) -> str:
        """The console's address for a browser: `http://localhost:PORT/console/`. A browser must use
        the name `localhost`, never 127.0.0.1: WebAuthn refuses an IP address as relying party ID,
        and `localhost` is a secure context over plain HTTP (tests/console launches Chromium with
        localhost mapped to 127.0.0.1, where the server listens)."""
        return f"http://localhost:{self.port}/console/"

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


def start_server(settings: Settings, *, setup: Callable[[Runtime], dict[str, str]] | None = None,
                 port: int | None = None, clock: Callable[[], float] | None = None) -> tuple[Server, Callable[[], None]]:
    """Start a gateway on 127.0.0.1 (on `port`, or a free one) in a thread; returns it and its stop.
    `clock` (UNIX seconds) replaces the runtime's `time.time`, so a test can move time. With
    `WARDEN_TEST_CONNECTORS=live`, fake providers start first and the gateway runs live against
    them (sandbox-only settings such as `sandbox_faults` are then the test's to translate)."""
    fakes = Fakes.start() if LIVE and settings.connectors_mode == "sandbox" else None
    if fakes is not None:
        settings = settings.model_copy(update=fakes.settings())
    try:
        runtime = Runtime(settings, clock=clock) if clock is not None else Runtime(settings)
    except BaseException:
        if fakes is not None:
            fakes.stop()
        raise
    tokens = (setup or register_identities)(runtime)
    app = create_app(runtime)
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    handle = Server(runtime, f"http://127.0.0.1:{port}", tokens, fakes)

    def stop() -> None:
        handle.close()
        server.should_exit = True
        thread.join(timeout=15)
        if fakes is not None:
            fakes.stop()

    return handle, stop


def register_identities(runtime: Runtime) -> dict[str, str]:
    tokens: dict[str, str] = {}

    def work(conn: Any) -> None:
        now = time.time()
        for name, (autonomy, tools) in AGENTS.items():
            _a, tokens[name] = identities.add_agent(conn, runtime.ledger, name, autonomy, tools, OWNER, now, "test")
        for key, (email, role) in PEOPLE.items():
            _u, tokens[key] = identities.add_user(conn, runtime.ledger, email, role, now, "test")

    runtime.writer.run(work)
    return tokens


def server_config(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
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
    return Settings(**{**base, **overrides})


def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str,
                  **overrides: Any) -> Iterator[Server]:
    """The body of a module-scoped fixture parametrised over ["sqlite", "postgresql"]: a gateway
    over a fresh database of that kind (settings from `server_config`, with `overrides`), stopped
    when the module is done. Use as `yield from module_server(request, tmp_path_factory, "name")`."""
    tmp = tmp_path_factory.mktemp(name)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'warden.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    server, stop = start_server(server_config(url, tmp, **overrides))
    try:
        yield server
    finally:
        stop()


def audit_log(server: Server) -> list[dict[str, Any]]:
    """Every item of the audit log (the entry as hashed, with its hashes), oldest first; read page
    by page from GET /v1/audit/entries as the auditor."""
    auditor = server.client("auditor")
    found: list[dict[str, Any]] = []
    while True:
        page = auditor.get("/v1/audit/entries", params={"from": len(found)})
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["entries"]
        if not body["entries"] or len(found) >= body["size"]:
            return found


def audit(server: Server, kind: str, subject: str | None = None) -> list[dict[str, Any]]:
    """The audit entries (as hashed) of one kind, and of one subject if given, oldest first."""
    entries = [item["entry"] for item in audit_log(server)]
    return [e for e in entries if e["kind"] == kind and (subject is None or e["subject"] == subject)]


def footprint(server: Server) -> tuple[int, int, int]:
    """(decision rows, audit entries, connector calls): equal before and after a refused request
    when nothing was recorded and nothing executed."""
    from sqlalchemy import func, select

    from gateway.store.schema import decisions

    with server.runtime.db.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
    size = server.client("auditor").get("/v1/audit/entries", params={"from": 0, "to": 0}).json()["size"]
    return int(rows), int(size), server.calls.total()


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """The first truthy value of `check()`, polled every 50 ms; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def policies_with(tmp_path: Path, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of the shipped policies in tmp_path/policies with text replaced: {file: (old, new)}."""
    target = tmp_path / "policies"
    shutil.copytree(builtin_policy_dir(), target, ignore=shutil.ignore_patterns("tests", "examples"))
    for name, (old, new) in (edits or {}).items():
        edit_policy(target / name, old, new)
    return target


def edit_policy(file: Path, old: str, new: str) -> None:
    """Replace `old`, which must stand in the file exactly once, by `new`."""
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {file.name}"
    file.write_text(text.replace(old, new), encoding="utf-8")
