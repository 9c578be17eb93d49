"""Fixtures for the console's browser tests (Playwright driving Debian's Chromium).

- `browser` (session; one per pytest-xdist worker): headless Chromium from /usr/bin/chromium. A
  missing Chromium fails the tests (run .ci/run or `apt-get install chromium`); nothing is skipped.
- `context`, `page`: a fresh browser context (cookies, storage, authenticators) and page per test,
  10 s default timeout. When a test fails, the page's screenshot is saved as failure.png in its
  tmp_path. `page_errors` lists the page's uncaught exceptions and console errors.
- `console_server`: a real gateway (SQLite, the console mounted by `create_app`) whose
  `console_url` is http://localhost:PORT/console/ and whose public_url is http://localhost:PORT:
  browsers must open it as localhost, never 127.0.0.1 (WebAuthn refuses IP addresses).
- `static_site` (session): tests/console/pages served at `static_site.url` (http://localhost:PORT),
  with the console's vendored assets under /vendor/ and a strict Content-Security-Policy.

Helpers: `browser_support.virtual_authenticator(page)` (a passkey authenticator through CDP),
`axe.check_accessibility(page)` (axe-core's serious and critical violations).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from playwright.sync_api import Browser, BrowserContext, Error, Page, sync_playwright  # noqa: E402

from browser_support import StaticSite, free_port, launch_browser, watch  # noqa: E402
from gateway_server import Server, server_config, start_server  # noqa: E402

TIMEOUT_MS = 10_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_failed] = report.failed


_failed = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    playwright = sync_playwright().start()
    try:
        browser = launch_browser(playwright)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(context: BrowserContext, page_errors: list[str], request: pytest.FixtureRequest,
         tmp_path: Path) -> Iterator[Page]:
    page = watch(context.new_page(), page_errors)
    yield page
    if request.node.stash.get(_failed, False) and not page.is_closed():
        try:
            page.screenshot(path=tmp_path / "failure.png", full_page=True)
        except Error:
            pass


@pytest.fixture(scope="session")
def static_site() -> Iterator[StaticSite]:
    site = StaticSite()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def console_settings_overrides() -> dict[str, Any]:
    """Settings for `console_server` beyond the test defaults; override in a module to change them."""
    return {}


@pytest.fixture
def console_server(tmp_path: Path, console_settings_overrides: dict[str, Any]) -> Iterator[Server]:
    port = free_port()
    settings = server_config(f"sqlite:///{tmp_path / 'warden.db'}", tmp_path, console=True,
                             public_url=f"http://localhost:{port}", **console_settings_overrides)
    handle, stop = start_server(settings, port=port)
    try:
        yield handle
    finally:
        stop()


@pytest.fixture
def windows(browser: Browser, server: Server, page_errors: list[str]) -> Iterator[Any]:
    """More browser windows and tabs for a test (`flows_support.Windows`), over the module's `server`."""
    from flows_support import Windows

    opened = Windows(browser, server, page_errors)
    try:
        yield opened
    finally:
        opened.close()
