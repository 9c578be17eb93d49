"""The browser harness itself, proven on static pages before the console exists: Chromium starts,
a page is driven, the vendored htmx and its SSE extension work under a strict CSP, screenshots are
taken, axe finds what it should, and the gateway answers a browser at http://localhost:PORT."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from axe import check_accessibility, describe
from browser_support import REPO, StaticSite
from gateway_server import Server


def test_a_page_is_driven_photographed_and_accessible(page: Page, static_site: StaticSite, tmp_path: Path,
                                                      page_errors: list[str]) -> None:
    page.goto(f"{static_site.url}/smoke.html")
    expect(page).to_have_title("Harness smoke page")

    page.get_by_role("button", name="Count").click()
    page.get_by_role("button", name="Count").click()
    expect(page.locator("#clicks")).to_have_text("2")

    page.get_by_role("button", name="Load a fragment").click()  # htmx: hx-get, swapped in
    expect(page.locator("#fragment")).to_have_text("Loaded by htmx")
    expect(page.locator("#streamed")).to_have_text("streamed")  # the SSE extension: one event swapped in

    shot = tmp_path / "smoke.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    violations = check_accessibility(page)
    assert not violations, describe(violations)
    assert page.evaluate("() => window.htmx.version") == "2.0.11"
    assert page_errors == []


def test_axe_reports_serious_and_critical_violations(page: Page, static_site: StaticSite) -> None:
    page.goto(f"{static_site.url}/inaccessible.html")
    found = {v["id"]: v["impact"] for v in check_accessibility(page)}
    assert found == {"button-name": "critical", "image-alt": "critical"}, found
    assert check_accessibility(page, include="h1") == []


def test_the_gateway_answers_a_browser_at_localhost(page: Page, console_server: Server) -> None:
    assert console_server.console_url == f"http://localhost:{console_server.port}/console/"
    assert console_server.runtime.settings.public_url == f"http://localhost:{console_server.port}"
    response = page.goto(f"http://localhost:{console_server.port}/docs")
    assert response is not None and response.ok
    expect(page).to_have_title(re.compile("Warden"))


def test_vendored_files_are_the_recorded_ones() -> None:
    for record in (REPO / "console/static/vendor/VENDORED.md", REPO / "tests/console/assets/VENDORED.md"):
        rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", record.read_text(encoding="utf-8"), re.M)
        assert rows, record
        for name, digest in rows:
            assert hashlib.sha256((record.parent / name).read_bytes()).hexdigest() == digest, name
