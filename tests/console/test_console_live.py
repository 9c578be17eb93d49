"""The inbox is live: a packet submitted over HTTP appears in an open inbox without a reload, and
an approval in the browser lets the agent's long-poll return `executed`."""

from __future__ import annotations

import re
import threading

from playwright.sync_api import Page, expect

from console_support import give_passwords, sign_in
from gateway_server import Server, refund


def test_an_escalated_refund_appears_in_an_open_inbox_and_approving_it_executes(
        console_server: Server, page: Page, page_errors: list[str]) -> None:
    give_passwords(console_server)
    sign_in(page, console_server, "approver")
    expect(page.locator("#inbox-rows")).to_contain_text("Nothing is waiting")
    page.wait_for_timeout(300)  # the event stream is open
    answer = console_server.client("a2").post("/v1/actions", json=refund("a2", 72000))
    assert answer.status_code == 202, answer.text
    decision_id = answer.json()["decision_id"]
    row = page.locator(f"#row-{decision_id}")
    expect(row).to_contain_text("refund $720.00 on ch_test", timeout=2000)
    expect(row.locator("time.countdown")).to_have_text(re.compile(r"^in \d+h \d+m$"))  # a live countdown
    expect(page.locator("#pending-badge")).to_have_text("1")
    expect(page).to_have_title("Inbox (1) · Warden")

    waited: dict[str, object] = {}

    def long_poll() -> None:
        # As an agent waits: again while the status still changes (`executing` comes between the
        # approval's commit and the connector's answer).
        answer, polls = {"status": "pending_approval"}, 0
        while answer["status"] in ("pending_approval", "executing") and polls < 5:
            polls += 1
            answer = console_server.client("a2").get(f"/v1/actions/{decision_id}", params={"wait": 20}).json()
        waited["answer"] = answer

    poller = threading.Thread(target=long_poll)
    poller.start()
    row.get_by_role("link").click()
    page.get_by_label("Comment (optional)").fill("checked the order")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#decision-panel .status")).to_have_text("executed")
    poller.join(20)
    assert waited["answer"]["status"] == "executed"  # type: ignore[index]
    assert page_errors == []
