"""Console accounts: passwords, invites, throttled sign-in; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from gateway.store import identities as ids
from gateway.store.identities import accounts
from gateway.store.schema import invites, login_failures, users
from ledger.store import Ledger

ACTOR = "cli:operator"
GOOD = "correct horse battery"
LIMITS = {"max_failures": 3, "max_failures_per_address": 5, "window": 900.0}


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id with small parameters, so the many sign-ins below stay fast."""
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield


def _add(store: Any, email: str = "bob@example.com", role: str = "approver") -> ids.User:
    with store.engine.begin() as conn:
        return ids.add_user(conn, Ledger(), email, role, 1000.0, ACTOR)[0]


def _set(store: Any, email: str = "bob@example.com", password: str = GOOD, now: float = 1000.0) -> None:
    with store.engine.begin() as conn:
        ids.set_password(conn, Ledger(), email, password, now, ACTOR)


def _check(store: Any, email: str, password: str, now: float, address: str | None = "10.0.0.1") -> ids.User:
    """check_password as the console runs it: the failure counts commit even when it refuses."""
    with store.engine.connect() as conn:
        try:
            return ids.check_password(conn, email, password, address, now, **LIMITS)  # type: ignore[arg-type]
        finally:
            conn.commit()


def _refused(store: Any, email: str, password: str, now: float, address: str | None = "10.0.0.1") -> ids.LoginRefused:
    with pytest.raises(ids.LoginRefused) as refused:
        _check(store, email, password, now, address)
    return refused.value


def _stored_hash(store: Any, email: str = "bob@example.com") -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(select(users.c.password_hash).where(users.c.email == email)).scalar_one()


# -- passwords ----------------------------------------------------------------------------------


def test_a_password_is_kept_as_an_argon2id_hash_and_recorded_without_it(store: Any) -> None:
    _add(store)
    _set(store, "Bob@Example.com ")
    stored = _stored_hash(store)
    assert stored is not None and stored.startswith("$argon2id$")
    assert accounts.PasswordHasher().verify(stored, GOOD)
    [_added, entry] = store.entries()
    assert (entry["kind"], entry["actor"], entry["subject"]) == ("user_changed", ACTOR, "bob@example.com")
    assert entry["data"] == {"field": "password", "old": None, "new": None}
    for table, column, value in store.cells():
        assert GOOD.encode() not in (value if isinstance(value, bytes) else str(value).encode()), (table, column)
    assert _check(store, "BOB@example.com", GOOD, 2000.0) == ids.User(email="bob@example.com", role="approver")


def test_the_shipped_hasher_is_argon2id() -> None:
    hashed = PasswordHasher().hash(GOOD)  # what accounts._HASHER is outside these tests
    assert hashed.startswith("$argon2id$v=19$")


@pytest.mark.parametrize(("password", "message"), [
    ("a" * 11, "at least 12 characters"), ("", "at least 12 characters"), ("a" * 1025, "at most 1024 characters"),
])  # fmt: skip
def test_a_weak_password_is_refused(store: Any, password: str, message: str) -> None:
    _add(store)
    with pytest.raises(ids.IdentityError, match=message) as raised:
        _set(store, password=password)
    assert raised.value.code == "weak_password"
    assert _stored_hash(store) is None and store.size() == 1


@pytest.mark.parametrize("password", ["a" * 12, "é" * 1024])
def test_the_limits_are_inclusive(store: Any, password: str) -> None:
    _add(store)
    _set(store, password=password)
    assert _check(store, "bob@example.com", password, 2000.0).email == "bob@example.com"


def test_unknown_and_revoked_users_get_no_password(store: Any) -> None:
    with pytest.raises(ids.IdentityError) as raised:
        _set(store, "eve@example.com")
    assert raised.value.code == "unknown_user"
    _add(store, "ana@example.com", "founder")
    _add(store)
    with store.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), "bob@example.com", 1500.0, ACTOR)
    with pytest.raises(ids.IdentityError) as raised:
        _set(store)
    assert raised.value.code == "user_revoked"


