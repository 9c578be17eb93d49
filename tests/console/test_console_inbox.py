"""The inbox over HTTP: soonest expiry first, at most `INBOX_LIMIT` rows with a link to the rest,
and the pending count in the badge and the title."""

from __future__ import annotations

import re

import pytest

from console import queries
from console_support import give_passwords, signed_in
from gateway_server import Server, refund


def test_the_inbox_lists_the_soonest_to_expire_and_links_to_the_rest(
        console_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    give_passwords(console_server)
    ids = [console_server.client("a2").post("/v1/actions", json=refund("a2", 60_000 + i)).json()["decision_id"]
           for i in range(3)]
    monkeypatch.setattr(queries, "INBOX_LIMIT", 2)
    client = signed_in(console_server, "approver")
    try:
        page = client.get("/console/")
        assert page.status_code == 200
        shown = re.findall(r'<tr id="row-(dec_\w+)">', page.text)
        assert shown == ids[:2]  # same deadline rule: soonest first, then by id (created in order)
        assert "Showing the 2 that expire soonest of 3 pending." in page.text
        assert 'href="/console/activity?status=pending_approval"' in page.text
        assert "<title>Inbox (3) · Warden</title>" in page.text
        badge = client.get("/console/inbox/badge")
        assert re.search(r'id="pending-badge"[^>]*data-count="3"', badge.text)
        rows = client.get("/console/inbox/rows")
        assert re.findall(r'<tr id="row-(dec_\w+)">', rows.text) == ids[:2] and "<tbody" not in rows.text
    finally:
        client.close()
