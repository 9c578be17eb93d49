"""An approval left unanswered: its countdown reaches "expired" and the gateway's housekeeping
(every second) expires it, which takes the row out of every open inbox, live. Refunds over $500
expire after 4 s here (a copy of the shipped policies)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from console_support import sign_in
from flows_support import module_console, track_stream, wait_for_stream
from gateway_server import Server, policies_with, refund


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    policies = policies_with(tmp_path_factory.mktemp("expiry-policies"),
                             {"payments.policy": ("expires in 4h", "expires in 4s")})
    yield from module_console(tmp_path_factory, "expiry", policy_dir=policies)


def test_the_countdown_reaches_expired_and_the_row_leaves_the_inbox(server: Server, page: Page,
                                                                    page_errors: list[str]) -> None:
    # The browser's clock runs 2.5 s ahead of the gateway's, so the countdown (ticking each second)
    # shows "expired" before the housekeeping takes the row away, however the two ticks fall.
    page.clock.install(time=time.time() + 2.5)
    track_stream(page)
    sign_in(page, server, "approver")
    wait_for_stream(page)
    answer = server.client("a2").post("/v1/actions", json=refund("a2", 90000))
    assert answer.json()["status"] == "pending_approval", answer.text
    decision_id = answer.json()["decision_id"]
    countdown = page.locator(f"#row-{decision_id} time.countdown")
    expect(countdown).to_have_text(re.compile(r"^in 0m [1-4]s$"), timeout=5000)  # counting down
    expect(countdown).to_have_text("expired", timeout=6000)
    expect(countdown).to_have_class(re.compile(r"\bexpired\b"))
    expect(page.locator(f"#row-{decision_id}")).to_have_count(0, timeout=8000)  # live, no reload
    assert server.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "expired"
    assert page_errors == []
