"""Undoing an executed action from the console: the decision page offers Undo (with a confirmation
naming the compensating action) to approvers and founders, the pipeline's compensation runs once,
and the two decisions link to each other; everyone else, an irreversible action, an action that
has not executed and a forged form are refused with the reason, never a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from axe import check_accessibility, describe
from console_support import sign_in, signed_in
from console.present import summary
from flows_support import Windows, module_console, wait_for_stream
from gateway_server import Server, audit, note, packet, refund


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_console(tmp_path_factory, "compensate")


def _decided(server: Server, body: dict[str, Any], status: str) -> dict[str, Any]:
    answer = server.client(body["agent"]).post("/v1/actions", json=body)
    assert answer.status_code in (200, 202), answer.text
    decision = dict(answer.json())
    assert decision["status"] == status, decision
    return decision


def _price(old: int, new: int) -> dict[str, Any]:
    return packet("a3", "shopify.update_price", {"product_id": "1001", "variant_id": "2001", "old_price": old,
                                                 "new_price": new, "currency": "usd"},
                  evidence={"projected_margin": 0.3})


def _compensations(server: Server, decision_id: str) -> list[dict[str, Any]]:
    return [e for e in audit(server, "decision") if e["data"]["packet"]["packet_id"] == f"compensate.{decision_id}"]


def _csrf(client: httpx.Client, decision_id: str) -> str:
    """The session's CSRF token, as every console page carries it (for htmx's requests)."""
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get(f"/console/decisions/{decision_id}").text)
    assert found, "no CSRF token on the decision page"
    return found.group(1)


@pytest.fixture(scope="module")
def clients(server: Server) -> Iterator[dict[str, httpx.Client]]:
    """An httpx client with a console session per person (closed at the end of the module)."""
    opened = {who: signed_in(server, who) for who in ("approver", "founder", "auditor", "viewer")}
    try:
        yield opened
    finally:
        for client in opened.values():
            client.close()


def test_an_approver_undoes_a_note_and_lands_on_its_compensation(
        server: Server, page: Page, clients: dict[str, httpx.Client], page_errors: list[str]) -> None:
    original = _decided(server, note("a3"), "executed")
    note_id = original["execution"]["summary"]["note_id"]
    sign_in(page, server, "approver", then=f"decisions/{original['decision_id']}")
    undo = page.locator("form.undo-form")
    expect(undo).to_contain_text("crm.delete_note: delete the note")
    violations = check_accessibility(page)
    assert not violations, describe(violations)

    page.get_by_role("button", name="Undo…").click()  # the confirmation step names what will run
    expect(page.get_by_role("heading", level=1)).to_have_text("Undo “note on rec_1”?")
    confirm = page.locator("form.confirm")
    expect(confirm).to_contain_text("crm.delete_note")
    expect(confirm.locator("tr", has_text="note_id")).to_contain_text(note_id)
    assert _compensations(server, original["decision_id"]) == []  # nothing is sent before the confirmation
    violations = check_accessibility(page)
    assert not violations, describe(violations)

    page.get_by_role("button", name="Yes, undo it").click()
    [entry] = _compensations(server, original["decision_id"])
    compensation_id = entry["subject"]
    expect(page).to_have_url(re.compile(rf"/console/decisions/{compensation_id}\?done=compensated$"))
    expect(page.locator("#decision-panel .status")).to_have_text("executed")
    expect(page.locator("#decision-message").get_by_role("status")).to_contain_text("Your undo is recorded")
    shown = summary("crm.delete_note", {"note_id": note_id})
    expect(page.locator("h1")).to_have_text(shown)
    expect(page.locator("form.undo-form")).to_have_count(0)  # deleting a note cannot itself be undone
    compensates = page.locator("p.compensates")
    expect(compensates).to_contain_text(f"Compensates note on rec_1 (crm.log_note, {original['decision_id']})")
    assert entry["data"]["packet"]["action"] == {"tool": "crm.delete_note", "params": {"note_id": note_id}}
    assert entry["data"]["packet"]["context"]["compensation"] == {"of": original["decision_id"],
                                                                  "tool": "crm.log_note"}

    compensates.get_by_role("link").click()  # the original now links to its compensation
    expect(page).to_have_url(re.compile(rf"/console/decisions/{original['decision_id']}$"))
    undone = page.locator("#decision-panel p.undone")
    expect(undone).to_contain_text(f"Undone by {shown}: executed")
    expect(page.get_by_role("button", name="Undo…")).to_have_count(0)
    undone.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/console/decisions/{compensation_id}$"))

    # a founder asking again (a stale form) gets the same compensation, not a second action
    founder = clients["founder"]
    again = founder.post(f"/console/decisions/{original['decision_id']}/compensate",
                         data={"csrf_token": _csrf(founder, original["decision_id"]), "confirm": "yes"})
    assert again.status_code == 303, again.text
    assert again.headers["location"] == f"/console/decisions/{compensation_id}?done=undone"
    assert len(_compensations(server, original["decision_id"])) == 1
    assert server.runtime.registry.call_ledger.count(compensation_id) == 1
    assert page_errors == []


def test_an_undo_asked_for_elsewhere_shows_on_the_open_page(server: Server, windows: Windows,
                                                            page_errors: list[str]) -> None:
    original = _decided(server, note("a3"), "executed")
    watching = windows.open("approver", then=f"decisions/{original['decision_id']}")
    expect(watching.get_by_role("button", name="Undo…")).to_be_visible()
    wait_for_stream(watching)
    answer = server.client("founder").post(f"/v1/actions/{original['decision_id']}/compensate")  # over the API
    assert answer.status_code == 200, answer.text
    undone = watching.locator("#decision-panel p.undone")
    expect(undone).to_contain_text("Undone by")  # the compensation's entry refreshed the panel
    expect(undone.get_by_role("link")).to_have_attribute("href", f"/console/decisions/{answer.json()['decision_id']}")
    expect(watching.get_by_role("button", name="Undo…")).to_have_count(0)
    assert page_errors == []


def test_an_undo_that_needs_an_approval_works_without_javascript(server: Server, browser: Browser) -> None:
    original = _decided(server, _price(5000, 3000), "pending_approval")  # 40% off: an approver's call
    approved = server.client("approver2").post(f"/v1/approvals/{original['decision_id']}/approve", json={})
    assert approved.status_code == 200 and approved.json()["status"] == "executed", approved.text
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, server, "approver", then=f"decisions/{original['decision_id']}")
        expect(page.locator("form.undo-form")).to_contain_text("set the price back")
        page.get_by_role("button", name="Undo…").click()
        expect(page.locator("form.confirm tr", has_text="new_price")).to_contain_text("$50.00")
        page.get_by_role("button", name="Yes, undo it").click()

        # back to $50.00 is a 67% rise: the compensation waits for an approver, with the reason
        expect(page.locator("#decision-panel .status")).to_have_text("pending approval")
        expect(page.locator("ol.reasons")).to_contain_text("price changes of more than 20% either way")
        expect(page.locator("p.compensates")).to_contain_text(original["decision_id"])
        expect(page.locator("form.undo-form")).to_have_count(0)  # a compensation is not itself undone here
        page.get_by_role("button", name="Approve").click()
        expect(page.locator("#decision-panel .status")).to_have_text("executed")

        page.goto(f"{server.console_url}decisions/{original['decision_id']}")
        expect(page.locator("#decision-panel p.undone")).to_contain_text(": executed")
    finally:
        context.close()
    [entry] = _compensations(server, original["decision_id"])
    compensation = server.client("a3").get(f"/v1/actions/{entry['subject']}").json()
    assert compensation["execution"]["summary"]["price"] == "50.00"


def test_only_approvers_and_founders_are_offered_undo_and_the_route_checks_again(
        server: Server, page: Page, windows: Windows, clients: dict[str, httpx.Client],
        page_errors: list[str]) -> None:
    original = _decided(server, note("a3"), "executed")
    path = f"decisions/{original['decision_id']}"
    sign_in(page, server, "viewer", then=path)
    auditor = windows.open("auditor", then=path)
    for each in (page, auditor):
        expect(each.locator("#decision-panel .status")).to_have_text("executed")
        expect(each.locator("p.reversible")).to_contain_text("Reversible.")
        expect(each.locator("main form")).to_have_count(0)
        expect(each.get_by_role("button", name="Undo…")).to_have_count(0)
    founder = windows.open("founder", then=path)  # a founder is offered it
    expect(founder.get_by_role("button", name="Undo…")).to_be_visible()

    for who in ("viewer", "auditor"):  # their own session and CSRF token: only the role stands in the way
        client = clients[who]
        answer = client.post(f"/console/{path}/compensate", data={"csrf_token": _csrf(client, original["decision_id"]),
                                                                  "confirm": "yes"})
        assert answer.status_code == 403, answer.text
        assert "Not allowed" in answer.text and "only an approver or a founder can do this" in answer.text
    assert _compensations(server, original["decision_id"]) == []
    assert page_errors == []


def test_what_cannot_be_undone_says_why(server: Server, page: Page, clients: dict[str, httpx.Client],
                                        page_errors: list[str]) -> None:
    executed = _decided(server, packet("a3", "stripe.refund", {"charge": "ch_1", "amount": 500, "currency": "usd"},
                                       evidence={"reconciled": True, "order_total": 500}), "executed")
    pending = _decided(server, refund("a2", 72000), "pending_approval")
    sign_in(page, server, "approver", then=f"decisions/{executed['decision_id']}")
    expect(page.locator("p.irreversible")).to_contain_text("Cannot be undone.")
    expect(page.locator("p.irreversible")).to_contain_text("a refund cannot be taken back")
    expect(page.get_by_role("button", name="Undo…")).to_have_count(0)

    client = clients["approver"]
    token = _csrf(client, executed["decision_id"])
    for decision_id, said in ((executed["decision_id"], "a refund cannot be taken back"),
                              (pending["decision_id"], "only an executed action can be compensated")):
        for step in ({}, {"confirm": "yes"}):  # the confirmation and the undo itself
            answer = client.post(f"/console/decisions/{decision_id}/compensate", data={"csrf_token": token, **step})
            assert answer.status_code == 409, answer.text
            alert = re.search(r'<p class="error" role="alert">([^<]*)</p>', answer.text)
            assert alert and said in alert.group(1), answer.text[:2000]
            assert "Traceback" not in answer.text
        assert _compensations(server, decision_id) == []
    missing = client.post("/console/decisions/dec_00000000000000000000000000/compensate",
                          data={"csrf_token": token, "confirm": "yes"})
    assert missing.status_code == 404 and "Not found" in missing.text
    assert page_errors == []


@pytest.mark.parametrize("forged", ["no token", "a wrong token", "another origin"])
def test_an_undo_without_the_console_s_csrf_token_is_refused(server: Server, clients: dict[str, httpx.Client],
                                                             forged: str) -> None:
    original = _decided(server, note("a3"), "executed")
    client = clients["approver"]
    token = _csrf(client, original["decision_id"])
    data, headers = {"csrf_token": token, "confirm": "yes"}, {}
    if forged == "no token":
        del data["csrf_token"]
    elif forged == "a wrong token":
        data["csrf_token"] = "x" * len(token)
    else:
        headers["Origin"] = "http://evil.example"
    answer = client.post(f"/console/decisions/{original['decision_id']}/compensate", data=data, headers=headers)
    assert answer.status_code == 403, answer.text
    assert "Request refused" in answer.text
    assert _compensations(server, original["decision_id"]) == []
