"""Every console page passes axe-core without serious or critical violations (labels, contrast,
landmarks, names), in the states that matter: an inbox with a row, a decision someone can act on,
the kill switch's confirmation step, an incident, an error page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from axe import check_accessibility, describe
from console_support import sign_in
from gateway_server import Server, packet, refund
from flows_support import module_console, unexpected


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_console(tmp_path_factory, "a11y")


def _check(page: Page, found: dict[str, str], name: str) -> None:
    violations = check_accessibility(page)
    if violations:
        found[name] = describe(violations)


def test_the_sign_in_and_error_pages_are_accessible(server: Server, page: Page, page_errors: list[str]) -> None:
    found: dict[str, str] = {}
    page.goto(server.console_url + "login")
    _check(page, found, "sign-in")
    page.get_by_label("Email").fill("nobody@test.local")
    page.get_by_label("Password").fill("a wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    _check(page, found, "sign-in with an error")
    page.goto(server.console_url + "invite/no-such-invite")
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
    _check(page, found, "error page, signed out")
    assert not found, "\n".join(f"{name}:\n{text}" for name, text in found.items())
    assert unexpected(page_errors, 401, 404) == []


@pytest.fixture(scope="module")
def data(server: Server) -> dict[str, str]:
    """A pending refund, a denied one that opened an incident, and that incident's id."""
    pending = server.client("a2").post("/v1/actions", json=refund("a2", 72000)).json()["decision_id"]
    denied = server.client("a2").post("/v1/actions", json=packet(
        "a2", "stripe.refund", {"charge": "ch_test", "amount": 3000, "currency": "usd"},
        evidence={"reconciled": False}, claims=[{"id": "refund_reconciled", "status": "PASS"}])).json()
    incident = server.client("auditor").get("/v1/incidents").json()[0]["id"]
    return {"pending": pending, "denied": denied["decision_id"], "incident": str(incident)}


def _walk(page: Page, server: Server, steps: list[tuple[str, str, Callable[[], None]]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, where, ready in steps:
        page.goto(server.console_url + where)
        ready()
        _check(page, found, name)
    return found


def _report(found: dict[str, str]) -> str:
    return "\n".join(f"{name}:\n{text}" for name, text in found.items())


def test_the_inbox_and_decision_pages_are_accessible(server: Server, data: dict[str, str], page: Page,
                                                    page_errors: list[str]) -> None:
    sign_in(page, server, "founder")
    found = _walk(page, server, [
        ("inbox with a row", "", lambda: expect(page.locator(f"#row-{data['pending']}")).to_be_visible()),
        ("denied decision", f"decisions/{data['denied']}",
         lambda: expect(page.locator("#decision-panel .status")).to_have_text("denied")),
        ("decision to decide", f"decisions/{data['pending']}",
         lambda: expect(page.get_by_role("button", name="Approve")).to_be_visible()),
    ])
    page.get_by_label("Comment (optional)").fill("fine")  # the decision's answer, in place
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#decision-message").get_by_role("status")).to_be_visible()
    _check(page, found, "decision after approving")
    assert not found, _report(found)
    assert page_errors == []


def test_the_activity_incident_and_kill_switch_pages_are_accessible(
        server: Server, data: dict[str, str], page: Page, page_errors: list[str]) -> None:
    incident = data["incident"]
    sign_in(page, server, "founder")
    found = _walk(page, server, [
        ("activity", "activity", lambda: expect(page.get_by_role("heading", name="Decisions")).to_be_visible()),
        ("incidents", "incidents",
         lambda: expect(page.get_by_role("link", name=incident, exact=True)).to_be_visible()),
        ("incident", f"incidents/{incident}",
         lambda: expect(page.get_by_role("button", name="Acknowledge")).to_be_visible()),
        ("kill switch", "kill-switch",
         lambda: expect(page.get_by_role("button", name="Engage the kill switch…")).to_be_visible()),
    ])
    page.get_by_label("Reason (required; goes into the audit log and the banner)").fill("a drill")
    page.get_by_role("button", name="Engage the kill switch…").click()  # the confirmation step only
    expect(page.get_by_role("heading", name="Engage the kill switch?")).to_be_visible()
    _check(page, found, "kill switch confirmation")
    assert not found, _report(found)
    assert page_errors == []


def test_the_agents_audit_proof_and_error_pages_are_accessible(server: Server, page: Page,
                                                              page_errors: list[str]) -> None:
    sign_in(page, server, "founder")
    found = _walk(page, server, [
        ("agents", "agents", lambda: expect(page.get_by_role("button", name="Set autonomy").first).to_be_visible()),
        ("audit", "audit", lambda: expect(page.get_by_role("heading", name="Audit log")).to_be_visible()),
        ("proof", "audit/proof?seq=0",
         lambda: expect(page.get_by_role("heading", name="Inclusion proof for entry #0")).to_be_visible()),
        ("error page", "decisions/dec_nosuch",
         lambda: expect(page.get_by_role("heading", name="Not found")).to_be_visible()),
    ])
    assert not found, _report(found)
    assert unexpected(page_errors, 404) == []
