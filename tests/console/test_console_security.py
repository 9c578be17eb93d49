"""The console under attack: cross-site request forgery, script injection through packets, session
fixation, framing, brute-forced passwords, the wrong role on every route, and hostile input.

Most checks speak HTTP with httpx to one real gateway on loopback shared by the module (each test
makes the decisions it needs); the browser is used where only a browser can tell: a form posted
from another origin, a packet's text rendered and run, a planted cookie, a frame. The gateway
trusts `X-Forwarded-For`/`X-Forwarded-Proto` from 127.0.0.1 (uvicorn's default), so tests sign in
"from" their own addresses and keep the per-address sign-in counts apart.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from playwright.sync_api import BrowserContext, Dialog, Page, expect
from sqlalchemy import select
from starlette.routing import Mount

from browser_support import StaticSite, free_port
from console_support import PASSWORD, give_passwords, sign_in
from gateway.store import identities
from gateway.store.schema import decisions
from gateway_server import PEOPLE, Server, footprint, packet, refund, server_config, start_server

REPO = Path(__file__).resolve().parents[2]
ROLES = ("founder", "approver", "auditor", "viewer")
MAX_FAILURES = 3
MAX_FAILURES_PER_ADDRESS = 5
TARGET = "target@test.local"  # a viewer whose password the brute-force tests guess

# -- the shared gateway -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-security")
    port = free_port()
    settings_ = server_config(f"sqlite:///{tmp / 'warden.db'}", tmp, console=True,
                              public_url=f"http://localhost:{port}", login_max_failures=MAX_FAILURES,
                              login_max_failures_per_address=MAX_FAILURES_PER_ADDRESS, login_window_seconds=600)
    handle, stop = start_server(settings_, port=port)
    give_passwords(handle)
    runtime = handle.runtime

    def target(conn: Any) -> None:
        identities.add_user(conn, runtime.ledger, TARGET, "viewer", time.time(), "test")
        identities.set_password(conn, runtime.ledger, TARGET, PASSWORD, time.time(), "test")

    runtime.writer.run(target)
    try:
        yield handle
    finally:
        stop()


_addresses = iter(range(1, 1_000_000))


def new_address() -> str:
    """An address of its own for a client (sent as X-Forwarded-For), so sign-in counts stay apart."""
    n = next(_addresses)
    return f"10.{threading.get_ident() % 200}.{n // 250}.{n % 250 + 1}"


def browser_client(server: Server, *, address: str | None = None, **headers: str) -> httpx.Client:
    """A client for the console's pages: cookies kept, redirects not followed."""
    headers = {"X-Forwarded-For": address or new_address(), **headers}
    return httpx.Client(base_url=f"{server.base_url}/console", headers=headers, timeout=30, follow_redirects=False)


def signin_token(client: httpx.Client) -> str:
    answer = client.get("/login")
    assert answer.status_code == 200, answer.text
    found = re.search(r'name="signin_token" value="([^"]+)"', answer.text)
    assert found, "the sign-in form has no signin_token"
    return found.group(1)


def post_login(client: httpx.Client, email: str, password: str, **extra: str) -> httpx.Response:
    return client.post("/login", data={"email": email, "password": password, "signin_token": signin_token(client),
                                       **extra})


def signed_in(server: Server, who: str) -> httpx.Client:
    client = browser_client(server)
    answer = post_login(client, PEOPLE[who][0], PASSWORD)
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found, "no CSRF token on the inbox"
    return found.group(1)


@pytest.fixture(scope="module")
def people(server: Server) -> Iterator[dict[str, tuple[httpx.Client, str]]]:
    """A signed-in client and its CSRF token per role (never signed out by a test)."""
    found = {}
    for role in ROLES:
        client = signed_in(server, role)
        found[role] = (client, csrf_of(client))
    try:
        yield found
    finally:
        for client, _token in found.values():
            client.close()


def pending_refund(server: Server) -> str:
    answer = server.client("a2").post("/v1/actions", json=refund("a2", 72000))
    assert answer.status_code == 202 and answer.json()["status"] == "pending_approval", answer.text
    return str(answer.json()["decision_id"])


def status_of(server: Server, decision_id: str) -> str:
    with server.runtime.db.connect() as conn:
        return str(conn.execute(select(decisions.c.status).where(decisions.c.decision_id == decision_id)).scalar_one())


# -- CSRF -------------------------------------------------------------------------------------

