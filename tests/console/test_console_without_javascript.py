"""Without JavaScript the console still signs in, shows the inbox and decides: approve and reject
are plain forms that post and redirect."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from console_support import give_passwords, sign_in
from gateway_server import Server, refund


def test_approve_and_reject_are_plain_forms(console_server: Server, browser: Browser) -> None:
    give_passwords(console_server)
    agent = console_server.client("a2")
    approved = agent.post("/v1/actions", json=refund("a2", 72_000)).json()["decision_id"]
    rejected = agent.post("/v1/actions", json=refund("a2", 61_000)).json()["decision_id"]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, console_server, "approver")
        expect(page.locator(f"#row-{approved}")).to_contain_text("refund $720.00")
        page.locator(f"#row-{approved}").get_by_role("link").click()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_have_text("Your approval is recorded.")
        expect(page.locator("#decision-panel .status")).to_have_text("executed")

        page.goto(console_server.console_url + f"decisions/{rejected}")
        page.get_by_label("Reason for rejecting (required)").fill("duplicate of an earlier refund")
        page.get_by_role("button", name="Reject").click()
        expect(page.locator("#decision-panel .status")).to_have_text("rejected")
    finally:
        context.close()
    statuses = {d: agent.get(f"/v1/actions/{d}").json()["status"] for d in (approved, rejected)}
    assert statuses == {approved: "executed", rejected: "rejected"}