def test_an_outdated_hash_is_replaced_at_sign_in(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _add(store)
    _set(store)
    cheap = _stored_hash(store)
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    _check(store, "bob@example.com", GOOD, 2000.0)
    stronger = _stored_hash(store)
    assert stronger != cheap and stronger is not None and "m=2048,t=2" in stronger
    assert store.size() == 2  # not a new password: no entry


# -- invites ------------------------------------------------------------------------------------


def _invite(store: Any, email: str = "bob@example.com", now: float = 1000.0, ttl: float = 3600.0) -> str:
    with store.engine.begin() as conn:
        return ids.create_invite(conn, Ledger(), email, now, ACTOR, ttl)


def _redeem(store: Any, token: str, now: float = 1100.0, password: str = GOOD) -> ids.User:
    with store.engine.begin() as conn:
        return ids.redeem_invite(conn, Ledger(), token, password, now)


def _invite_email(store: Any, token: str, now: float) -> str | None:
    with store.engine.connect() as conn:
        return ids.invite_email(conn, token, now)


def test_an_invite_sets_the_password_once(store: Any) -> None:
    _add(store)
    token = _invite(store, "BOB@example.com")
    assert token.startswith("wdn_invite_") and len(token) > 40
    assert _invite_email(store, token, 1050.0) == "bob@example.com"
    assert _redeem(store, token) == ids.User(email="bob@example.com", role="approver")
    assert _check(store, "bob@example.com", GOOD, 1200.0).email == "bob@example.com"
    assert _invite_email(store, token, 1150.0) is None
    with pytest.raises(ids.IdentityError, match="^this invite link is unknown, used or expired$") as raised:
        _redeem(store, token, password="another long password")
    assert raised.value.code == "invalid_invite"
    invited, changed = store.entries(1)
    assert (invited["kind"], invited["actor"], invited["subject"]) == ("user_invited", ACTOR, "bob@example.com")
    assert invited["data"] == {"email": "bob@example.com", "expires_at": "1970-01-01T01:16:40Z"}
    assert (changed["kind"], changed["actor"], changed["data"]) == (
        "user_changed", "bob@example.com", {"field": "password", "old": None, "new": None})
    for table, column, value in store.cells():
        assert token.encode() not in (value if isinstance(value, bytes) else str(value).encode()), (table, column)


def test_an_invite_expires(store: Any) -> None:
    _add(store)
    token = _invite(store, now=1000.0, ttl=60.0)
    assert _invite_email(store, token, 1059.0) == "bob@example.com"
    assert _invite_email(store, token, 1060.0) is None
    with pytest.raises(ids.IdentityError) as raised:
        _redeem(store, token, now=1060.0)
    assert raised.value.code == "invalid_invite"
    assert _stored_hash(store) is None


def test_an_invite_dies_with_its_user_and_none_is_made_for_a_revoked_one(store: Any) -> None:
    _add(store, "ana@example.com", "founder")
    _add(store)
    token = _invite(store)
    with store.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), "bob@example.com", 1010.0, ACTOR)
    assert _invite_email(store, token, 1020.0) is None
    with pytest.raises(ids.IdentityError) as raised:
        _redeem(store, token, now=1020.0)
    assert raised.value.code == "invalid_invite"
    with pytest.raises(ids.IdentityError) as raised:
        _invite(store)
    assert raised.value.code == "user_revoked"
    with pytest.raises(ids.IdentityError) as raised:
        _invite(store, "eve@example.com")
    assert raised.value.code == "unknown_user"


@pytest.mark.parametrize("token", ["", "wdn_invite_", "wdn_invite_nothing", "wdn_user_x", "wdn_invite_" + "a" * 200])
def test_an_unknown_invite_is_refused(store: Any, token: str) -> None:
    _add(store)
    _invite(store)
    assert _invite_email(store, token, 1050.0) is None
    with pytest.raises(ids.IdentityError) as raised:
        _redeem(store, token)
    assert raised.value.code == "invalid_invite"


def test_a_new_invite_replaces_the_older_ones(store: Any) -> None:
    _add(store)
    first = _invite(store, now=1000.0)
    second = _invite(store, now=1010.0)
    assert (_invite_email(store, first, 1020.0), _invite_email(store, second, 1020.0)) == (None, "bob@example.com")
    with pytest.raises(ids.IdentityError):
        _redeem(store, first, now=1020.0)
    _redeem(store, second, now=1020.0)


def test_a_weak_password_leaves_the_invite_usable(store: Any) -> None:
    _add(store)
    token = _invite(store)
    with pytest.raises(ids.IdentityError) as raised:
        _redeem(store, token, password="short")
    assert raised.value.code == "weak_password"
    assert _invite_email(store, token, 1100.0) == "bob@example.com"
    _redeem(store, token)


def test_an_invite_bad_ttl_is_refused(store: Any) -> None:
    _add(store)
    for ttl in (0.0, -5.0, float("inf")):
        with pytest.raises(ids.IdentityError) as raised:
            _invite(store, ttl=ttl)
        assert raised.value.code == "invalid_ttl"


def test_two_redeems_at_once_use_the_invite_once(store: Any) -> None:
    _add(store)
    token = _invite(store)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def redeem(password: str) -> None:
        barrier.wait()
        try:
            results.append(_redeem(store, token, password=password))
        except ids.IdentityError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=redeem, args=(f"{GOOD} {n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(map(str, results)) == sorted([str(ids.User(email="bob@example.com", role="approver")), "invalid_invite"])
    assert [e["kind"] for e in store.entries()].count("user_changed") == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(invites.c.used_at)).scalar_one() == 1100.0


# -- signing in ---------------------------------------------------------------------------------


