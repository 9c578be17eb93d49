"""Signing in to the console: passwords, invites, throttled sign-in, and the sessions it opens.

Passwords. A person's console password is kept as an argon2id hash (`argon2.PasswordHasher`, its
defaults) in `users.password_hash`; null until one is set. A password has 12 to 1024 characters
(`weak_password` otherwise). Setting one, by an operator (`set_password`) or through an invite
(`redeem_invite`), writes `user_changed` with field `password` and both values null (as a token
rotation does: the entry's subject is the email) and ends every console session of that person.

Invites. `create_invite` gives an active person a one-time link token (`wdn_invite_` + 32 random
bytes), shown once and stored as its SHA-256, with entry `user_invited` (`email`, `expires_at`
in RFC 3339 UTC). A new invite replaces the older ones: their links stop working at once (their
expiry is moved to now), so a link that was lost or sent to the wrong place can be withdrawn by
inviting again. `redeem_invite` uses a link exactly once, even when two redeem it together (a
conditional UPDATE on `used_at IS NULL`); the entry's actor is the person themselves.

Sign-in (`check_password`). Every refusal is `LoginRefused`: `invalid_credentials` with one
message whatever was wrong (unknown email, wrong password, revoked account, no password yet),
or `throttled` with `retry_after` seconds. Failed attempts are counted in `login_failures` per
account (the email as typed, normalised, whether or not anyone holds it, so a lockout reveals
nothing) and per address. When a count reaches its limit within `window` seconds of its first
failure, that account or address waits `window` seconds; a waiting attempt is refused before the
password is looked at. A success clears the account's count, never the address's. An unknown
email is still checked against a fixed dummy hash, so the time taken does not tell.

A refusal is raised after the failure is written on the caller's connection: that count must be
committed although the call raises, which `sign_in` (one transaction, committed either way)
does for the console. Signing in and failing to are not audit entries.

Sessions are in `sessions.py`; their functions are importable from here too.
"""

from __future__ import annotations

import functools
import math
import secrets
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.identities import registry as reg
from gateway.store.identities.registry import IdentityError, token_digest
from gateway.store.identities.sessions import (
    ConsoleSession,
    end_session,
    end_sessions_for,
    session_for,
    start_session,
)
from gateway.store.identities.users import USERS, User, normalise_email
from gateway.store.schema import invites, login_failures, users
from ledger.store import Ledger

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024
INVITE_TOKEN_PREFIX = "wdn_invite_"
_MAX_TOKEN_LENGTH = 128
_MAX_ADDRESS_LENGTH = 64
_MAX_SCOPE_KEY_LENGTH = 300  # what is kept of a typed email that is not an address

WRONG = "email or password is wrong"
INVALID_INVITE = "this invite link is unknown, used or expired"

_HASHER = PasswordHasher()  # argon2id; RFC 9106's low-memory parameters


class LoginRefused(IdentityError):
    """A sign-in refused: `invalid_credentials`, or `throttled` with `retry_after` seconds."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


# -- passwords ----------------------------------------------------------------------------------


def set_password(conn: Connection, ledger: Ledger, email: str, password: str, now: float, actor: str) -> None:
    """Set an active person's console password; every console session of theirs ends."""
    hashed = _hash(password)
    row = reg.lookup_active(conn, USERS, normalise_email(email))
    _store_password(conn, ledger, row.email, hashed, now, actor)


