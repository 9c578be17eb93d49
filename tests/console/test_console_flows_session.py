"""Signing in and out of the console: a wrong password, sign-out ending the session on the server,
and a session's idle timeout and absolute lifetime (the runtime's clock is moved, not waited for)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext, Error as PlaywrightError, Page, expect

from console_support import PASSWORD, sign_in
from flows_support import Clock, module_console, track_stream, unexpected, wait_for_stream
from gateway_server import Server

IDLE = 60
LIFETIME = 300


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[Server]:
    yield from module_console(tmp_path_factory, "session", clock=clock, console_session_idle_seconds=IDLE,
                              console_session_max_seconds=LIFETIME)


def _session_cookie(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "warden_session")


def _open_after_expiry(page: Page, url: str) -> None:
    """Open `url` once the session has ended. The open page may get there first: its live parts
    (refreshing on the stream) are answered with a redirect to the sign-in page, which can cut
    this navigation short."""
    try:
        page.goto(url)
    except PlaywrightError as exc:
        if "ERR_ABORTED" not in exc.message and "interrupted by another navigation" not in exc.message:
            raise


def _expect_sign_in_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.get_by_role("heading", name="Sign in to Warden")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_signing_in_shows_the_inbox_and_signing_out_ends_the_session_on_the_server(
        server: Server, page: Page, context: BrowserContext, page_errors: list[str]) -> None:
    page.goto(server.console_url)  # not signed in: the sign-in form, then back here
    expect(page.get_by_role("heading", name="Sign in to Warden")).to_be_visible()
    page.get_by_label("Email").fill("approver@test.local")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("approver@test.local")
    token = _session_cookie(context)

    cookies = {"warden_session": token}
    with httpx.Client(base_url=f"http://localhost:{server.port}", cookies=cookies) as client:
        assert client.get("/console/").status_code == 200  # the cookie works outside the browser too

        page.get_by_role("button", name="Sign out").click()
        _expect_sign_in_page(page)
        page.goto(server.console_url)
        _expect_sign_in_page(page)

        again = client.get("/console/")  # the old cookie, replayed: the session is gone on the server
        assert again.status_code == 303
        assert again.headers["location"].startswith("/console/login")
        assert client.get("/console/activity").status_code == 303
        with client.stream("GET", "/console/events") as stream:  # a page's live feed: told to reload
            assert stream.status_code == 200
            assert "event: signed-out" in next(stream.iter_text())
    assert page_errors == []


def test_a_wrong_password_says_so_and_keeps_the_email(server: Server, page: Page, page_errors: list[str]) -> None:
    page.goto(server.console_url + "login")
    page.get_by_label("Email").fill("viewer@test.local")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("password")
    expect(page.get_by_label("Email")).to_have_value("viewer@test.local")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.get_by_label("Password").fill(PASSWORD)  # the right one still works afterwards
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert unexpected(page_errors, 401) == []  # the wrong password's answer


def test_a_session_left_idle_too_long_ends(server: Server, clock: Clock, page: Page,
                                           page_errors: list[str]) -> None:
    sign_in(page, server, "founder", then="activity")
    clock.advance(IDLE - 20)
    page.goto(server.console_url + "agents")  # a request in time keeps the session alive
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    clock.advance(IDLE - 20)
    page.goto(server.console_url + "activity")
    expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()
    clock.advance(IDLE + 1)
    _open_after_expiry(page, server.console_url + "agents")
    _expect_sign_in_page(page)
    assert unexpected(page_errors, 401, stream_cut=True) == []


def test_a_session_ends_after_its_lifetime_however_busy(server: Server, clock: Clock, page: Page,
                                                        page_errors: list[str]) -> None:
    sign_in(page, server, "auditor")
    busy = 0
    while busy + IDLE - 10 < LIFETIME:  # never idle for long, yet past the lifetime in the end
        clock.advance(IDLE - 10)
        busy += IDLE - 10
        page.goto(server.console_url + "audit")
        expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    clock.advance(LIFETIME - busy + 1)
    _open_after_expiry(page, server.console_url + "audit")
    _expect_sign_in_page(page)
    assert unexpected(page_errors, 401, stream_cut=True) == []


def test_an_open_page_whose_session_ends_goes_to_the_sign_in_page_by_itself(
        server: Server, clock: Clock, page: Page, context: BrowserContext, page_errors: list[str]) -> None:
    track_stream(page)
    sign_in(page, server, "approver2")
    wait_for_stream(page)
    clock.advance(IDLE + 1)  # the laptop slept; its session ended meanwhile
    # the live feed's connection drops (as over a sleep) and htmx's SSE extension reconnects
    page.evaluate("""() => { const source = document.body['htmx-internal-data'].sseEventSource;
                             source.close(); source.onerror(new Event('error')); }""")
    _expect_sign_in_page(page)
    expect(page.get_by_label("Email")).to_be_visible()
    assert unexpected(page_errors, 401, stream_cut=True) == []