def test_every_wrong_sign_in_looks_the_same(store: Any) -> None:
    _add(store, "ana@example.com", "founder")
    _set(store, "ana@example.com")
    _add(store)
    _set(store)
    _add(store, "carol@example.com")  # no password yet
    _add(store, "dan@example.com")
    _set(store, "dan@example.com")
    with store.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), "dan@example.com", 1500.0, ACTOR)
    attempts = [("bob@example.com", "wrong password!!"), ("eve@example.com", GOOD), ("carol@example.com", GOOD),
                ("dan@example.com", GOOD), ("not an email", GOOD), ("ana@example.com", ""),
                ("ana@example.com", "x" * 5000)]  # fmt: skip
    for n, (email, password) in enumerate(attempts):
        refused = _refused(store, email, password, 2000.0, address=f"10.0.0.{n}")
        assert (type(refused), refused.code, str(refused), refused.retry_after) == (
            ids.LoginRefused, "invalid_credentials", "email or password is wrong", None)
    assert isinstance(refused, ids.IdentityError)


def test_an_account_waits_after_too_many_failures(store: Any) -> None:
    _add(store)
    _set(store)
    assert _refused(store, "bob@example.com", "wrong password 1", 2000.0).code == "invalid_credentials"
    assert _refused(store, "Bob@Example.com", "wrong password 2", 2010.0, "10.0.0.2").code == "invalid_credentials"
    third = _refused(store, "bob@example.com", "wrong password 3", 2020.0, "10.0.0.3")
    assert (third.code, third.retry_after, str(third)) == ("throttled", 900, "too many failed sign-ins; try again in 15 minutes")
    # refused before the password is looked at, from any address
    waiting = _refused(store, "bob@example.com", GOOD, 2100.0, "10.9.9.9")
    assert (waiting.code, waiting.retry_after, str(waiting)) == ("throttled", 820, "too many failed sign-ins; try again in 14 minutes")
    assert _refused(store, "bob@example.com", GOOD, 2919.5).retry_after == 1
    assert str(_refused(store, "bob@example.com", GOOD, 2919.5)).endswith("try again in 1 minute")
    assert _check(store, "bob@example.com", GOOD, 2920.0).email == "bob@example.com"


def test_an_unknown_email_is_throttled_like_a_real_one(store: Any) -> None:
    outcomes = [_refused(store, "eve@example.com", "wrong password", 2000.0 + n, f"10.0.0.{n}").code for n in range(4)]
    assert outcomes == ["invalid_credentials", "invalid_credentials", "throttled", "throttled"]


def test_an_address_waits_after_too_many_failures_on_any_accounts(store: Any) -> None:
    _add(store)
    _set(store)
    for n in range(4):
        assert _refused(store, f"user{n}@example.com", "wrong password", 2000.0 + n).code == "invalid_credentials"
    assert _refused(store, "user9@example.com", "wrong password", 2010.0).code == "throttled"
    assert _refused(store, "bob@example.com", GOOD, 2020.0).code == "throttled"  # even the right password
    assert _check(store, "bob@example.com", GOOD, 2020.0, address="10.0.0.2").email == "bob@example.com"
    assert _check(store, "bob@example.com", GOOD, 2020.0, address=None).email == "bob@example.com"
    assert _check(store, "bob@example.com", GOOD, 2910.0).email == "bob@example.com"


def test_a_success_clears_the_account_count_and_the_window_forgets(store: Any) -> None:
    _add(store)
    _set(store)
    for now in (2000.0, 2001.0):
        _refused(store, "bob@example.com", "wrong password", now, None)
    _check(store, "bob@example.com", GOOD, 2002.0, None)
    for now in (2003.0, 2004.0):
        assert _refused(store, "bob@example.com", "wrong password", now, None).code == "invalid_credentials"
    # the window (900 s from the first failure) passes: counting starts again
    assert _refused(store, "bob@example.com", "wrong password", 2903.0, None).code == "invalid_credentials"
    assert _refused(store, "bob@example.com", "wrong password", 2904.0, None).code == "invalid_credentials"
    assert _refused(store, "bob@example.com", "wrong password", 2905.0, None).code == "throttled"
    with store.engine.connect() as conn:
        assert conn.execute(select(login_failures.c.scope)).scalars().all() == ["account:bob@example.com"]


def test_sign_in_counts_a_refusal_and_opens_a_session(store: Any) -> None:
    _add(store)
    _set(store)
    for now in (2000.0, 2001.0):
        with pytest.raises(ids.LoginRefused):
            ids.sign_in(store.engine, "bob@example.com", "wrong password", "10.0.0.1", now, **LIMITS)  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        assert conn.execute(select(login_failures.c.failures).where(
            login_failures.c.scope == "account:bob@example.com")).scalar_one() == 2
    token, session = ids.sign_in(store.engine, "bob@example.com", GOOD, "10.0.0.1", 2002.0, **LIMITS)  # type: ignore[arg-type]
    assert (session.email, session.role) == ("bob@example.com", "approver")
    with store.engine.begin() as conn:
        assert ids.session_for(conn, token, 2003.0, idle_seconds=60, max_seconds=600) == session
