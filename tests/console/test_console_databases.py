"""The console's pages and acts over HTTP on both databases: sign in, the inbox, a decision, an
approval that executes, activity paged by key, incidents, agents, the kill switch, the audit page
and an export. (The browser tests run on SQLite; these show the same reads and writes work on
PostgreSQL.)"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest

from console_support import give_passwords, signed_in
from gateway_server import Server, module_server, note, packet, refund


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for running in module_server(request, tmp_path_factory, "console-db", console=True):
        give_passwords(running)
        yield running


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_approve_from_the_console_and_read_every_page(server: Server) -> None:
    agent = server.client("a2")
    decision_id = agent.post("/v1/actions", json=refund("a2", 72_000)).json()["decision_id"]
    for _ in range(55):
        assert agent.post("/v1/actions", json=note("a2")).status_code == 200
    claimed = packet("a2", "stripe.refund", {"charge": "ch_x", "amount": 1000, "currency": "usd"},
                     evidence={"reconciled": False},
                     claims=[{"id": "refund_reconciled", "status": "PASS", "value": True}])
    assert agent.post("/v1/actions", json=claimed).json()["status"] == "denied"  # a proof mismatch: an incident

    approver, founder = signed_in(server, "approver"), signed_in(server, "founder")
    try:
        inbox = approver.get("/console/")
        assert inbox.status_code == 200 and f'id="row-{decision_id}"' in inbox.text
        page = approver.get(f"/console/decisions/{decision_id}")
        assert page.status_code == 200 and "refund $720.00 on ch_test" in page.text
        done = approver.post(f"/console/decisions/{decision_id}/approve",
                             data={"csrf_token": csrf(page), "comment": "checked"})
        assert done.status_code == 303
        assert agent.get(f"/v1/actions/{decision_id}").json()["status"] in ("executing", "executed")

        first = approver.get("/console/activity")
        assert first.text.count('href="/console/decisions/dec_') == 50
        older = re.search(r'href="(/console/activity\?[^"]*before=[^"]+)" rel="next"', first.text)
        assert older is not None
        second = approver.get(older.group(1).replace("&amp;", "&"))
        assert second.status_code == 200 and second.text.count('href="/console/decisions/dec_') >= 7
        assert set(re.findall(r"/console/decisions/(dec_\w+)", first.text)).isdisjoint(
            re.findall(r"/console/decisions/(dec_\w+)", second.text))

        incidents = founder.get("/console/incidents")
        incident = re.search(r'href="/console/incidents/(\d+)"', incidents.text)
        assert incident is not None
        detail = founder.get(f"/console/incidents/{incident.group(1)}")
        acknowledged = founder.post(f"/console/incidents/{incident.group(1)}/acknowledge",
                                    data={"csrf_token": csrf(detail), "note": "seen"})
        assert acknowledged.status_code == 303
        assert "by founder@test.local" in founder.get(f"/console/incidents/{incident.group(1)}").text

        agents = founder.get("/console/agents")
        assert founder.post("/console/agents/a1/autonomy", data={"csrf_token": csrf(agents),
                                                                  "autonomy": "A2"}).status_code == 303
        switch = founder.get("/console/kill-switch")
        engaged = founder.post("/console/kill-switch", data={"csrf_token": csrf(switch), "engage": "true",
                                                             "reason": "drill", "confirm": "yes"})
        assert engaged.status_code == 303 and "Kill switch engaged" in founder.get("/console/").text
        founder.post("/console/kill-switch", data={"csrf_token": csrf(switch), "engage": "false",
                                                   "reason": "drill over", "confirm": "yes"})
        assert "Kill switch engaged" not in founder.get("/console/").text

        def latest_root() -> str:  # of the latest signed checkpoint, as the API serves it
            return base64.b64decode(server.client("auditor").get("/v1/audit/checkpoint").text.split("\n")[2]).hex()

        before = latest_root()
        audit = founder.get("/console/audit")
        assert audit.status_code == 200 and "Active policies" in audit.text
        roots = {before, latest_root()}  # (one may have been signed meanwhile)
        assert any(f'{root}</code> (signature verified)' in audit.text for root in roots), roots
        export = founder.get("/console/audit/export")
        assert export.status_code == 200 and export.headers["content-type"] == "application/gzip", export.text[:300]
    finally:
        approver.close()
        founder.close()


def test_filters_that_cannot_be_used_are_named_and_the_rest_apply(server: Server) -> None:
    client = signed_in(server, "viewer")
    try:
        answer = client.get("/console/activity", params={"since": "yesterday", "status": "approved",
                                                         "risk": "L2", "before": "not-a-key"})
        assert answer.status_code == 422
        assert "from &#39;yesterday&#39; is not a date and time" in answer.text
        assert "status &#39;approved&#39; is not one of executed" in answer.text
        assert "the page link is damaged" in answer.text
        assert '<option value="L2" selected>' in answer.text  # the usable filter still applies
        assert client.get("/console/activity", params={"since": "2026-01-01", "risk": "L0"}).status_code == 200
    finally:
        client.close()