ATTACKS = {
    "no token": ({}, {}),
    "wrong token": ({"csrf_token": "wrong-token-wrong-token-wrong-token"}, {}),
    "wrong header token": ({}, {"X-CSRF-Token": "wrong"}),
    "another origin": (None, {"Origin": "http://evil.example"}),
    "an opaque origin": (None, {"Origin": "null"}),
    "cross-site": (None, {"Sec-Fetch-Site": "cross-site"}),
    "same-site, another port": (None, {"Sec-Fetch-Site": "same-site"}),
}


def _state_changes(decision_id: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Founder-allowed POSTs that would change something if they got through."""
    return {
        "approve": (f"/decisions/{decision_id}/approve", {"comment": "ok"}),
        "reject": (f"/decisions/{decision_id}/reject", {"reason": "no"}),
        "undo": (f"/decisions/{decision_id}/compensate", {"confirm": "yes"}),
        "kill switch": ("/kill-switch", {"engage": "true", "reason": "forged", "confirm": "yes"}),
        "autonomy": ("/agents/a3/autonomy", {"autonomy": "A4"}),
        "revoke": ("/agents/a3/revoke", {"confirm": "yes"}),
    }


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_forged_post_is_refused_and_changes_nothing(server: Server, people: dict[str, Any], attack: str) -> None:
    client, token = people["founder"]
    decision_id = pending_refund(server)
    form_extra, headers = ATTACKS[attack]
    before = footprint(server)
    for what, (path, form) in _state_changes(decision_id).items():
        data = {**form, **(form_extra if form_extra is not None else {"csrf_token": token})}
        answer = client.post(path, data=data, headers=headers)
        assert answer.status_code == 403, f"{what} with {attack}: {answer.status_code} {answer.text[:300]}"
        assert "Request refused" in answer.text and "Traceback" not in answer.text
    assert status_of(server, decision_id) == "pending_approval"
    assert footprint(server) == before
    assert server.client("founder").get("/v1/kill-switch").json()["engaged"] is False


def test_the_same_post_with_the_token_from_the_console_itself_goes_through(server: Server,
                                                                           people: dict[str, Any]) -> None:
    client, token = people["approver"]
    decision_id = pending_refund(server)
    answer = client.post(f"/decisions/{decision_id}/reject", data={"reason": "not this one", "csrf_token": token},
                         headers={"Origin": server.base_url, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 303, answer.text
    assert status_of(server, decision_id) == "rejected"


@pytest.mark.parametrize("case", ["no signin token", "a wrong signin token", "no signin cookie", "another origin"])
def test_the_sign_in_form_needs_its_own_token(server: Server, case: str) -> None:
    client = browser_client(server)
    token = signin_token(client)
    data = {"email": PEOPLE["viewer"][0], "password": PASSWORD, "signin_token": token}
    headers = {}
    if case == "no signin token":
        del data["signin_token"]
    elif case == "a wrong signin token":
        data["signin_token"] = "x" * len(token)
    elif case == "no signin cookie":
        client.cookies.clear()
    else:
        headers["Origin"] = "http://evil.example"
    answer = client.post("/login", data=data, headers=headers)
    assert answer.status_code == 403, answer.text
    assert "warden_session" not in answer.headers.get("set-cookie", "")


def test_a_form_posted_from_another_origin_is_refused_in_the_browser(
        server: Server, page: Page, static_site: StaticSite) -> None:
    """The attacker's page is served from another port (another origin, the same site, so the
    browser sends the Lax session cookie): only the console's own checks stand in the way."""
    sign_in(page, server, "approver")
    decision_id = pending_refund(server)
    target = f"{server.console_url}decisions/{decision_id}/approve"
    with page.expect_response(lambda r: r.url == target and r.request.method == "POST") as posted:
        page.goto(f"{static_site.url}/csrf_attack.html?action={quote(target, safe='')}")
    assert posted.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Request refused")
    assert status_of(server, decision_id) == "pending_approval"
    page.goto(f"{server.console_url}decisions/{decision_id}")  # the session itself still works
    expect(page.locator("#decision-panel .status")).to_have_text("pending approval")


# -- script injection through packets ----------------------------------------------------------

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]
LONG = ("<b>long</b> \"text\" & 'more' " * 400)[:9_999] + "x"  # 10,000 characters


def hostile_listing(title: str, text: str) -> dict[str, Any]:
    """An A1 listing (pending approval) with `text` wherever a packet carries free text."""
    hostile = packet("a1", "shopify.publish_listing",
                     {"title": title, "body_html": text, "price": 1999, "currency": "usd"},
                     evidence={"note": text, "nested": {"deep": text}})
    hostile["context"] = {"task_id": "t-xss", "reasoning": text}
    return hostile


