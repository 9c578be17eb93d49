"""Console sessions: lifetime, sign-out, and what ends them; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from gateway.store import identities as ids
from gateway.store.identities import accounts
from gateway.store.schema import console_sessions, users
from ledger.store import Ledger

ACTOR = "cli:operator"
IDLE, MAX = 1800.0, 43200.0


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield


@pytest.fixture
def people(store: Any) -> Any:
    with store.engine.begin() as conn:
        ids.add_user(conn, Ledger(), "ana@example.com", "founder", 1.0, ACTOR)
        ids.add_user(conn, Ledger(), "bob@example.com", "approver", 1.0, ACTOR)
    return store


def _start(store: Any, email: str = "bob@example.com", now: float = 1000.0, address: str | None = "10.0.0.1") -> tuple[str, ids.ConsoleSession]:
    with store.engine.begin() as conn:
        return ids.start_session(conn, email, now, address)


def _for(store: Any, token: str, now: float) -> ids.ConsoleSession | None:
    with store.engine.begin() as conn:
        return ids.session_for(conn, token, now, idle_seconds=IDLE, max_seconds=MAX)


def test_a_session_is_found_by_its_token_and_only_its_hash_is_kept(people: Any) -> None:
    token, session = _start(people)
    assert session == ids.ConsoleSession(email="bob@example.com", role="approver", csrf_token=session.csrf_token,
                                         created_at=1000.0, last_seen_at=1000.0)  # fmt: skip
    assert len(token) >= 43 and len(session.csrf_token) >= 43 and token != session.csrf_token
    assert _for(people, token, 1001.0) == session
    other, second = _start(people)
    assert other != token and second.csrf_token != session.csrf_token
    for bad in ("", token + "x", token[:-1], "x" * 500):
        assert _for(people, bad, 1001.0) is None
    for table, column, value in people.cells():
        assert token.encode() not in (value if isinstance(value, bytes) else str(value).encode()), (table, column)
    with people.engine.connect() as conn:
        assert conn.execute(select(console_sessions.c.address).where(
            console_sessions.c.token_hash == ids.token_digest(token))).scalar_one() == "10.0.0.1"
    assert people.size() == 2  # signing in is not an audit entry


def test_only_an_active_person_signs_in(people: Any) -> None:
    with people.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), "bob@example.com", 2.0, ACTOR)
    for email, code in (("bob@example.com", "user_revoked"), ("eve@example.com", "unknown_user")):
        with pytest.raises(ids.IdentityError) as raised:
            _start(people, email)
        assert raised.value.code == code


def test_an_idle_session_ends(people: Any) -> None:
    token, _session = _start(people)
    assert _for(people, token, 1000.0 + IDLE) is not None
    assert _for(people, token, 1000.0 + 2 * IDLE + 1) is None
    assert _for(people, token, 1000.0 + 2 * IDLE) is None  # ended for good


def test_a_request_keeps_a_session_alive_but_last_seen_is_written_at_most_every_30_seconds(people: Any) -> None:
    token, _session = _start(people)
    found = _for(people, token, 1020.0)
    assert found is not None and found.last_seen_at == 1000.0
    found = _for(people, token, 1031.0)
    assert found is not None and found.last_seen_at == 1031.0
    assert _for(people, token, 1031.0 + IDLE) is not None
    assert _for(people, token, 1031.0 + 2 * IDLE) is not None


def test_a_busy_session_still_ends_at_its_maximum_age(people: Any) -> None:
    token, _session = _start(people)
    now = 1000.0
    while now + 1000.0 <= 1000.0 + MAX:
        now += 1000.0
        assert _for(people, token, now) is not None
    assert _for(people, token, 1000.0 + MAX + 1) is None


def test_signing_out_ends_one_session(people: Any) -> None:
    first, _ = _start(people)
    second, _ = _start(people)
    with people.engine.begin() as conn:
        ids.end_session(conn, first, 1010.0)
        ids.end_session(conn, "not a token", 1010.0)
    assert (_for(people, first, 1011.0), _for(people, second, 1011.0) is not None) == (None, True)


def test_a_password_change_ends_every_session_of_that_person(people: Any) -> None:
    mine = [_start(people)[0] for _ in range(2)]
    hers, _ = _start(people, "ana@example.com")
    with people.engine.begin() as conn:
        ids.set_password(conn, Ledger(), "bob@example.com", "a brand new password", 1010.0, ACTOR)
    assert [_for(people, token, 1011.0) for token in mine] == [None, None]
    assert _for(people, hers, 1011.0) is not None
    with people.engine.begin() as conn:
        assert ids.end_sessions_for(conn, "ana@example.com", 1012.0) == 1
    assert _for(people, hers, 1013.0) is None


def test_a_role_change_shows_at_once_and_a_set_role_signs_them_out(people: Any) -> None:
    token, _ = _start(people)
    with people.engine.begin() as conn:  # a change written behind the registry's back still shows
        conn.execute(update(users).where(users.c.email == "bob@example.com").values(role="viewer"))
    found = _for(people, token, 1010.0)
    assert found is not None and found.role == "viewer"
    with people.engine.begin() as conn:
        ids.set_role(conn, Ledger(), "bob@example.com", "auditor", 1020.0, ACTOR)
    assert _for(people, token, 1021.0) is None
    again, session = _start(people, now=1030.0)
    assert session.role == "auditor"
    with people.engine.begin() as conn:
        ids.set_role(conn, Ledger(), "bob@example.com", "auditor", 1040.0, ACTOR)  # no change: stays signed in
    assert _for(people, again, 1041.0) is not None


def test_a_revoked_person_is_signed_out(people: Any) -> None:
    token, _ = _start(people)
    with people.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), "bob@example.com", 1010.0, ACTOR)
    assert _for(people, token, 1011.0) is None
    with people.engine.connect() as conn:
        assert conn.execute(select(console_sessions.c.ended_at)).scalar_one() == 1010.0


def test_a_session_of_a_person_revoked_behind_the_registry_is_refused(people: Any) -> None:
    token, _ = _start(people)
    with people.engine.begin() as conn:
        conn.execute(update(users).where(users.c.email == "bob@example.com").values(revoked_at=1005.0))
    assert _for(people, token, 1010.0) is None
    with people.engine.connect() as conn:
        assert conn.execute(select(console_sessions.c.ended_at)).scalar_one() == 1010.0


def test_peeking_reads_without_writing_and_says_when_a_refresh_is_due(people: Any) -> None:
    from ledger.database import read_only

    token, session = _start(people)

    def peek(now: float) -> tuple[ids.ConsoleSession | None, bool]:
        with read_only(people.engine.connect()) as conn:  # a write here would fail
            return ids.peek_session(conn, token, now, idle_seconds=IDLE, max_seconds=MAX)

    assert peek(1001.0) == (session, False)
    due = peek(1000.0 + ids.sessions.TOUCH_SECONDS + 1)
    assert due[0] == session and due[1] is True
    assert peek(1000.0 + IDLE + 1) == (None, False)  # idle: refused, as session_for refuses it
    assert peek(1000.0 + IDLE - 1) == (session, True)
    assert _for(people, token, 1000.0 + IDLE - 1) is not None  # the refresh keeps it alive
    assert peek(1000.0 + 2 * IDLE - 2)[0] is not None
    with people.engine.begin() as conn:
        ids.end_session(conn, token, 5000.0)
    assert peek(5001.0) == (None, False)


def test_stale_sessions_and_spent_failure_counts_are_purged(people: Any) -> None:
    from gateway.store.schema import login_failures

    ended, _ = _start(people, now=1000.0)
    live, _ = _start(people, now=100_000.0)
    with people.engine.begin() as conn:
        ids.end_session(conn, ended, 1000.0)
        conn.execute(login_failures.insert().values(scope="account:x@y.z", failures=2, first_at=1000.0,
                                                    blocked_until=None))
        conn.execute(login_failures.insert().values(scope="address:10.0.0.9", failures=9, first_at=99_000.0,
                                                    blocked_until=200_000.0))
    with people.engine.begin() as conn:
        assert ids.purge_stale(conn, 100_100.0, max_seconds=MAX, window=900.0) == 2
    with people.engine.connect() as conn:
        assert conn.execute(select(console_sessions.c.token_hash)).scalars().all() == [ids.token_digest(live)]
        assert conn.execute(select(login_failures.c.scope)).scalars().all() == ["address:10.0.0.9"]  # still waiting
    assert _for(people, live, 100_100.0) is not None
