"""Passkeys in the browser: a founder registers one with Chromium's virtual authenticator (CDP
WebAuthn), approves an L3 payout with it in the console, and `warden audit verify` checks the
signature offline in an export; the same export with the signature altered fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from audit_support import export, verify, with_altered_signature
from browser_support import virtual_authenticator
from console_support import give_passwords, sign_in
from gateway_server import Server, packet


@pytest.fixture
def console_settings_overrides() -> dict[str, Any]:
    return {"passkeys_required_for_l3": True}


def payout() -> dict[str, Any]:
    return packet("a2", "stripe.payout", {"amount": 250_000, "currency": "usd", "creator_id": "cr_19"},
                  evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.08, "cash_runway_days": 94})


def test_an_l3_approved_with_a_registered_passkey_verifies_offline_and_a_tampered_signature_fails(
        console_server: Server, page: Page, page_errors: list[str], tmp_path: Path) -> None:
    give_passwords(console_server)
    decision_id = console_server.client("a2").post("/v1/actions", json=payout()).json()["decision_id"]
    sign_in(page, console_server, "founder", then=f"decisions/{decision_id}")
    expect(page.locator(".obstacles")).to_contain_text("needs a passkey")  # none registered yet
    expect(page.get_by_role("button", name="Approve with passkey")).to_have_count(0)

    virtual_authenticator(page)
    page.goto(console_server.console_url + "account")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list tbody")).to_contain_text("http://localhost:")

    page.goto(console_server.console_url + f"decisions/{decision_id}")
    page.get_by_label("Comment (optional)").fill("signed with my passkey")
    page.get_by_role("button", name="Approve with passkey").click()
    expect(page.locator("#decision-panel .status")).to_have_text("executed")
    assert page_errors == []

    entries = console_server.client("auditor").get("/v1/audit/entries", params={"from": 0}).json()["entries"]
    kinds = [e["entry"]["kind"] for e in entries]
    assert "passkey_registered" in kinds
    approval = next(e["entry"] for e in entries if e["entry"]["kind"] == "approval")
    assert approval["data"]["passkey"]["signature"] and approval["data"]["comment"] == "signed with my passkey"

    key = console_server.runtime.signer.verifier_key
    folder = export(console_server, tmp_path / "export")
    done = verify(folder, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passkey-signed approval verified" in done.stdout

    seq = approval["seq"]
    tampered = with_altered_signature(folder, tmp_path / "tampered", seq)
    done = verify(tampered, key)
    assert done.returncode == 1, done.stdout
    assert f"seq {seq}" in done.stdout and "the passkey signature does not verify" in done.stdout
