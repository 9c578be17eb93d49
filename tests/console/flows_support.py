"""Helpers for the console's flow tests: one gateway per module, a clock tests can move, and more
signed-in browser windows (other people, other tabs) whose errors are collected like `page_errors`.

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        yield from module_console(tmp_path_factory, "name")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

import browser_support
from browser_support import free_port
from console_support import give_passwords, sign_in
from gateway_server import Server, server_config, start_server

TIMEOUT_MS = 10_000


class Clock:
    """UNIX seconds, `offset` ahead of the real time; `advance(seconds)` moves it on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def module_console(tmp_path_factory: Any, name: str, *, clock: Clock | None = None,
                   **overrides: Any) -> Iterator[Server]:
    """The body of a module-scoped fixture: a gateway with the console (every person has
    `console_support.PASSWORD`), stopped when the module is done."""
    tmp = tmp_path_factory.mktemp(name)
    port = free_port()
    settings = server_config(f"sqlite:///{tmp / 'warden.db'}", tmp, console=True,
                             public_url=f"http://localhost:{port}", **overrides)
    server, stop = start_server(settings, port=port, clock=clock)
    try:
        give_passwords(server)
        yield server
    finally:
        stop()


def watch(page: Page, errors: list[str]) -> Page:
    """Collect `page`'s errors into `errors` (`browser_support.watch`) and track its event stream."""
    return track_stream(browser_support.watch(page, errors))


def track_stream(page: Page) -> Page:
    """Mark `window.__sseOpen` when a page's event stream opens (see `wait_for_stream`)."""
    page.add_init_script("""document.addEventListener('htmx:sseOpen', function (event) {
        window.__sseOpen = true;
        event.detail.source.addEventListener('ready', function () { window.__ready = true; });
    });""")
    return page


class Windows:
    """More browser windows for one test: `open(who)` gives a page in a new context (another
    person, their own cookies) signed in as `who`; `tab(page)` another tab beside `page`."""

    def __init__(self, browser: Browser, server: Server, errors: list[str]) -> None:
        self.browser = browser
        self.server = server
        self.errors = errors
        self.contexts: list[BrowserContext] = []

    def open(self, who: str, then: str = "") -> Page:
        context = self.browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                           timezone_id="UTC")
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = watch(context.new_page(), self.errors)
        sign_in(page, self.server, who, then=then)
        return page

    def tab(self, beside: Page, then: str = "") -> Page:
        page = watch(beside.context.new_page(), self.errors)
        page.goto(self.server.console_url + then)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def wait_for_stream(page: Page) -> None:
    """Until `page`'s event stream is open (its `ready` event came) and any refresh it asked for on
    connecting is done (after `track_stream(page)`, or a page from `Windows`): a refresh landing
    later would reset a form the test is filling in."""
    page.wait_for_function("() => window.__ready === true && !document.querySelector('.htmx-request')",
                           timeout=10000)


def unexpected(errors: list[str], *statuses: int, stream_cut: bool = False) -> list[str]:
    """`errors` without Chromium's "Failed to load resource" lines for the answers a test expects
    (a 409 for an approval that came too late, a 401 for a wrong password), and with `stream_cut`
    without htmx's report of an event stream cut short (a page leaving while its stream is open)."""
    expected = tuple(f"the server responded with a status of {status} " for status in statuses)
    return [e for e in errors
            if not (e.startswith("console: Failed to load resource") and any(x in e for x in expected))
            and not (stream_cut and e.startswith("console: [object Event]") and "htmx.min.js" in e)]
