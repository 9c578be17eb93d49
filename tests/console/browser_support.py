"""Browser helpers for the console tests (fixtures in tests/console/conftest.py).

- `launch_browser(playwright)`: Debian's Chromium (never a Playwright download), headless, with the
  flags a closed network needs; fails the test with what to install when Chromium is missing.
- `virtual_authenticator(page)`: a CTAP2 platform authenticator (resident keys, user verification)
  through the DevTools protocol, so passkey ceremonies run without a person; `credentials(page,
  id)` lists what it holds.
- `StaticSite`: a directory served over http://localhost:PORT, for pages that prove the harness
  (tests/console/pages/) before or beside the console; `/vendor/` is console/static/vendor/.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, CDPSession, ConsoleMessage, Error, Page, Playwright

CHROMIUM = os.environ.get("WARDEN_TEST_CHROMIUM", "/usr/bin/chromium")

# Headless, and quiet on a closed network: no QUIC, no background fetches, no component updates.
# `localhost` is mapped to 127.0.0.1 (where the test servers listen) whatever /etc/hosts says, so
# pages are opened as http://localhost:PORT: a secure context over plain HTTP, and a name WebAuthn
# accepts as relying party ID (it refuses IP addresses).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP localhost 127.0.0.1",
]

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "console" / "static" / "vendor"
PAGES = Path(__file__).resolve().parent / "pages"


def launch_browser(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
                    "(run .ci/run, or `apt-get install chromium`). Playwright's own browser "
                    "download is not used.", pytrace=False)
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # noqa: BLE001 - reported with what to do
        pytest.fail(f"Chromium at {CHROMIUM} did not start ({exc}); reinstall it with .ci/run or "
                    "`apt-get install chromium`.", pytrace=False)


# The DevTools session of each page's authenticators: the virtual authenticators live as long as
# the session that added them, so it is kept with the page.
_sessions: weakref.WeakKeyDictionary[Page, CDPSession] = weakref.WeakKeyDictionary()


def _session(page: Page) -> CDPSession:
    if page not in _sessions:
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        _sessions[page] = cdp
    return _sessions[page]


def virtual_authenticator(page: Page, **options: Any) -> str:
    """Add a virtual authenticator to `page` (a platform passkey with user verification that
    succeeds, unless `options` say otherwise, e.g. isUserVerified=False); returns its id."""
    settings = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True, **options}
    reply = _session(page).send("WebAuthn.addVirtualAuthenticator", {"options": settings})
    return str(reply["authenticatorId"])


def credentials(page: Page, authenticator_id: str) -> list[dict[str, Any]]:
    """The credentials the virtual authenticator holds (credentialId, rpId, userHandle, signCount…)."""
    reply = _session(page).send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(reply["credentials"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files from tests/console/pages, /vendor/ from the console's vendored assets, `/events` a
    server-sent stream of one event, held open; every answer under a strict Content-Security-Policy, as the
    console's will be."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith("/vendor/"):
            name = path.split("?", 1)[0].removeprefix("/vendor/")
            return str(VENDOR / Path(name).name)
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", "default-src 'self'")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"event: message\ndata: <p id=\"streamed\">streamed</p>\n\n")
            # Then held open (a closed stream is an error to htmx) until the page goes away.
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            self.close_connection = True
            return
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """tests/console/pages served on 127.0.0.1, opened as http://localhost:PORT."""

    def __init__(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def watch(page: Page, errors: list[str]) -> Page:
    """Collect `page`'s console errors and uncaught exceptions into `errors`."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            errors.append(f"console: {message.text}" + (f" ({where})" if where else ""))

    def on_error(error: Error) -> None:
        errors.append(f"uncaught: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    return page