def _hash(password: str) -> str:
    """The argon2id hash of an acceptable password; `weak_password` otherwise."""
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        raise IdentityError("weak_password", f"a password needs at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise IdentityError("weak_password", f"a password may have at most {PASSWORD_MAX_LENGTH} characters")
    return _HASHER.hash(password)


def _store_password(conn: Connection, ledger: Ledger, email: str, hashed: str, now: float, actor: str) -> None:
    reg.change(conn, ledger, USERS, email, {"password_hash": hashed}, "password", None, None, actor)
    end_sessions_for(conn, email, now)


# -- invites ------------------------------------------------------------------------------------


def create_invite(conn: Connection, ledger: Ledger, email: str, now: float, actor: str, ttl_seconds: float) -> str:
    """A one-time link token for an active person to set their password, valid `ttl_seconds`;
    shown once (Warden keeps its SHA-256). Older unused invites of theirs stop working."""
    if not ttl_seconds > 0 or math.isinf(ttl_seconds):
        raise IdentityError("invalid_ttl", f"an invite must stay valid for some seconds, not {ttl_seconds!r}")
    stored = reg.lookup_active(conn, USERS, normalise_email(email)).email
    conn.execute(update(invites).where(invites.c.email == stored, invites.c.used_at.is_(None),
                                       invites.c.expires_at > now).values(expires_at=now))
    token = reg.new_token(INVITE_TOKEN_PREFIX)
    expires_at = now + ttl_seconds
    conn.execute(insert(invites).values(token_hash=token_digest(token), email=stored, created_at=now,
                                        expires_at=expires_at, used_at=None, created_by=actor[:254]))
    ledger.append(conn, "user_invited", actor, stored, {"email": stored, "expires_at": rfc3339(expires_at)})
    return token


def invite_email(conn: Connection, token: str, now: float) -> str | None:
    """The email a valid invite is for (unused, unexpired, its person still active); else None."""
    row = _valid_invite(conn, token, now)
    return None if row is None else str(row.email)


def redeem_invite(conn: Connection, ledger: Ledger, token: str, password: str, now: float) -> User:
    """Set the invited person's password through their invite, which is then used up. A weak
    password is refused before the invite is touched, so the link still works for a better one."""
    hashed = _hash(password)
    row = _valid_invite(conn, token, now)
    if row is None:
        raise IdentityError("invalid_invite", INVALID_INVITE)
    taken = conn.execute(update(invites).where(invites.c.token_hash == row.token_hash, invites.c.used_at.is_(None),
                                               invites.c.expires_at > now).values(used_at=now))
    if taken.rowcount != 1:  # redeemed by someone else meanwhile
        raise IdentityError("invalid_invite", INVALID_INVITE)
    _store_password(conn, ledger, row.email, hashed, now, row.email)
    return User(email=row.email, role=row.role)


def _valid_invite(conn: Connection, token: str, now: float) -> Any:
    if not isinstance(token, str) or not token.startswith(INVITE_TOKEN_PREFIX) or len(token) > _MAX_TOKEN_LENGTH:
        return None
    return conn.execute(
        select(invites.c.token_hash, users.c.email, users.c.role)
        .join(users, users.c.email == invites.c.email)
        .where(invites.c.token_hash == token_digest(token), invites.c.used_at.is_(None), invites.c.expires_at > now,
               users.c.revoked_at.is_(None))
    ).one_or_none()


# -- signing in ---------------------------------------------------------------------------------


def check_password(
    conn: Connection, email: str, password: str, address: str | None, now: float, *,
    max_failures: int, max_failures_per_address: int, window: float,
) -> User:
    """The person whose email and password these are; `LoginRefused` otherwise (see the module's
    docstring). Writes the failure counts before raising: commit them (`sign_in` does)."""
    account = f"account:{_typed_email(email)}"
    limits = {account: max_failures}
    if address:
        limits[f"address:{address[:_MAX_ADDRESS_LENGTH]}"] = max_failures_per_address
    waiting = conn.execute(select(login_failures.c.blocked_until).where(
        login_failures.c.scope.in_(list(limits)), login_failures.c.blocked_until > now)).scalars().all()
    if waiting:
        raise _throttled(max(waiting) - now)
    row = conn.execute(select(users).where(users.c.email == _typed_email(email))).one_or_none()
    stored: str | None = row.password_hash if row is not None and row.revoked_at is None else None
    if not _verify(stored, password):
        blocked = [until for scope, limit in limits.items()
                   if (until := _count_failure(conn, scope, limit, now, window)) is not None]  # fmt: skip
        if blocked:
            raise _throttled(max(blocked) - now)
        raise LoginRefused("invalid_credentials", WRONG)
    assert row is not None and stored is not None
    conn.execute(delete(login_failures).where(login_failures.c.scope == account))
    if _HASHER.check_needs_rehash(stored):  # the hasher's parameters grew since: not a new password
        conn.execute(update(users).where(users.c.email == row.email).values(password_hash=_HASHER.hash(password)))
    return User(email=row.email, role=row.role)


def sign_in(
    engine: Engine, email: str, password: str, address: str | None, now: float, *,
    max_failures: int, max_failures_per_address: int, window: float,
) -> tuple[str, ConsoleSession]:
    """Check the password and start a session, in one transaction that commits even when the
    sign-in is refused (so the failure counts). Returns the session's cookie token and session."""
    with engine.connect() as conn:
        try:
            user = check_password(conn, email, password, address, now, max_failures=max_failures,
                                  max_failures_per_address=max_failures_per_address, window=window)
        except LoginRefused:
            conn.commit()
            raise
        started = start_session(conn, user.email, now, address)
        conn.commit()
        return started


def _typed_email(value: str) -> str:
    """The email as typed, normalised; what is plainly not an address is kept lowercased."""
    try:
        return normalise_email(value)
    except IdentityError:
        return value.strip().lower()[:_MAX_SCOPE_KEY_LENGTH] if isinstance(value, str) else ""


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody's password matches, made with the same parameters as real ones."""
    return _HASHER.hash(secrets.token_urlsafe(32))


def _verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; as slow when there is nothing stored."""
    acceptable = isinstance(password, str) and 0 < len(password) <= PASSWORD_MAX_LENGTH
    try:
        _HASHER.verify(stored or _dummy_hash(), password if acceptable else "-")
    except (VerificationError, InvalidHashError):
        return False
    return acceptable and stored is not None


def _count_failure(conn: Connection, scope: str, limit: int, now: float, window: float) -> float | None:
    """Count one failed sign-in for `scope`; returns until when it must wait, if it now must."""
    table = login_failures
    here = table.c.scope == scope
    # a count whose window has passed, or whose wait is over, starts again
    conn.execute(update(table).where(here, or_(and_(table.c.blocked_until.is_(None), table.c.first_at <= now - window),
                                               table.c.blocked_until <= now))
                 .values(failures=0, first_at=now, blocked_until=None))  # fmt: skip
    if conn.execute(update(table).where(here).values(failures=table.c.failures + 1)).rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(scope=scope, failures=1, first_at=now, blocked_until=None))
        except IntegrityError:  # counted first by a concurrent attempt
            conn.execute(update(table).where(here).values(failures=table.c.failures + 1))
    failures, blocked_until = conn.execute(select(table.c.failures, table.c.blocked_until).where(here)).one()
    if failures < limit:
        return None
    if blocked_until is None:
        blocked_until = now + window
        conn.execute(update(table).where(here).values(blocked_until=blocked_until))
    return float(blocked_until)


def _throttled(seconds: float) -> LoginRefused:
    wait = max(1, math.ceil(seconds))
    minutes = math.ceil(wait / 60)
    return LoginRefused("throttled", f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes != 1 else ''}",
                        retry_after=wait)  # fmt: skip


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "INVITE_TOKEN_PREFIX",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "ConsoleSession",
    "LoginRefused",
    "check_password",
    "create_invite",
    "end_session",
    "end_sessions_for",
    "invite_email",
    "redeem_invite",
    "session_for",
    "set_password",
    "sign_in",
    "start_session",
]
