"""Sign in, sign out, and the one-time invite link that sets a password.

A wrong email and a wrong password get the same answer; repeated failures wait per account and per
address (`gateway.store.identities.accounts`). The sign-in and invite forms carry their own CSRF
token (a cookie and a field that must match), since there is no session yet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from console.auth import (
    SESSION_COOKIE, SIGNIN_COOKIE, Viewer, acting, clear_session_cookie, lookup, set_session_cookie,
    set_signin_cookie, signin_token,
)
from console.render import page, root, runtime_of
from console.security import CrossSite, check_same_origin, check_token
from gateway.store import identities as accounts
from gateway.store.identities import IdentityError

router = APIRouter()

MAX_FIELD = 1024


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    base = root(request)
    if target and target.startswith(f"{base}/") and not target.startswith("//") and "\\" not in target \
            and "://" not in target:
        return target
    return f"{base}/"


def _signin_page(request: Request, *, error: str | None = None, email: str = "", next_: str | None = None,
                 status: int = 200) -> Response:
    token = signin_token(request)
    response = page(request, "login.html", None, status=status, error=error, email=email,
                    next=safe_next(request, next_), signin_token=token)
    set_signin_cookie(response, request, token)
    return response


@router.get("/login", name="login")
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if lookup(request) is not None:
        return RedirectResponse(safe_next(request, next), status_code=303)
    return _signin_page(request, next_=next)


def _check_signin_form(request: Request, sent: str) -> None:
    check_same_origin(request)
    check_token(request.cookies.get(SIGNIN_COOKIE) or "", sent)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login")
def login(request: Request, email: Annotated[str, Form(max_length=MAX_FIELD)] = "",
          password: Annotated[str, Form(max_length=MAX_FIELD)] = "",
          sent_token: Annotated[str, Form(alias="signin_token", max_length=200)] = "",
          next: Annotated[str, Form(max_length=2048)] = "") -> Response:  # noqa: A002
    _check_signin_form(request, sent_token)
    runtime = runtime_of(request)
    settings = runtime.settings

    def work(conn: Any) -> Any:
        now = runtime.clock()
        try:
            user = accounts.check_password(
                conn, email, password, _address(request), now,
                max_failures=settings.login_max_failures,
                max_failures_per_address=settings.login_max_failures_per_address,
                window=settings.login_window_seconds)
        except accounts.LoginRefused as refused:
            return refused  # the failure is counted: this transaction commits
        return accounts.start_session(conn, user.email, now, _address(request))

    outcome = runtime.writer.run(work)
    if isinstance(outcome, accounts.LoginRefused):
        status = 429 if outcome.code == "throttled" else 401
        headers = {"Retry-After": str(int(outcome.retry_after or 1))} if outcome.code == "throttled" else None
        response = _signin_page(request, error=str(outcome), email=email[:254], next_=next, status=status)
        if headers:
            response.headers.update(headers)
        return response
    token, _session = outcome
    response = RedirectResponse(safe_next(request, next), status_code=303)
    set_session_cookie(response, request, token, settings.console_session_max_seconds)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer: Viewer = await acting(request)
    runtime = runtime_of(request)
    await run_in_threadpool(runtime.writer.run, lambda conn: accounts.end_session(conn, viewer.token, runtime.clock()))
    response = RedirectResponse(f"{root(request)}/login", status_code=303)
    clear_session_cookie(response, request)
    return response


def _invite_email(request: Request, token: str) -> str | None:
    runtime = runtime_of(request)
    if len(token) > 200:
        return None
    email: str | None = runtime.writer.run(lambda conn: accounts.invite_email(conn, token, runtime.clock()))
    return email


@router.get("/invite/{token}", name="invite")
def invite_form(request: Request, token: str) -> Response:
    email = _invite_email(request, token)
    if email is None:
        return page(request, "error.html", None, status=404, title="This link cannot be used",
                    message="this invite link is unknown, used or expired; ask a founder for a new one "
                            "(`warden users invite EMAIL`)")
    signin = signin_token(request)
    response = page(request, "invite.html", None, email=email, token=token, signin_token=signin, error=None)
    set_signin_cookie(response, request, signin)
    return response


@router.post("/invite/{token}")
def invite(request: Request, token: str, password: Annotated[str, Form(max_length=MAX_FIELD)] = "",
           again: Annotated[str, Form(max_length=MAX_FIELD)] = "",
           sent_token: Annotated[str, Form(alias="signin_token", max_length=200)] = "") -> Response:
    _check_signin_form(request, sent_token)
    runtime = runtime_of(request)
    email = _invite_email(request, token)
    if email is None:
        return page(request, "error.html", None, status=404, title="This link cannot be used",
                    message="this invite link is unknown, used or expired; ask a founder for a new one")
    error = "the two passwords differ" if password != again else None
    if error is None:
        def work(conn: Any) -> Any:
            now = runtime.clock()
            try:
                user = accounts.redeem_invite(conn, runtime.ledger, token, password, now)
            except IdentityError as exc:
                return exc
            return accounts.start_session(conn, user.email, now, _address(request))

        outcome = runtime.writer.run(work)
        if not isinstance(outcome, IdentityError):
            session_token, _session = outcome
            response: Response = RedirectResponse(f"{root(request)}/", status_code=303)
            set_session_cookie(response, request, session_token, runtime.settings.console_session_max_seconds)
            return response
        error = str(outcome)
    signin = signin_token(request)
    response = page(request, "invite.html", None, status=422, email=email, token=token, signin_token=signin,
                    error=error)
    set_signin_cookie(response, request, signin)
    return response


__all__ = ["router", "SESSION_COOKIE", "CrossSite"]
