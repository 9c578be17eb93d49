"""kill -9 of a live `warden serve` in the middle of a call to Stripe, Shopify and the CRM (fake
providers on loopback): each provider has acted and is still answering when the process dies.
After the restart the execution's outcome is unknown; reconciliation asks the provider, finds
the effect and records it, without sending the call again: exactly one effect per action, on
SQLite and PostgreSQL."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from warden_process import Deployment, WardenProcess, prepare  # noqa: E402

from fakes.crm import TOKEN as CRM_TOKEN  # noqa: E402
from fakes.crm import FakeHubSpot  # noqa: E402
from fakes.shopify import FakeShopify  # noqa: E402
from fakes.stripe import DEFAULT_KEY, FakeStripe  # noqa: E402

#: (the fake's name, the request that hangs after acting, the tool, params, evidence)
ACTIONS: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    ("stripe", "POST /v1/refunds", "stripe.refund", {"charge": "ch_3PqX", "amount": 700, "currency": "usd"},
     {"reconciled": True, "order_total": 700}),
    ("shopify", "POST /admin/api/*/graphql.json inventoryAdjustQuantities", "shopify.adjust_inventory",
     {"variant_id": "2001", "delta": 5, "unit_cost": 500, "currency": "usd"}, {"cash_runway_days": 90}),
    ("crm", "POST /crm/v3/objects/notes", "crm.log_note", {"record_id": "1001", "body": "Asked for a quote."}, {}),
]
HANG_SECONDS = 15.0


@pytest.fixture
def fakes() -> Iterator[dict[str, Any]]:
    started = {"stripe": FakeStripe().start(), "shopify": FakeShopify().start(),
               "crm": FakeHubSpot(autocreate=True).start()}
    try:
        yield started
    finally:
        for fake in started.values():
            fake.stop()


def _submit(server: WardenProcess, token: str, body: dict[str, Any], answers: list[Any]) -> None:
    """POST the packet; its answer never comes (the process dies first), which is expected."""
    try:
        with server.client(token) as client:
            answers.append(client.post("/v1/actions", json=body).json())
    except httpx.HTTPError as exc:
        answers.append(exc)


def _wait_for(check: Any, what: str, server: WardenProcess, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}\n{server.log_tail()}")


def test_kill9_mid_call_then_restart_leaves_exactly_one_effect(db_url: str, tmp_path: Path,
                                                                fakes: dict[str, Any]) -> None:
    stripe, shopify, crm = fakes["stripe"], fakes["shopify"], fakes["crm"]
    deployment: Deployment = prepare(
        db_url, tmp_path, connectors_mode="live", connector_timeout_seconds=30, policy_reload="false",
        outbox_recover_on_start="true", stripe_api_key=DEFAULT_KEY, stripe_api_base=stripe.base_url,
        shopify_shop="warden-test.myshopify.com", shopify_access_token=shopify.access_token,
        shopify_api_base=shopify.base_url, crm_access_token=CRM_TOKEN, crm_api_base=crm.base_url,
    )
    server = WardenProcess(deployment).start()
    try:
        for index, (name, route, tool, params, evidence) in enumerate(ACTIONS):
            fake = fakes[name]
            packet_id = f"live-crash-{index}"
            before = len(fake.effects)
            fake.fail(route, kind="hang_after", seconds=HANG_SECONDS)
            answers: list[Any] = []
            body = {"packet_id": packet_id, "agent": deployment.agent, "action": {"tool": tool, "params": params},
                    "evidence": evidence}
            threading.Thread(target=_submit, args=(server, deployment.agent_token, body, answers), daemon=True).start()
            # the provider acted, and its answer is held back: the gateway waits on it
            _wait_for(lambda: len(fake.effects) > before, f"{tool} to take effect at the provider", server)
            server.kill9()
            fake.clear_faults()
            server = WardenProcess(deployment).start()  # recovery: the lease ends, the outcome is unknown

            with server.client(deployment.agent_token) as agent:
                decision_id = _wait_for(lambda: _decision_id(deployment, packet_id), "the decision row", server)
                done = _wait_for(lambda: (d := agent.get(f"/v1/actions/{decision_id}").json())["status"] != "executing"
                                 and d, f"{tool} to settle after the restart", server)
            assert done["status"] == "executed", (done, server.log_tail())
            assert done["execution"].get("reconciled") is True, (tool, done["execution"], server.log_tail(3000))
            effects = [e for e in fake.effects[before:]]
            assert len(effects) == 1, (tool, effects)  # exactly one effect: nothing was sent again
            if effects[0]["key"] is not None:
                assert effects[0]["key"] == decision_id
            with server.client(deployment.auditor_token) as auditor:
                kinds = [(e["entry"]["kind"], e["entry"]["data"].get("found", e["entry"]["data"].get("outcome")))
                         for e in auditor.get("/v1/audit/entries", params={"from": 0}).json()["entries"]
                         if e["entry"]["subject"] == decision_id]
            assert kinds == [("decision", None), ("reconciliation", True), ("execution", "succeeded")], kinds
    finally:
        server.kill9()


def _decision_id(deployment: Deployment, packet_id: str) -> str | None:
    from sqlalchemy import select

    from gateway.store.schema import decisions
    from ledger.database import make_engine

    engine = make_engine(deployment.db_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(select(decisions.c.decision_id).where(decisions.c.packet_id == packet_id)).scalar()
    finally:
        engine.dispose()
    return str(found) if found else None
