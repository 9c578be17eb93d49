"""People signed in to the console: one row per sign-in, found by the SHA-256 of its cookie.

`start_session` issues the cookie token (`secrets.token_urlsafe(32)`, shown once: the database
keeps only its hash) and a random CSRF token kept beside it. `session_for` is the one lookup a
console request makes: it answers None for an unknown or ended session, one idle longer than
`idle_seconds` or older than `max_seconds` (ending it), and one whose user was revoked (ending
it). The role in a `ConsoleSession` is read from `users` on every lookup, so a demotion takes
effect at the next request. Sessions end when their user signs out (`end_session`), changes
password, changes role or is revoked (`end_sessions_for`).

Signing in and out are not audit entries: they change no one's access. Times are UNIX seconds.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from sqlalchemy import Connection, insert, select, update

from gateway.store.identities.registry import IdentityError, token_digest
from gateway.store.schema import console_sessions, users

#: last_seen_at is written again only once it is this old, so a busy console does not write on
#: every request.
TOUCH_SECONDS = 30.0
_MAX_TOKEN_LENGTH = 128
_MAX_ADDRESS_LENGTH = 64


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session: who, with their current role, and the CSRF token of its forms."""

    email: str
    role: str
    csrf_token: str
    created_at: float
    last_seen_at: float


def start_session(conn: Connection, email: str, now: float, address: str | None) -> tuple[str, ConsoleSession]:
    """Sign `email` (an active user, as stored) in; returns the cookie token (shown once) and the
    session. `address` is where the sign-in came from, kept for the person's list of sessions."""
    row = conn.execute(select(users.c.email, users.c.role, users.c.revoked_at).where(users.c.email == email)).one_or_none()
    if row is None:
        raise IdentityError("unknown_user", f"no user {email!r}")
    if row.revoked_at is not None:
        raise IdentityError("user_revoked", f"user {email!r} is revoked")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(insert(console_sessions).values(
        token_hash=token_digest(token), email=row.email, csrf_token=csrf, created_at=now, last_seen_at=now,
        ended_at=None, address=None if address is None else address[:_MAX_ADDRESS_LENGTH],
    ))  # fmt: skip
    return token, ConsoleSession(email=row.email, role=row.role, csrf_token=csrf, created_at=now, last_seen_at=now)


def session_for(
    conn: Connection, token: str, now: float, *, idle_seconds: float, max_seconds: float,
) -> ConsoleSession | None:
    """The live session of this cookie token, its last_seen_at refreshed when older than
    `TOUCH_SECONDS`; None when there is none (see the module's docstring). Writes: run it in a
    transaction that commits."""
    found = _lookup(conn, token, now, idle_seconds, max_seconds)
    if found is None:
        return None
    digest, session, expired = found
    if expired:
        _end(conn, digest, now)
        return None
    if now - session.last_seen_at > TOUCH_SECONDS:
        conn.execute(update(console_sessions).where(console_sessions.c.token_hash == digest,
                                                    console_sessions.c.ended_at.is_(None)).values(last_seen_at=now))
        session = replace(session, last_seen_at=now)
    return session


def peek_session(
    conn: Connection, token: str, now: float, *, idle_seconds: float, max_seconds: float,
) -> tuple[ConsoleSession | None, bool]:
    """`session_for` without writing, for a read-only connection: the live session (None when
    there is none) and whether its last_seen_at is due a refresh (then call `session_for` in a
    transaction). An expired session is refused here as there; ending it can wait."""
    found = _lookup(conn, token, now, idle_seconds, max_seconds)
    if found is None or found[2]:
        return None, False
    session = found[1]
    return session, now - session.last_seen_at > TOUCH_SECONDS


def _lookup(conn: Connection, token: str, now: float, idle_seconds: float,
            max_seconds: float) -> tuple[bytes, ConsoleSession, bool] | None:
    """(digest, session, expired) of an open session of this token: expired when idle too long,
    past its lifetime, or its person revoked. None for no open session."""
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    digest = token_digest(token)
    row = conn.execute(
        select(console_sessions, users.c.role, users.c.revoked_at)
        .join(users, users.c.email == console_sessions.c.email)
        .where(console_sessions.c.token_hash == digest)
    ).one_or_none()
    if row is None or row.ended_at is not None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None
    expired = row.revoked_at is not None or now - row.last_seen_at > idle_seconds or now - row.created_at > max_seconds
    session = ConsoleSession(email=row.email, role=row.role, csrf_token=row.csrf_token, created_at=row.created_at,
                             last_seen_at=row.last_seen_at)  # fmt: skip
    return digest, session, expired


def end_session(conn: Connection, token: str, now: float) -> None:
    """Sign this cookie's session out (nothing happens for an unknown or ended one)."""
    if isinstance(token, str) and token and len(token) <= _MAX_TOKEN_LENGTH:
        _end(conn, token_digest(token), now)


def end_sessions_for(conn: Connection, email: str, now: float) -> int:
    """End every open session of `email` (as stored, lowercase); returns how many were open."""
    done = conn.execute(update(console_sessions).where(console_sessions.c.email == email,
                                                       console_sessions.c.ended_at.is_(None)).values(ended_at=now))
    return int(done.rowcount)


def _end(conn: Connection, digest: bytes, now: float) -> None:
    conn.execute(update(console_sessions).where(console_sessions.c.token_hash == digest,
                                                console_sessions.c.ended_at.is_(None)).values(ended_at=now))


def purge_stale(conn: Connection, now: float, *, max_seconds: float, window: float) -> int:
    """Delete what no longer decides anything: sessions ended or past their lifetime for a day,
    and sign-in failure counts whose window and wait are over. Returns the rows deleted."""
    from sqlalchemy import and_, delete, or_

    from gateway.store.schema import login_failures

    day = 86_400.0
    gone = conn.execute(delete(console_sessions).where(or_(
        console_sessions.c.ended_at < now - day, console_sessions.c.created_at < now - max_seconds - day))).rowcount
    gone += conn.execute(delete(login_failures).where(and_(
        login_failures.c.first_at < now - window,
        or_(login_failures.c.blocked_until.is_(None), login_failures.c.blocked_until < now)))).rowcount
    return int(gone)