def submit(server: Server, body: dict[str, Any]) -> str:
    answer = server.client(body["agent"]).post("/v1/actions", json=body)
    assert answer.status_code in (200, 202), answer.text
    return str(answer.json()["decision_id"])


@pytest.fixture(scope="module")
def hostile(server: Server) -> dict[str, str]:
    """{text: decision id} for each payload (as title and every free text) and the long text."""
    found = {text: submit(server, hostile_listing(text, text)) for text in PAYLOADS}
    found[LONG] = submit(server, hostile_listing("a long description", LONG))
    return found


def assert_inert(html: str, text: str) -> None:
    if text == "javascript:alert(1)":
        assert not re.search(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", html, re.I)
        assert text in html
    else:
        assert str(escape(text)) in html
        assert text not in html
    assert "<img src=x" not in html and "<script>alert" not in html


def test_packet_text_is_escaped_in_every_page_that_shows_it(server: Server, people: dict[str, Any],
                                                            hostile: dict[str, str]) -> None:
    client, _token = people["approver"]
    lists = [client.get(path).text for path in ("/", "/inbox/rows", "/activity?tool=shopify.publish_listing")]
    for text, decision_id in hostile.items():
        page_html = client.get(f"/decisions/{decision_id}").text
        panel = client.get(f"/decisions/{decision_id}/panel")
        assert panel.status_code == 200 and "<script>alert" not in panel.text and "<img src=x" not in panel.text
        assert_inert(page_html, text)
        assert page_html.count(str(escape(text))) >= (3 if text in PAYLOADS else 1)  # h1, title, body_html
        as_json = str(escape(json.dumps(text, ensure_ascii=False)))  # evidence and context read as JSON
        assert page_html.count(as_json) >= 3, "the evidence (twice) and the reasoning"
        if text in PAYLOADS:  # the title, in each list's one-line summary
            for html in lists:
                assert_inert(html, text)


def read_feed_line(client: httpx.Client, trigger: Any, wanted: str, timeout: float = 10) -> str:
    """Open the event stream, run `trigger`, and return the first `feed` event containing `wanted`."""
    with client.stream("GET", "/events", timeout=timeout) as stream:
        assert stream.status_code == 200
        event, data, triggered = "", [], False
        deadline = time.monotonic() + timeout
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, "the feed line never came"
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "":
                if event == "resync" and not triggered:
                    trigger()
                    triggered = True
                elif event == "feed" and wanted in "\n".join(data):
                    return "\n".join(data)
                event, data = "", []
    raise AssertionError("the stream ended")


_marks = itertools.count()


def test_packet_text_is_escaped_in_the_live_feed(server: Server, people: dict[str, Any]) -> None:
    client, _token = people["auditor"]
    for text in PAYLOADS:
        mark = f"m{next(_marks)}x"
        line = read_feed_line(client, lambda: submit(server, hostile_listing(f"{text} {mark}", text)), wanted=mark)
        assert_inert(line, text)


def test_hostile_packets_render_inert_and_intact_in_the_browser(
        server: Server, page: Page, page_errors: list[str], hostile: dict[str, str]) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    sign_in(page, server, "approver")
    rows = page.locator("#inbox-rows")
    for text in PAYLOADS:
        expect(rows.get_by_role("link", name=f"publish “{text}” at $19.99")).to_be_visible()
    assert page.locator('img[src="x"]').count() == 0

    for text, decision_id in hostile.items():
        page.goto(f"{server.console_url}decisions/{decision_id}")
        title = page.locator("tr", has=page.locator("th", has_text=re.compile(r"^title$"))).locator("td")
        body = page.locator("tr", has=page.locator("th", has_text=re.compile(r"^body_html$"))).locator("td")
        expect(body).to_have_text(text)
        if text in PAYLOADS:
            expect(title).to_have_text(text)
            expect(page.get_by_role("heading", level=1)).to_have_text(f"publish “{text}” at $19.99")
        reasoning = page.locator("tr", has=page.locator("th", has_text=re.compile(r"^reasoning$"))).locator("td")
        expect(reasoning).to_have_text(json.dumps(text, ensure_ascii=False))  # context reads as JSON
        assert page.locator('img[src="x"]').count() == 0

    page.goto(f"{server.console_url}activity")
    page.wait_for_timeout(500)  # the event stream is open
    live = f"<img src=x onerror=alert(2)> live {time.monotonic_ns()}"
    submit(server, hostile_listing(live[:40], "<script>alert(3)</script>"))
    expect(page.locator("#feed")).to_contain_text(live[:39])
    page.goto(f"{server.console_url}activity?tool=shopify.publish_listing")
    for text in PAYLOADS:
        expect(page.locator("table.list")).to_contain_text(f"publish “{text}” at $19.99")
    assert page.locator('img[src="x"]').count() == 0
    assert dialogs == []
    assert page_errors == []


# -- session fixation -------------------------------------------------------------------------


def test_a_session_cookie_planted_before_sign_in_is_replaced_and_worthless(server: Server) -> None:
    client = browser_client(server)
    client.cookies.set("warden_session", "attacker-chosen", domain="127.0.0.1", path="/console")
    answer = post_login(client, PEOPLE["approver"][0], PASSWORD)
    assert answer.status_code == 303
    issued = answer.cookies.get("warden_session")
    assert issued and issued != "attacker-chosen"
    assert client.get("/").status_code == 200
    attacker = browser_client(server)
    attacker.cookies.set("warden_session", "attacker-chosen", domain="127.0.0.1", path="/console")
    assert attacker.get("/").status_code == 303


def test_a_session_cookie_planted_in_the_browser_gives_the_attacker_nothing(
        server: Server, context: BrowserContext, page: Page) -> None:
    context.add_cookies([{"name": "warden_session", "value": "attacker-chosen", "domain": "localhost",
                          "path": "/console"}])
    sign_in(page, server, "founder")
    sessions = [c for c in context.cookies() if c["name"] == "warden_session"]
    assert len(sessions) == 1 and sessions[0]["value"] != "attacker-chosen"
    attacker = browser_client(server)
    attacker.cookies.set("warden_session", "attacker-chosen", domain="127.0.0.1", path="/console")
    answer = attacker.get("/kill-switch")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")


# -- headers, cookies, framing ----------------------------------------------------------------


def assert_security_headers(answer: httpx.Response, what: str) -> None:
    csp = answer.headers.get("content-security-policy", "")
    directives = {part.strip().split(" ", 1)[0]: part.strip() for part in csp.split(";") if part.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", f"{what}: {csp!r}"
    script = directives.get("script-src", directives.get("default-src", ""))
    assert script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, f"{what}: {csp!r}"
    assert "'unsafe-inline'" not in directives.get("style-src", ""), f"{what}: {csp!r}"
    assert answer.headers.get("x-frame-options") == "DENY", what
    assert answer.headers.get("x-content-type-options") == "nosniff", what
    assert answer.headers.get("referrer-policy") in ("same-origin", "no-referrer", "strict-origin"), what


def test_every_console_answer_carries_the_security_headers(server: Server, people: dict[str, Any],
                                                           hostile: dict[str, str]) -> None:
    founder, token = people["founder"]
    anonymous = browser_client(server)
    answers = {path: founder.get(path) for path in
               ("/", "/inbox/rows", "/activity", "/incidents", "/kill-switch", "/banner", "/agents",
                "/agents/table", "/audit", "/audit/proof?seq=0", "/audit/export",
                f"/decisions/{hostile[PAYLOADS[0]]}", f"/decisions/{hostile[PAYLOADS[0]]}/panel",
                "/decisions/dec_unknown", "/static/console.css", "/static/vendor/htmx.min.js", "/nowhere")}
    answers["login"] = anonymous.get("/login")
    answers["anonymous redirect"] = anonymous.get("/")
    answers["anonymous post"] = anonymous.post("/kill-switch")
    answers["forged post"] = founder.post("/kill-switch", data={"reason": "x"})
    answers["forbidden"] = people["viewer"][0].post("/kill-switch", data={"csrf_token": people["viewer"][1]})
    answers["invalid"] = founder.get("/audit/proof?seq=-1")
    answers["post"] = founder.post("/kill-switch", data={"reason": "x", "engage": "true", "csrf_token": token})
    for what, answer in answers.items():
        assert_security_headers(answer, what)
        if not what.startswith("/static/"):
            assert answer.headers.get("cache-control") == "no-store", what


def _cookie_flags(header: str) -> dict[str, str]:
    parts = [part.strip() for part in header.split(";")]
    flags = {part.split("=", 1)[0].lower(): (part.split("=", 1)[1] if "=" in part else "") for part in parts[1:]}
    return {"value": parts[0].split("=", 1)[1], **flags}


def _session_set_cookie(answer: httpx.Response) -> dict[str, str]:
    found = [h for h in answer.headers.get_list("set-cookie") if h.startswith("warden_session=")]
    assert len(found) == 1, answer.headers.get_list("set-cookie")
    return _cookie_flags(found[0])


def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_console(server: Server) -> None:
    client = browser_client(server)
    flags = _session_set_cookie(post_login(client, PEOPLE["viewer"][0], PASSWORD))
    assert "httponly" in flags and flags["samesite"].lower() == "lax" and flags["path"] == "/console"
    assert "secure" not in flags  # plain http (http://localhost is a browser's own secure context)


def test_the_cookies_are_secure_behind_an_https_proxy(server: Server) -> None:
    """uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (its default), as from a local TLS proxy."""
    client = browser_client(server, **{"X-Forwarded-Proto": "https"})
    form = client.get("/login")
    signin = [h for h in form.headers.get_list("set-cookie") if h.startswith("warden_signin=")]
    assert signin and "secure" in _cookie_flags(signin[0])
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    client.cookies.clear()  # a Secure cookie is not sent over http: send it by hand
    answer = client.post("/login", data={"email": PEOPLE["viewer"][0], "password": PASSWORD, "signin_token": token},
                         headers={"Cookie": f"warden_signin={token}"})
    assert answer.status_code == 303, answer.text
    flags = _session_set_cookie(answer)
    assert {"secure", "httponly"} <= set(flags) and flags["samesite"].lower() == "lax" and flags["path"] == "/console"


class _Framing(http.server.BaseHTTPRequestHandler):
    """Another site's page framing `?src=` beside a control frame, with no policy of its own."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if "src" not in query or "control" not in query:
            self.send_error(404)
            return
        body = ('<!doctype html><html lang="en"><head><title>framing</title></head><body>'
                f'<iframe id="control" title="control" src="{escape(query["control"][0])}"></iframe>'
                f'<iframe id="victim" title="victim" src="{escape(query["src"][0])}"></iframe></body></html>')
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def framing_site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Framing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_another_site_cannot_frame_the_console(server: Server, page: Page, static_site: StaticSite,
                                               framing_site: str) -> None:
    sign_in(page, server, "founder")
    victim = f"{server.console_url}kill-switch"
    control = f"{static_site.url}/smoke.html"
    with page.expect_response(victim) as framed:
        page.goto(f"{framing_site}?src={quote(victim, safe='')}&control={quote(control, safe='')}")
    assert framed.value.status == 200  # the console answered; the browser kept it out of the frame
    expect(page.frame_locator("#control").get_by_role("heading", name="Harness smoke page")).to_be_visible()
    page.wait_for_timeout(300)
    child = page.locator("#victim").element_handle().content_frame()
    assert child is not None and not child.url.startswith(server.console_url), child and child.url
    assert page.frame_locator("#victim").get_by_role("button", name="Sign out").count() == 0


# -- brute force ------------------------------------------------------------------------------


def _wrong(client: httpx.Client, email: str) -> httpx.Response:
    return post_login(client, email, "not the password at all")


def test_wrong_passwords_for_one_account_make_it_wait_even_for_the_right_one(server: Server) -> None:
    client = browser_client(server)
    answers = [_wrong(client, TARGET) for _ in range(MAX_FAILURES)]
    assert [a.status_code for a in answers] == [401] * (MAX_FAILURES - 1) + [429]
    throttled = answers[-1]
    assert 0 < int(throttled.headers["retry-after"]) <= 600
    assert "too many failed sign-ins; try again in 10 minutes" in throttled.text
    elsewhere = browser_client(server)  # another address: the account itself waits
    right = post_login(elsewhere, TARGET, PASSWORD)
    assert right.status_code == 429 and "retry-after" in right.headers
    assert "warden_session" not in right.headers.get("set-cookie", "")
    assert post_login(browser_client(server), PEOPLE["auditor"][0], PASSWORD).status_code == 303  # others are fine


def test_wrong_passwords_from_one_address_make_it_wait(server: Server) -> None:
    address = new_address()
    client = browser_client(server, address=address)
    answers = [_wrong(client, f"nobody{n}@test.local") for n in range(MAX_FAILURES_PER_ADDRESS)]
    assert [a.status_code for a in answers] == [401] * (MAX_FAILURES_PER_ADDRESS - 1) + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    right = post_login(browser_client(server, address=address), PEOPLE["approver2"][0], PASSWORD)
    assert right.status_code == 429 and "too many failed sign-ins" in right.text
    assert post_login(browser_client(server), PEOPLE["approver2"][0], PASSWORD).status_code == 303


def test_a_wrong_email_and_a_wrong_password_get_the_same_answer(server: Server) -> None:
    def attempt(email: str) -> httpx.Response:
        client = browser_client(server)
        client.cookies.set("warden_signin", "s" * 32, domain="127.0.0.1", path="/console")
        return client.post("/login", data={"email": email, "password": "not the password at all",
                                           "signin_token": "s" * 32, "next": "/console/audit"})

    unknown, wrong = attempt("nobody@test.local"), attempt("approver@test.local")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content.replace(b"nobody@test.local", b"EMAIL") == wrong.content.replace(b"approver@test.local",
                                                                                             b"EMAIL")
    assert "email or password is wrong" in wrong.text
    skip = {"date", "x-request-id", "content-length"}
    assert ({k: v for k, v in unknown.headers.items() if k not in skip}
            == {k: v for k, v in wrong.headers.items() if k not in skip})


# -- every route, every role ------------------------------------------------------------------

EVERYONE = frozenset(ROLES)
DECIDE = frozenset({"founder", "approver"})
INCIDENTS = frozenset({"founder", "approver", "auditor"})
FOUNDER = frozenset({"founder"})
EXPORT = frozenset({"founder", "auditor"})
PUBLIC = None  # no session needed

#: (method, path) → the roles allowed, or PUBLIC. `MOUNT` is the static files.
ROUTES: dict[tuple[str, str], frozenset[str] | None] = {
    ("GET", "/"): EVERYONE,
    ("GET", "/inbox/rows"): EVERYONE,
    ("GET", "/inbox/badge"): EVERYONE,
    ("GET", "/decisions/{decision_id}"): EVERYONE,
    ("GET", "/decisions/{decision_id}/panel"): EVERYONE,
    ("POST", "/decisions/{decision_id}/approve"): DECIDE,
    ("POST", "/decisions/{decision_id}/reject"): DECIDE,
    ("POST", "/decisions/{decision_id}/compensate"): DECIDE,
    ("GET", "/activity"): EVERYONE,
    ("GET", "/incidents"): INCIDENTS,
    ("GET", "/incidents/{incident_id}"): INCIDENTS,
    ("POST", "/incidents/{incident_id}/acknowledge"): FOUNDER,
    ("GET", "/kill-switch"): EVERYONE,
    ("POST", "/kill-switch"): FOUNDER,
    ("GET", "/banner"): EVERYONE,
    ("GET", "/agents"): EVERYONE,
    ("GET", "/agents/table"): EVERYONE,
    ("POST", "/agents/{name}/autonomy"): FOUNDER,
    ("POST", "/agents/{name}/revoke"): FOUNDER,
    ("GET", "/audit"): EVERYONE,
    ("GET", "/audit/export"): EXPORT,
    ("GET", "/audit/proof"): EVERYONE,
    ("GET", "/events"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("GET", "/account"): EVERYONE,
    ("POST", "/account/passkeys/options"): DECIDE,
    ("POST", "/account/passkeys"): DECIDE,
    ("POST", "/account/passkeys/{credential_id}/revoke"): DECIDE,
    ("POST", "/decisions/{decision_id}/passkey-options"): DECIDE,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/invite/{token}"): PUBLIC,
    ("POST", "/invite/{token}"): PUBLIC,
    ("MOUNT", "/static"): PUBLIC,
}

#: What a request to each route sends: a path that changes nothing when allowed (unknown ids, no
#: confirmation) and its form fields. GETs use a real pending decision.
FORMS: dict[str, dict[str, str]] = {
    "/kill-switch": {"engage": "true", "reason": "role check"},  # no confirm: the confirmation page
    "/agents/{name}/autonomy": {"autonomy": "A4"},
    "/agents/{name}/revoke": {},  # no confirm: the confirmation page
    "/decisions/{decision_id}/reject": {"reason": "role check"},
    "/incidents/{incident_id}/acknowledge": {"note": "role check"},
}


def console_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the console app answers, through included routers and mounts."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            elif isinstance(route, Mount):
                found.add(("MOUNT", prefix + route.path))
            else:
                found.update((method, prefix + route.path) for method in route.methods - {"HEAD"})

    walk(app.routes, "")
    return found


def test_the_route_table_covers_every_console_route(server: Server) -> None:
    from console.app import create_console

    assert console_routes(create_console(server.runtime)) == set(ROUTES), \
        "a console route is missing from ROUTES (or gone): say which roles may use it"


def _target(route: str, method: str, decision_id: str) -> str:
    if method == "GET":
        path = route.replace("{decision_id}", decision_id)
    else:
        path = route.replace("{decision_id}", "dec_00000000000000000000000000")
    path = path.replace("{incident_id}", "987654").replace("{name}", "ghost").replace("{token}", "wdn_invite_nope")
    return path + ("?seq=0" if route == "/audit/proof" else "")


def _request(client: httpx.Client, method: str, path: str, form: dict[str, str]) -> httpx.Response:
    if method == "GET" and path == "/events":  # a stream: its status, headers and first event, then hang up
        with client.stream("GET", path) as stream:
            if stream.status_code != 200:
                body = stream.read()
            else:
                lines = stream.iter_lines()
                body = "\n".join(iter(lambda: next(lines), "")).encode()  # up to the first blank line
            return httpx.Response(stream.status_code, headers=stream.headers, content=body)
    return client.request(method, path, data=form if method == "POST" else None)


@pytest.mark.parametrize("method,route", [key for key in ROUTES if key[0] != "MOUNT"],
                         ids=[f"{m} {r}" for m, r in ROUTES if m != "MOUNT"])
def test_every_route_refuses_the_wrong_role(server: Server, people: dict[str, Any], method: str, route: str) -> None:
    allowed = ROUTES[(method, route)]
    decision_id = pending_refund(server)
    path = _target(route, method, decision_id)
    form = FORMS.get(route, {})
    before = footprint(server)

    anonymous = _request(browser_client(server), method, path, form)
    if allowed is PUBLIC:
        assert anonymous.status_code in (200, 403, 404), f"anonymous: {anonymous.status_code}"
        if method == "POST":
            assert anonymous.status_code == 403  # no signin token
    elif route == "/events":  # an EventSource cannot follow a redirect: it is told, and the page reloads
        assert anonymous.status_code == 200 and anonymous.text == "event: signed-out\ndata: ", anonymous.text
    elif method == "GET":
        assert anonymous.status_code == 303, f"anonymous: {anonymous.status_code}"
        assert anonymous.headers["location"] == f"/console/login?next={quote('/console' + path, safe='')}"
        assert unquote(anonymous.headers["location"].split("next=", 1)[1]) == f"/console{path}"
    else:
        assert anonymous.status_code in (401, 303), f"anonymous: {anonymous.status_code}"
        target = anonymous.headers.get("hx-redirect") or anonymous.headers.get("location", "")
        assert target.startswith("/console/login?next="), anonymous.headers

    for role in ROLES:
        if route == "/logout":
            client = signed_in(server, role)  # a session of its own: signing out ends it
            token = csrf_of(client)
        else:
            client, token = people[role]
        answer = _request(client, method, path, {**form, "csrf_token": token})
        assert answer.status_code < 500 and "Traceback" not in answer.text, f"{role}: {answer.status_code}"
        if allowed is PUBLIC:
            continue
        if role in allowed:
            assert answer.status_code not in (401, 403), f"{role} may use {method} {route}: {answer.status_code}"
        else:
            assert answer.status_code == 403, f"{role} may not use {method} {route}: {answer.status_code}"
            assert "Not allowed" in answer.text and "only" in answer.text

    assert status_of(server, decision_id) == "pending_approval"
    assert footprint(server) == before  # no decision row, no audit entry, no connector call


# -- hostile input ----------------------------------------------------------------------------

FIELDS = ["csrf_token", "comment", "reason", "engage", "autonomy", "note", "email", "password", "signin_token",
          "next", "again", "passkey", "seq", "size", "download", "before", "open", "agent", "tool", "status",
          "risk", "since", "until", "done"]
ODD = st.sampled_from(["", "\x00", "\ud800", "\udfff", "\u202e", "𝔘𝔫𝔦", "../../etc/passwd", "%00", "%ED%A0%80",
                       "-1", "1e400", "NaN", "9" * 40, "1~a", "0~", "<script>", "é" * 2_000])
TEXT = st.text(max_size=60) | ODD
BIG = TEXT | st.sampled_from(["é" * 70_000, "x" * 1_100_000])  # form values past every limit
PATHS = sorted(route for method, route in ROUTES if method != "MOUNT" and route != "/logout")
HTTPX_MAX_URL = 65_536  # httpx's own limit on a URL's length
SEGMENT = st.sampled_from(["ghost", "dec_x", "1", "0", "-7", "9" * 30, "a" * 10_000]) | st.text(min_size=1, max_size=30)


def _pct(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _encoded(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{_pct(k)}={_pct(v)}" for k, v in pairs)


@pytest.fixture(scope="module")
def fuzzer(server: Server) -> tuple[httpx.Client, str]:
    client = signed_in(server, "founder")
    return client, csrf_of(client)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(PATHS), post=st.booleans(), segment=SEGMENT,
       query=st.lists(st.tuples(st.sampled_from(FIELDS) | TEXT, TEXT), max_size=4),
       form=st.lists(st.tuples(st.sampled_from(FIELDS) | TEXT, BIG), max_size=5), with_token=st.booleans(),
       raw_body=st.binary(max_size=200) | st.none())
def test_hostile_requests_never_get_a_server_error(server: Server, fuzzer: tuple[httpx.Client, str], route: str,
                                                   post: bool, segment: str, query: list[tuple[str, str]],
                                                   form: list[tuple[str, str]], with_token: bool,
                                                   raw_body: bytes | None) -> None:
    client, token = fuzzer
    path = re.sub(r"\{[a-z_]+\}", _pct(segment), route)
    url = path + ("?" + _encoded(query) if query else "")
    assume(len(url) <= HTTPX_MAX_URL)  # longer, the client refuses it before anything is sent
    headers = {"content-type": "application/x-www-form-urlencoded", "X-Forwarded-For": "10.250.0.1"}
    if post:
        fields = [(k, v) for k, v in form if k != "confirm"]  # never confirm a change
        if with_token:
            fields.append(("csrf_token", token))
        body = raw_body if raw_body is not None and not with_token else _encoded(fields).encode()
        answer = client.request("POST", url, content=body, headers=headers)
    elif route == "/events":
        return
    else:
        answer = client.request("GET", url, headers=headers)
    assert answer.status_code < 500, (answer.status_code, url[:200], answer.text[:500])
    assert "Traceback" not in answer.text and 'File "' not in answer.text


@pytest.mark.parametrize("path", [
    "/decisions/dec_00000000000000000000000000",
    "/decisions/" + "d" * 10_240,
    "/decisions/" + "d" * 10_240 + "/panel",
    "/decisions/%ED%A0%80",
    "/audit/proof?seq=-1",
    "/audit/proof?seq=" + "9" * 30,
    "/audit/proof?seq=9007199254740992",
    "/audit/proof?seq=0&size=0",
    "/audit/proof?seq=abc",
    "/audit/proof",
    "/activity?before=abc",
    "/activity?before=1~",
    "/activity?before=" + "9" * 200,
    "/activity?before=1e400~dec_x",
    "/activity?before=99999999999.999999999~" + "z" * 64,
    "/activity?before=1.5~..%2F..%2Fx",
    "/activity?since=99999-01-01&until=0000-00-00",
    "/activity?since=%00&agent=%ED%A0%80&risk=L9&status=%FF",
    "/incidents?before=-5",
    "/incidents?before=" + "9" * 30,
    "/incidents/notanumber",
    "/incidents/" + "9" * 30,
    "/login?next=%ED%A0%80",
    "/invite/" + "t" * 10_240,
])
def test_odd_requests_get_a_page_not_an_error(people: dict[str, Any], path: str) -> None:
    client, _token = people["founder"]
    answer = client.get(path)
    assert 200 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    assert "Traceback" not in answer.text
    if answer.status_code != 303:
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/decisions/dec_00000000000000000000000000/approve",
                                  "/decisions/" + "d" * 10_240 + "/reject",
                                  "/incidents/" + "9" * 30 + "/acknowledge",
                                  "/agents/" + "n" * 10_240 + "/autonomy",
                                  "/agents/%ED%A0%80/revoke"])
def test_odd_posts_get_a_page_not_an_error(people: dict[str, Any], path: str) -> None:
    client, token = people["founder"]
    answer = client.post(path, data={"csrf_token": token, "reason": "x" * 5000, "autonomy": "A9", "note": "n"})
    assert 200 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    assert "Traceback" not in answer.text


# -- the templates never trust data ------------------------------------------------------------


def test_nothing_is_marked_safe_or_autoescape_turned_off() -> None:
    console = REPO / "console"
    offenders = []
    for file in sorted(console.rglob("*.html")) + sorted(console.rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        for pattern in (r"\|\s*safe\b", r"\bMarkup\s*\(", r"autoescape\s*(=\s*False|false)", r"\{%-?\s*autoescape",
                        r"\bmark_safe\b", r"__html__"):
            offenders += [f"{file.relative_to(REPO)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []
