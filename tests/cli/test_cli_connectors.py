"""`warden connectors check` (a read-only call per connector, with the configured credentials) and
`warden actions compensate` (undo an executed action), as a shell runs them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, warden

from fakes.crm import TOKEN as CRM_TOKEN
from fakes.crm import FakeHubSpot
from fakes.shopify import FakeShopify
from fakes.stripe import DEFAULT_KEY, FakeStripe
from gateway_server import note, packet, server_config, start_server


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[FakeStripe, FakeShopify, FakeHubSpot]]:
    fakes = (FakeStripe().start(), FakeShopify().start(), FakeHubSpot().start())
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.stop()


def live_env(providers: tuple[FakeStripe, FakeShopify, FakeHubSpot], **changes: str) -> dict[str, str]:
    stripe, shopify, crm = providers
    env = {"WARDEN_CONNECTORS_MODE": "live", "WARDEN_CONNECTOR_TIMEOUT_SECONDS": "5",
           "WARDEN_STRIPE_API_KEY": DEFAULT_KEY, "WARDEN_STRIPE_API_BASE": stripe.base_url,
           "WARDEN_SHOPIFY_SHOP": "warden-test.myshopify.com", "WARDEN_SHOPIFY_ACCESS_TOKEN": shopify.access_token,
           "WARDEN_SHOPIFY_API_BASE": shopify.base_url,
           "WARDEN_CRM_ACCESS_TOKEN": CRM_TOKEN, "WARDEN_CRM_API_BASE": crm.base_url}
    env.update(changes)
    return {k: v for k, v in env.items() if v}


def test_sandbox_mode_has_nothing_to_reach(tmp_path: Path) -> None:
    done = warden("connectors", "check", cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert "sandbox mode" in done.stderr
    rows = done.stdout.splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [["stripe", "ok"], ["shopify", "ok"], ["crm", "ok"]]


def test_every_configured_connector_answers(tmp_path: Path, providers: tuple[FakeStripe, FakeShopify, FakeHubSpot]) -> None:
    done = warden("connectors", "check", "--json", cwd=tmp_path, env=live_env(providers))
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["mode"] == "live"
    assert {name: row["status"] for name, row in report["connectors"].items()} == {
        "stripe": "ok", "shopify": "ok", "crm": "ok"}
    assert DEFAULT_KEY not in done.stdout + done.stderr and CRM_TOKEN not in done.stdout + done.stderr
    assert providers[0].requests("GET /v1/balance") and providers[2].requests("GET /account-info/v3/details")


def test_refused_credentials_fail_the_check_without_showing_them(
    tmp_path: Path, providers: tuple[FakeStripe, FakeShopify, FakeHubSpot]
) -> None:
    wrong = "sk_test_51WrongKeyThatStripeDoesNotKnow000000000000wxyz"
    done = warden("connectors", "check", cwd=tmp_path,
                  env=live_env(providers, WARDEN_STRIPE_API_KEY=wrong, WARDEN_CRM_ACCESS_TOKEN="pat-na1-wrong"))
    assert done.returncode == EXIT_CHECK_FAILED, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "failed (credentials_refused)" in lines["stripe"] and "failed (credentials_refused)" in lines["crm"]
    assert lines["shopify"].split()[1] == "ok"
    assert wrong not in done.stdout + done.stderr and "pat-na1-wrong" not in done.stdout + done.stderr


def test_a_system_without_credentials_is_not_configured(
    tmp_path: Path, providers: tuple[FakeStripe, FakeShopify, FakeHubSpot]
) -> None:
    env = live_env(providers, WARDEN_STRIPE_API_KEY="", WARDEN_SHOPIFY_ACCESS_TOKEN="")
    done = warden("connectors", "check", cwd=tmp_path, env=env)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "not configured" in lines["stripe"] and "WARDEN_STRIPE_API_KEY" in lines["stripe"]
    assert "not configured" in lines["shopify"] and lines["crm"].split()[1] == "ok"
    nothing = warden("connectors", "check", cwd=tmp_path, env=live_env(
        providers, WARDEN_STRIPE_API_KEY="", WARDEN_SHOPIFY_ACCESS_TOKEN="", WARDEN_CRM_ACCESS_TOKEN=""))
    assert nothing.returncode == EXIT_CHECK_FAILED  # live mode with nothing configured


def test_an_unreachable_provider_fails_the_check(tmp_path: Path, providers: tuple[FakeStripe, FakeShopify, FakeHubSpot]) -> None:
    done = warden("connectors", "check", cwd=tmp_path,
                  env=live_env(providers, WARDEN_CRM_API_BASE="http://127.0.0.1:9"))
    assert done.returncode == EXIT_CHECK_FAILED
    crm = [line for line in done.stdout.splitlines() if line.startswith("crm")][0]
    assert "failed (connection_failed)" in crm


def test_actions_compensate_undoes_an_executed_action_once(tmp_path: Path) -> None:
    settings = server_config(f"sqlite:///{tmp_path / 'warden.db'}", tmp_path)
    server, stop = start_server(settings)
    try:
        executed = server.client("a2").post("/v1/actions", json=note("a2")).json()
        refund = server.client("a3").post("/v1/actions", json=packet(
            "a3", "stripe.refund", {"charge": "ch_1", "amount": 100, "currency": "usd"},
            evidence={"reconciled": True, "order_total": 100})).json()
    finally:
        stop()
    assert executed["status"] == "executed" and refund["status"] == "executed"
    env = {"WARDEN_DATABASE_URL": settings.database_url, "WARDEN_DATA_DIR": str(settings.data_dir),
           "WARDEN_SIGNING_KEY_FILE": str(settings.signing_key_file), "WARDEN_POLICY_RELOAD": "false"}
    first = warden("actions", "compensate", executed["decision_id"], "--as", "approver@test.local", "--json",
                   cwd=tmp_path, env=env)
    assert first.returncode == EXIT_OK, first.stderr
    compensation = json.loads(first.stdout)
    assert compensation["status"] == "executed"
    assert compensation["packet_id"] == f"compensate.{executed['decision_id']}"
    again = warden("actions", "compensate", executed["decision_id"], "--as", "founder@test.local",
                   cwd=tmp_path, env=env)
    assert again.returncode == EXIT_OK, again.stderr
    assert again.stdout.strip() == f"compensation {compensation['decision_id']} of {executed['decision_id']}: executed"
    with sqlite3.connect(tmp_path / "warden.db") as db:
        packets = [row[0] for row in db.execute("SELECT packet_id FROM decisions WHERE packet_id LIKE 'compensate.%'")]
    assert packets == [f"compensate.{executed['decision_id']}"]

    refused = warden("actions", "compensate", refund["decision_id"], "--as", "approver@test.local", cwd=tmp_path, env=env)
    assert refused.returncode == EXIT_USAGE
    assert refused.stderr.startswith("warden: error: not_reversible: stripe.refund cannot be undone")
    viewer = warden("actions", "compensate", executed["decision_id"], "--as", "viewer@test.local", cwd=tmp_path, env=env)
    assert viewer.returncode == EXIT_USAGE and "only a founder or an approver" in viewer.stderr
    unknown = warden("actions", "compensate", "dec_nope", "--as", "approver@test.local", cwd=tmp_path, env=env)
    assert unknown.returncode == EXIT_USAGE and "decision_not_found" in unknown.stderr
