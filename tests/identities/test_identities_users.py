"""People's accounts: tokens, roles, audit entries and refusals; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection

from gateway.store import identities as ids
from ledger.store import Ledger

ACTOR = "cli:operator"


def _add(store: Any, email: str = "Bob@Example.COM ", role: str = "approver") -> tuple[ids.User, str]:
    with store.engine.begin() as conn:
        return ids.add_user(conn, Ledger(), email, role, 1000.0, ACTOR)


def _authenticate(store: Any, token: str) -> ids.User | None:
    with store.engine.connect() as conn:
        return ids.authenticate_user(conn, token)


def test_a_token_authenticates_its_user_with_a_normalised_email(store: Any) -> None:
    user, token = _add(store)
    assert user == ids.User(email="bob@example.com", role="approver")
    assert token.startswith(ids.USER_TOKEN_PREFIX)
    assert _authenticate(store, token) == user
    assert _authenticate(store, token + "x") is None
    with store.engine.begin() as conn:
        _agent, agent_token = ids.add_agent(conn, Ledger(), "bot", "A1", [], None, 1.0, ACTOR)
        assert ids.authenticate_user(conn, agent_token) is None  # an agent's token is not a person's
        assert ids.authenticate_agent(conn, token) is None


def test_rotation_and_revocation(store: Any) -> None:
    user, old = _add(store)
    with store.engine.begin() as conn:
        new = ids.rotate_user_token(conn, Ledger(), "BOB@example.com", 2.0, ACTOR)
    assert (_authenticate(store, old), _authenticate(store, new)) == (None, user)
    with store.engine.begin() as conn:
        ids.revoke_user(conn, Ledger(), user.email, 3.0, ACTOR)
    assert _authenticate(store, new) is None
    with store.engine.connect() as conn:
        [record] = ids.list_users(conn)
        assert (record.user, record.active, record.revoked_at) == (user, False, 3.0)
        assert ids.list_users(conn, include_revoked=False) == []
    with pytest.raises(ids.IdentityError) as raised, store.engine.begin() as conn:
        ids.set_role(conn, Ledger(), user.email, "founder", 4.0, ACTOR)
    assert raised.value.code == "user_revoked"
    with pytest.raises(ids.IdentityError, match="revoked; accounts are not reused") as raised:
        _add(store, "bob@example.com")
    assert raised.value.code == "user_exists"


def test_tokens_never_reach_the_log(store: Any) -> None:
    _user, first = _add(store)
    with store.engine.begin() as conn:
        second = ids.rotate_user_token(conn, Ledger(), "bob@example.com", 2.0, ACTOR)
    for token in (first, second):
        for table, column, value in store.cells():
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert token.encode() not in raw, (table, column)
            if table.startswith("ledger"):
                assert ids.token_digest(token) not in raw and ids.token_digest(token).hex().encode() not in raw


@pytest.mark.parametrize(
    ("change", "kind", "data"),
    [
        (lambda c, l: ids.set_role(c, l, "bob@example.com", "Founder", 2.0, ACTOR), "user_changed",
         {"field": "role", "old": "approver", "new": "founder"}),
        (lambda c, l: ids.rotate_user_token(c, l, "bob@example.com", 2.0, ACTOR), "user_changed",
         {"field": "token", "old": None, "new": None}),
        (lambda c, l: ids.revoke_user(c, l, "bob@example.com", 2.0, ACTOR), "user_revoked",
         {"email": "bob@example.com", "role": "approver"}),
    ],
    ids=["role", "token", "revoke"],
)  # fmt: skip
def test_each_change_writes_one_entry_of_its_kind(
    store: Any, change: Callable[[Connection, Ledger], object], kind: str, data: dict[str, Any]
) -> None:
    _add(store)
    [added] = store.entries()
    assert (added["kind"], added["actor"], added["subject"]) == ("user_added", ACTOR, "bob@example.com")
    assert added["data"] == {"email": "bob@example.com", "role": "approver"}
    with store.engine.begin() as conn:
        change(conn, Ledger())
    [entry] = store.entries(1)
    assert (entry["kind"], entry["actor"], entry["subject"], entry["data"]) == (kind, ACTOR, "bob@example.com", data)


def test_the_same_role_again_records_nothing(store: Any) -> None:
    _add(store)
    with store.engine.begin() as conn:
        ids.set_role(conn, Ledger(), "bob@example.com", "approver", 2.0, ACTOR)
    assert store.size() == 1


@pytest.mark.parametrize(
    ("email", "role", "code"),
    [
        ("bob", "approver", "invalid_email"),
        ("bob@@example.com", "approver", "invalid_email"),
        ("bob example@example.com", "approver", "invalid_email"),
        ("b" * 250 + "@example.com", "approver", "invalid_email"),
        ("bob@example.com", "owner", "invalid_role"),
        ("bob@example.com", "", "invalid_role"),
    ],
)
def test_bad_input_is_refused(store: Any, email: str, role: str, code: str) -> None:
    with pytest.raises(ids.IdentityError) as raised:
        _add(store, email, role)
    assert raised.value.code == code
    assert store.size() == 0


def test_duplicates_and_unknown_users(store: Any) -> None:
    _add(store)
    with pytest.raises(ids.IdentityError, match="user 'bob@example.com' already exists$") as raised:
        _add(store, "BOB@EXAMPLE.COM", "viewer")
    assert raised.value.code == "user_exists"
    for change in (lambda c: ids.revoke_user(c, Ledger(), "eve@example.com", 1.0, ACTOR),
                   lambda c: ids.set_role(c, Ledger(), "eve@example.com", "viewer", 1.0, ACTOR),
                   lambda c: ids.rotate_user_token(c, Ledger(), "eve@example.com", 1.0, ACTOR),
                   lambda c: ids.get_user(c, "eve@example.com")):  # fmt: skip
        with pytest.raises(ids.IdentityError, match="no user 'eve@example.com'") as raised, store.engine.begin() as conn:
            change(conn)
        assert raised.value.code == "unknown_user"
    assert store.size() == 1


def test_the_last_founder_cannot_be_revoked_or_demoted(store: Any) -> None:
    founder, _token = _add(store, "ana@example.com", "founder")
    for change in (lambda c: ids.revoke_user(c, Ledger(), founder.email, 2.0, ACTOR),
                   lambda c: ids.set_role(c, Ledger(), founder.email, "approver", 2.0, ACTOR)):
        with pytest.raises(ids.IdentityError) as refused, store.engine.begin() as conn:
            change(conn)
        assert refused.value.code == "last_founder"
    _add(store, "ben@example.com", "founder")
    with store.engine.begin() as conn:  # with a second founder, either change is allowed
        assert ids.set_role(conn, Ledger(), founder.email, "approver", 3.0, ACTOR).role == "approver"
    with store.engine.begin() as conn, pytest.raises(ids.IdentityError, match="last active founder"):
        ids.revoke_user(conn, Ledger(), "ben@example.com", 4.0, ACTOR)
