"""Signing people in to the console in tests: every test person gets `PASSWORD`;
`sign_in(page, server, "approver")` signs them in through the real form in a browser, and
`signed_in(server, "approver")` gives an httpx client signed in through the same form."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from gateway.store import identities
from gateway_server import PEOPLE, Server

PASSWORD = "correct horse battery staple"


def give_passwords(server: Server) -> None:
    runtime = server.runtime

    def work(conn: Any) -> None:
        for email, _role in PEOPLE.values():
            identities.set_password(conn, runtime.ledger, email, PASSWORD, time.time(), "test")

    runtime.writer.run(work)


def sign_in(page: Page, server: Server, who: str, *, then: str = "") -> None:
    """Sign `who` (a key of gateway_server.PEOPLE) in through the form, then open `then`."""
    email = PEOPLE[who][0]
    page.goto(server.console_url + "login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    if then:
        page.goto(server.console_url + then)


def signed_in(server: Server, who: str) -> httpx.Client:
    """An httpx client with `who`'s console session, signed in through the form (close it after)."""
    client = httpx.Client(base_url=server.base_url, timeout=30)
    form = client.get("/console/login")
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/console/login", data={"email": PEOPLE[who][0], "password": PASSWORD,
                                               "signin_token": token.group(1), "next": "/console/"})
    assert done.status_code == 303, done.text
    return client
