"""Who is looking at the console: cookie sessions, the signed-in person, and what their role may do.

A session is a random token in an HttpOnly cookie (SameSite=Lax, Secure on HTTPS, path
`/console`), stored server-side as its SHA-256 (`gateway.store.identities.accounts`). It ends
after `console_session_idle_seconds` without a request, `console_session_max_seconds` after
sign-in whatever happens, at sign-out, and when the person's password, role or account changes.
Signing in always starts a new session with a new id, so a token planted before sign-in is never
the one that gets privileges (session fixation).

`CAN` is the one table of what each role may do in the console; pages show only what the viewer
can use, and every route checks it again on the server (`allowed`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from console.security import CSRF_FIELD, CSRF_HEADER, check_same_origin, check_token
from gateway.store import identities as accounts
from ledger.database import read_only

SESSION_COOKIE = "warden_session"
SIGNIN_COOKIE = "warden_signin"  # the sign-in form's own CSRF token (double submit): no session yet
COOKIE_PATH = "/console"

#: What each role may do in the console; the HTTP API admits the same roles for the same acts.
CAN: dict[str, frozenset[str]] = {
    "decide": frozenset({"founder", "approver"}),
    "compensate": frozenset({"founder", "approver"}),
    "passkeys": frozenset({"founder", "approver"}),
    "incidents": frozenset({"founder", "approver", "auditor"}),
    "acknowledge": frozenset({"founder"}),
    "kill_switch": frozenset({"founder"}),
    "manage_agents": frozenset({"founder"}),
    "export": frozenset({"founder", "auditor"}),
}

ROLE_NOUN = {"founder": "a founder", "approver": "an approver", "auditor": "an auditor", "viewer": "a viewer"}


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: email, current role, the session's CSRF token and cookie token."""

    email: str
    role: str
    csrf_token: str
    token: str

    def can(self, act: str) -> bool:
        return self.role in CAN[act]

    @property
    def permissions(self) -> dict[str, bool]:
        return {act: self.role in roles for act, roles in CAN.items()}


class SignInRequired(Exception):
    """No live session: the page answers with the sign-in form (and comes back after)."""


class Forbidden(Exception):
    """The signed-in person's role may not do this; the message says who may."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def forbidden(act: str, viewer: Viewer) -> Forbidden:
    who = " or ".join(ROLE_NOUN.get(role, role) for role in sorted(CAN[act]))
    return Forbidden(f"you are signed in as {ROLE_NOUN.get(viewer.role, viewer.role)}; only {who} can do this")


def _runtime(request: Request) -> Any:
    return request.app.state.warden


def lookup(request: Request) -> Viewer | None:
    """The viewer of this request's session cookie, or None (blocking: call in a thread)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 256:
        return None
    runtime = _runtime(request)
    limits = {"idle_seconds": runtime.settings.console_session_idle_seconds,
              "max_seconds": runtime.settings.console_session_max_seconds}
    with read_only(runtime.db.connect()) as conn:  # most requests only read
        session, stale = accounts.peek_session(conn, token, runtime.clock(), **limits)
    if stale:  # refresh last_seen_at (at most every TOUCH_SECONDS per session)
        session = runtime.writer.run(lambda conn: accounts.session_for(conn, token, runtime.clock(), **limits))
    if session is None:
        return None
    return Viewer(email=session.email, role=session.role, csrf_token=session.csrf_token, token=token)


async def signed_in(request: Request) -> Viewer:
    """Dependency: the signed-in viewer, or the sign-in page."""
    viewer = await run_in_threadpool(lookup, request)
    if viewer is None:
        raise SignInRequired()
    request.state.actor = viewer.email
    return viewer


def allowed(act: str) -> Any:
    """Dependency: the signed-in viewer, if their role may `act` (see `CAN`)."""
    return _permitted(signed_in, act, "may")


async def form_of(request: Request) -> dict[str, str]:
    """The request's form fields (text only; a file upload is ignored)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def acting(request: Request) -> Viewer:
    """Dependency for every state-changing request: same origin, a live session, its CSRF token."""
    check_same_origin(request)
    viewer = await signed_in(request)
    sent = request.headers.get(CSRF_HEADER)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent is None and kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = (await form_of(request)).get(CSRF_FIELD)  # a form's token is in the form; anything else, the header
    check_token(viewer.csrf_token, sent)
    return viewer


def acting_as(act: str) -> Any:
    """Dependency: `acting` (a state-changing request), and the role may `act`."""
    return _permitted(acting, act, "acting_to")


def _permitted(who: Any, act: str, verb: str) -> Any:
    async def dependency(request: Request) -> Viewer:
        viewer: Viewer = await who(request)
        if not viewer.can(act):
            raise forbidden(act, viewer)
        return viewer

    dependency.__name__ = f"{verb}_{act}"
    return dependency


def secure_cookies(request: Request) -> bool:
    settings = _runtime(request).settings
    return request.url.scheme == "https" or str(settings.public_url).startswith("https://")


def set_session_cookie(response: Any, request: Request, token: str, max_age: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(max_age), path=COOKIE_PATH, httponly=True,
                        samesite="lax", secure=secure_cookies(request))


def clear_session_cookie(response: Any, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax",
                           secure=secure_cookies(request))


def signin_token(request: Request) -> str:
    """The sign-in form's token: the one in the cookie, or a new one."""
    current = request.cookies.get(SIGNIN_COOKIE)
    return current if current and 20 <= len(current) <= 100 else secrets.token_urlsafe(24)


def set_signin_cookie(response: Any, request: Request, token: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=secure_cookies(request))
