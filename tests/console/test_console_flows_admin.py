"""The founders' and auditors' pages: the kill switch (with its banner everywhere, live), agents'
autonomy, the activity page's filters, paging and live feed, incidents and their acknowledgement,
and the audit page's checkpoint, digest and export (verified offline by `warden audit verify`)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_support import REPO
from console_support import sign_in
from flows_support import Windows, module_console, wait_for_stream, track_stream
from gateway.store.identities import get_agent
from gateway_server import Server, audit, note, packet, refund
from ledger.database import read_only


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_console(tmp_path_factory, "admin")


def _banner(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#banner .killswitch-banner")


def test_the_kill_switch_is_engaged_with_a_reason_shows_everywhere_and_is_released(
        server: Server, page: Page, windows: Windows, page_errors: list[str]) -> None:
    pending = server.client("a2").post("/v1/actions", json=refund("a2", 71000)).json()["decision_id"]
    track_stream(page)
    sign_in(page, server, "founder", then="kill-switch")
    other_tab = windows.tab(page, "activity")  # already open before the switch is engaged
    wait_for_stream(other_tab)
    expect(_banner(other_tab)).to_have_count(0)
    try:
        page.get_by_label("Reason (required; goes into the audit log and the banner)").fill("card testing attack")
        page.get_by_role("button", name="Engage the kill switch…").click()
        expect(page.get_by_role("heading", name="Engage the kill switch?")).to_be_visible()  # the confirmation step
        expect(_banner(page)).to_have_count(0)  # nothing changed yet
        page.get_by_role("button", name="Yes, engage it").click()
        expect(page.locator(".state")).to_contain_text("engaged")
        expect(_banner(page)).to_contain_text("card testing attack")
        expect(_banner(other_tab)).to_contain_text("card testing attack")  # live, without a reload
        assert server.client("auditor").get("/v1/kill-switch").json()["engaged"] is True

        for where in ("", "activity", "agents", "audit", f"decisions/{pending}", "incidents"):
            page.goto(server.console_url + where)
            expect(_banner(page)).to_contain_text("Kill switch engaged")
            expect(_banner(page)).to_contain_text("card testing attack")

        page.goto(server.console_url + "kill-switch")
        page.get_by_label("Reason (required; goes into the audit log and the banner)").fill("attack blocked")
        page.get_by_role("button", name="Release the kill switch…").click()
        expect(page.get_by_role("heading", name="Release the kill switch?")).to_be_visible()
        page.get_by_role("button", name="Yes, release it").click()
        expect(page.locator(".state")).to_contain_text("released")
        expect(_banner(page)).to_have_count(0)
        expect(_banner(other_tab)).to_have_count(0)
    finally:  # never leave it engaged for the module's other tests
        if server.client("auditor").get("/v1/kill-switch").json()["engaged"]:
            server.client("founder").post("/v1/kill-switch", json={"engaged": False})
    changes = audit(server, "kill_switch")
    assert [(e["data"]["engaged"], e["actor"]) for e in changes[-2:]] == [
        (True, "founder@test.local"), (False, "founder@test.local")]
    assert page_errors == []


def test_a_founder_changes_an_agents_autonomy_and_every_open_agents_page_shows_it(
        server: Server, page: Page, windows: Windows, page_errors: list[str]) -> None:
    watching = windows.open("viewer", then="agents")  # someone else, with the page open
    wait_for_stream(watching)
    expect(watching.get_by_role("button", name="Set autonomy")).to_have_count(0)  # a viewer changes nothing
    track_stream(page)
    sign_in(page, server, "founder", then="agents")
    wait_for_stream(page)
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="narrow", exact=True))
    expect(row.get_by_role("cell").nth(1)).to_have_text("A2")
    row.get_by_label("Autonomy of narrow").select_option("A1")
    row.get_by_role("button", name="Set autonomy").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="narrow", exact=True))
    expect(row.get_by_role("cell").nth(1)).to_have_text("A1")
    watched = watching.get_by_role("row").filter(has=watching.get_by_role("cell", name="narrow", exact=True))
    expect(watched.get_by_role("cell").nth(1)).to_have_text("A1")  # live
    expect(watching.locator("#agents-table table")).to_have_count(1)

    with read_only(server.runtime.db.connect()) as conn:
        assert get_agent(conn, "narrow").agent.autonomy.name == "A1"
    changed = audit(server, "agent_changed", "narrow")
    assert [(e["data"]["field"], e["data"]["old"], e["data"]["new"], e["actor"]) for e in changed] == [
        ("autonomy", "A2", "A1", "founder@test.local")]
    # the gateway decides with the new level at once: an L1 CRM change now waits for an approver
    asked = server.client("narrow").post("/v1/actions", json=packet(
        "narrow", "crm.upsert_contact", {"email": "c@example.com", "properties": {"name": "C"}}))
    assert asked.json()["status"] == "pending_approval", asked.text
    assert page_errors == []


def _statuses(page: Page) -> list[str]:
    return page.locator("table.list tbody tr td:nth-child(5)").all_text_contents()


def test_activity_filters_pages_and_shows_new_decisions_live(server: Server, page: Page,
                                                             page_errors: list[str]) -> None:
    a3 = server.client("a3")
    with ThreadPoolExecutor(8) as pool:  # 55 notes (L0, executed at once) from a3
        answers = list(pool.map(lambda _i: a3.post("/v1/actions", json=note("a3")), range(55)))
    assert {a.json()["status"] for a in answers} == {"executed"}
    waiting = server.client("a4").post("/v1/actions", json=refund("a4", 80000)).json()["decision_id"]

    track_stream(page)
    sign_in(page, server, "auditor", then="activity")
    page.get_by_label("Agent").select_option("a3")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"agent=a3"))
    agents = page.locator("table.list tbody tr td:nth-child(3)")
    expect(agents).to_have_count(50)  # one page
    assert set(agents.all_text_contents()) == {"a3"}
    page.get_by_role("link", name="Older").click()
    expect(agents).to_have_count(5)
    assert set(agents.all_text_contents()) == {"a3"}
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(agents).to_have_count(50)

    page.goto(server.console_url + "activity")
    page.get_by_label("Status").select_option("pending_approval")
    page.get_by_label("Risk").select_option("L2")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f"a[href$='/decisions/{waiting}']")).to_be_visible()
    assert set(_statuses(page)) == {"pending_approval"}
    assert set(page.locator("table.list tbody tr td:nth-child(4)").all_text_contents()) == {"L2"}
    page.get_by_label("Risk").select_option("L0")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No decision matches.")).to_be_visible()

    page.goto(server.console_url + "activity")
    wait_for_stream(page)
    fresh = server.client("a1").post("/v1/actions", json=refund("a1", 12000)).json()["decision_id"]
    live = page.locator("#feed li").filter(has=page.locator(f"a[href$='/decisions/{fresh}']")).first
    expect(live).to_contain_text("a1")
    expect(live).to_contain_text("refund $120.00 on ch_test")
    assert page_errors == []


def _incident_for(server: Server) -> tuple[str, int]:
    """A refund whose proof claims PASS for an invariant Warden finds FAIL: denied, and an incident."""
    body = packet("a2", "stripe.refund", {"charge": "ch_test", "amount": 3000, "currency": "usd"},
                  evidence={"reconciled": False, "order_total": 3000},
                  claims=[{"id": "refund_reconciled", "status": "PASS"}])
    decision = server.client("a2").post("/v1/actions", json=body).json()
    assert decision["status"] == "denied", decision
    found = server.client("auditor").get("/v1/incidents").json()
    items = found["incidents"] if isinstance(found, dict) else found
    incident = next(i for i in items if i.get("decision_id") == decision["decision_id"])
    return decision["decision_id"], int(incident["id"])


def test_an_incident_is_listed_opened_and_acknowledged_by_a_founder_only(
        server: Server, page: Page, windows: Windows, page_errors: list[str]) -> None:
    decision_id, incident_id = _incident_for(server)

    approver = windows.open("approver", then="incidents")
    row = approver.get_by_role("row").filter(has=approver.get_by_role("link", name=str(incident_id), exact=True))
    expect(row).to_contain_text("proof_mismatch")
    expect(row).to_contain_text("open")
    row.get_by_role("link", name=str(incident_id), exact=True).click()
    expect(approver.get_by_role("heading", name=f"Incident {incident_id}: proof mismatch")).to_be_visible()
    expect(approver.get_by_role("button", name="Acknowledge")).to_have_count(0)  # a founder's act

    sign_in(page, server, "founder", then="incidents?open=true")
    page.get_by_role("link", name=str(incident_id), exact=True).click()
    expect(page.get_by_text("claimed PASS for refund_reconciled")).to_be_visible()
    expect(page.get_by_role("link", name=decision_id)).to_be_visible()
    page.get_by_label("Note (optional; goes into the audit log)").fill("agent prompt fixed")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("row", name=re.compile("Acknowledged"))).to_contain_text("by founder@test.local")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)

    entries = audit(server, "incident_acknowledged")
    assert any(e["actor"] == "founder@test.local" and "agent prompt fixed" in str(e["data"]) for e in entries), entries
    assert page_errors == []


def test_the_audit_page_shows_the_checkpoint_and_digest_and_its_export_verifies(
        server: Server, page: Page, tmp_path: Path, page_errors: list[str]) -> None:
    server.runtime.checkpointer.tick(server.runtime.db)
    sign_in(page, server, "auditor", then="audit")
    checkpoint = page.locator("table.kv")
    expect(checkpoint.get_by_role("row", name=re.compile("Tree size"))).to_contain_text("entries")
    expect(checkpoint.get_by_role("row", name=re.compile("Root hash"))).to_be_visible()
    expect(page.locator("main")).to_contain_text(server.runtime.policies.digest)
    key = server.runtime.signer.verifier_key
    expect(page.locator("main")).to_contain_text(key)

    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download an export (.tar.gz)").click()
    download = downloading.value
    assert download.suggested_filename == "warden-audit-export.tar.gz"
    archive = tmp_path / download.suggested_filename
    download.save_as(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "out", filter="data")
    verified = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify",
                               str(tmp_path / "out" / "warden-audit-export"), "--key", key],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert page_errors == []
