"""Deciding in the console: rejecting with a reason, what each person is shown they may (not) do,
two approvers racing for one approval, and approving with the keyboard alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from console_support import sign_in
from flows_support import Windows, module_console, unexpected
from gateway_server import Server, audit, packet, refund


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_console(tmp_path_factory, "decisions")


def _pending(server: Server, body: dict[str, Any], agent: str = "a2") -> str:
    answer = server.client(agent).post("/v1/actions", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending_approval", answer.text
    return str(answer.json()["decision_id"])


def _payout(agent: str = "a2") -> dict[str, Any]:
    """An L3 payout whose invariants hold: it waits for a founder."""
    return packet(agent, "stripe.payout", {"amount": 250000, "currency": "usd", "creator_id": "cr_19"},
                  evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.1, "cash_runway_days": 100})


def test_rejecting_needs_a_reason_and_the_agent_reads_it(server: Server, page: Page,
                                                        page_errors: list[str]) -> None:
    decision_id = _pending(server, refund("a2", 61000))
    sign_in(page, server, "approver", then=f"decisions/{decision_id}")
    panel = page.locator("#decision-panel")
    reason = page.get_by_label("Reason for rejecting (required)")

    page.get_by_role("button", name="Reject").click()  # empty: the browser refuses to send it
    assert reason.evaluate("el => el.validationMessage")
    expect(panel.locator(".status")).to_have_text("pending approval")

    reason.fill("   ")  # blank: the server says what is missing
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#decision-message").get_by_role("alert")).to_contain_text("say why you reject it")
    expect(panel.locator(".status")).to_have_text("pending approval")

    page.get_by_label("Reason for rejecting (required)").fill("the customer already got a voucher")
    page.get_by_role("button", name="Reject").click()
    expect(panel.locator(".status")).to_have_text("rejected")
    expect(page.locator("#decision-message").get_by_role("status")).to_have_text("The decision is rejected.")
    expect(page.locator("#decision-message").get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    seen = server.client("a2").get(f"/v1/actions/{decision_id}").json()
    assert seen["status"] == "rejected"
    assert any("the customer already got a voucher" in r["message"] for r in seen["reasons"]), seen["reasons"]
    assert unexpected(page_errors, 422) == []  # the blank reason's answer


def test_each_person_sees_why_they_cannot_decide(server: Server, page: Page, windows: Windows,
                                               page_errors: list[str]) -> None:
    payout_id = _pending(server, _payout())
    refund_id = _pending(server, refund("a2", 70000))

    sign_in(page, server, "approver", then=f"decisions/{payout_id}")  # an L3: a founder's call
    obstacles = page.get_by_role("note")
    expect(obstacles).to_contain_text("only a founder can approve it")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)

    founder = windows.open("founder", then=f"decisions/{payout_id}")  # the founder may
    expect(founder.get_by_role("button", name="Approve")).to_be_visible()
    expect(founder.get_by_role("note")).to_have_count(0)

    owner = windows.open("owner", then=f"decisions/{refund_id}")  # nobody approves their own agent
    expect(owner.get_by_role("note")).to_contain_text("You own the agent that asked")
    expect(owner.get_by_role("button", name="Approve")).to_have_count(0)
    expect(owner.get_by_role("button", name="Reject")).to_have_count(0)

    viewer = windows.open("viewer", then=f"decisions/{refund_id}")  # a viewer looks, never decides
    expect(viewer.get_by_role("heading", name="refund $700.00 on ch_test")).to_be_visible()
    expect(viewer.get_by_role("note")).to_contain_text("only approvers and founders decide")
    expect(viewer.locator("main form")).to_have_count(0)
    expect(viewer.locator("main textarea, main button")).to_have_count(0)
    assert page_errors == []


def test_two_approvers_racing_for_one_approval_execute_it_once(server: Server, page: Page, windows: Windows,
                                                             page_errors: list[str]) -> None:
    decision_id = _pending(server, refund("a2", 73000))
    sign_in(page, server, "approver", then=f"decisions/{decision_id}")
    other = windows.open("approver2", then=f"decisions/{decision_id}")
    for each, said in ((page, "first"), (other, "second")):
        each.get_by_label("Comment (optional)").fill(f"{said} to look")

    # both press Approve before either answer arrives
    page.evaluate("() => document.querySelector('.approve-form button[type=submit]').click()")
    other.evaluate("() => document.querySelector('.approve-form button[type=submit]').click()")

    for each in (page, other):
        expect(each.locator("#decision-panel .status")).to_have_text("executed")
        expect(each.locator("#decision-panel")).to_contain_text("1 of 1")  # the one approval
    messages = [each.locator("#decision-message") for each in (page, other)]
    for message in messages:  # each is told what became of their own click
        expect(message.get_by_role("status").or_(message.get_by_role("alert"))).to_be_visible()
    told = [(m.get_by_role("status").count(), m.get_by_role("alert").count()) for m in messages]
    assert sorted(told) == [(0, 1), (1, 0)], told  # exactly one approval is recorded, the other refused
    late = next(m for m in messages if m.get_by_role("alert").count()).get_by_role("alert")
    expect(late).to_contain_text("Too late")

    approvals = audit(server, "approval", decision_id)
    executions = audit(server, "execution", decision_id)
    assert len(approvals) == 1, approvals
    assert [e["data"]["outcome"] for e in executions] == ["succeeded"], executions
    assert server.runtime.registry.call_ledger.count(decision_id) == 1  # the connector was called once
    assert unexpected(page_errors, 409) == []  # the late approval's answer


def test_approving_with_the_keyboard_alone(server: Server, page: Page, page_errors: list[str]) -> None:
    decision_id = _pending(server, refund("a2", 74000))
    sign_in(page, server, "approver2", then=f"decisions/{decision_id}")
    page.locator("body").press("Home")  # focus starts at the top of the page
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == "comment":
            break
    else:
        pytest.fail("Tab never reached the comment field")
    page.keyboard.type("checked by keyboard")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Approve"
    page.keyboard.press("Enter")
    expect(page.locator("#decision-panel .status")).to_have_text("executed")
    expect(page.locator("#decision-panel")).to_contain_text("checked by keyboard")
    assert page_errors == []
