"""The agent registry: tokens, changes and their audit entries, refusals; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, event, inspect, select

from dsl.model import Autonomy
from gateway.store import identities as ids
from gateway.engine.agents import Agent
from gateway.store.schema import agents
from ledger.store import Ledger

ACTOR = "cli:operator"


def _add(store: Any, name: str = "refund-bot", **overrides: Any) -> tuple[Agent, str]:
    fields: dict[str, Any] = {"autonomy": "A2", "tools": ["stripe.refund", "crm.*"], "owner": "Ann@Example.com"}
    fields.update(overrides)
    with store.engine.begin() as conn:
        return ids.add_agent(conn, Ledger(), name, fields["autonomy"], fields["tools"], fields["owner"], 1000.0, ACTOR)


def _authenticate(store: Any, token: str) -> Agent | None:
    with store.engine.connect() as conn:
        return ids.authenticate_agent(conn, token)


def test_a_token_authenticates_its_agent_and_nothing_else(store: Any) -> None:
    agent, token = _add(store)
    assert agent == Agent(name="refund-bot", autonomy=Autonomy.A2, owner="ann@example.com",
                          tools=("stripe.refund", "crm.*"))  # fmt: skip
    assert token.startswith(ids.AGENT_TOKEN_PREFIX) and len(token) >= len(ids.AGENT_TOKEN_PREFIX) + 43
    assert _authenticate(store, token) == agent
    _other, other_token = _add(store, "other-bot")
    assert _authenticate(store, other_token) != agent
    for wrong in [token + "x", token[:-1], ids.new_token(ids.AGENT_TOKEN_PREFIX), token.replace("agent", "user"),
                  token[len(ids.AGENT_TOKEN_PREFIX):], "", "wdn_agent_" + "a" * 500]:  # fmt: skip
        assert _authenticate(store, wrong) is None, wrong


def test_a_rotated_token_stops_working(store: Any) -> None:
    agent, old = _add(store)
    with store.engine.begin() as conn:
        new = ids.rotate_agent_token(conn, Ledger(), agent.name, 2000.0, ACTOR)
    assert new != old
    assert _authenticate(store, old) is None
    assert _authenticate(store, new) == agent


def test_a_revoked_agent_is_refused_and_frozen(store: Any) -> None:
    agent, token = _add(store)
    with store.engine.begin() as conn:
        ids.revoke_agent(conn, Ledger(), agent.name, 2000.0, ACTOR)
    assert _authenticate(store, token) is None
    with store.engine.connect() as conn:
        record = ids.get_agent(conn, agent.name)
        assert (record.active, record.revoked_at, record.created_at) == (False, 2000.0, 1000.0)
        assert [r.agent.name for r in ids.list_agents(conn, include_revoked=False)] == []
    changes: list[Callable[[Connection], object]] = [
        lambda c: ids.revoke_agent(c, Ledger(), agent.name, 3000.0, ACTOR),
        lambda c: ids.set_autonomy(c, Ledger(), agent.name, "A3", 3000.0, ACTOR),
        lambda c: ids.set_tools(c, Ledger(), agent.name, ["crm.*"], 3000.0, ACTOR),
        lambda c: ids.rotate_agent_token(c, Ledger(), agent.name, 3000.0, ACTOR),
    ]
    for change in changes:
        with pytest.raises(ids.IdentityError) as raised, store.engine.begin() as conn:
            change(conn)
        assert raised.value.code == "agent_revoked"
    with pytest.raises(ids.IdentityError, match="revoked; names are not reused") as raised:
        _add(store, agent.name)
    assert raised.value.code == "agent_exists"


def test_tokens_are_stored_only_as_their_hashes(store: Any) -> None:
    agent, first = _add(store)
    with store.engine.begin() as conn:
        second = ids.rotate_agent_token(conn, Ledger(), agent.name, 2000.0, ACTOR)
        ids.set_autonomy(conn, Ledger(), agent.name, "A3", 2000.0, ACTOR)
    for token in (first, second):
        digest = ids.token_digest(token)
        forms = [token.encode(), token[len(ids.AGENT_TOKEN_PREFIX):].encode(), digest, digest.hex().encode(),
                 base64.b64encode(digest), base64.urlsafe_b64encode(digest).rstrip(b"=")]  # fmt: skip
        for table, column, value in store.cells():
            raw = value if isinstance(value, bytes) else str(value).encode()
            for form in forms:
                if form == digest and token == second and (table, column) == ("agents", "token_hash"):
                    assert raw == digest  # the one place it belongs
                    continue
                assert form not in raw, (table, column, form)
    with store.engine.connect() as conn:
        stored = conn.execute(select(agents.c.token_hash)).scalar_one()
    assert bytes(stored) == ids.token_digest(second)


def _grid() -> list[tuple[str, Callable[[Connection, Ledger], object], str, dict[str, Any]]]:
    name = "refund-bot"
    return [
        ("autonomy", lambda c, l: ids.set_autonomy(c, l, name, "a4", 2.0, ACTOR), "agent_changed",
         {"field": "autonomy", "old": "A2", "new": "A4"}),
        ("tools", lambda c, l: ids.set_tools(c, l, name, [" stripe.* ", "stripe.*"], 2.0, ACTOR), "agent_changed",
         {"field": "tools", "old": ["stripe.refund", "crm.*"], "new": ["stripe.*"]}),
        ("owner", lambda c, l: ids.set_owner(c, l, name, "Bo@Example.com", 2.0, ACTOR), "agent_changed",
         {"field": "owner", "old": "ann@example.com", "new": "bo@example.com"}),
        ("no owner", lambda c, l: ids.set_owner(c, l, name, None, 2.0, ACTOR), "agent_changed",
         {"field": "owner", "old": "ann@example.com", "new": None}),
        ("token", lambda c, l: ids.rotate_agent_token(c, l, name, 2.0, ACTOR), "agent_changed",
         {"field": "token", "old": None, "new": None}),
        ("revoke", lambda c, l: ids.revoke_agent(c, l, name, 2.0, ACTOR), "agent_revoked", {"name": name}),
    ]  # fmt: skip


@pytest.mark.parametrize(("change", "kind", "data"), [g[1:] for g in _grid()], ids=[g[0] for g in _grid()])
def test_each_change_writes_one_entry_of_its_kind(
    store: Any, change: Callable[[Connection, Ledger], object], kind: str, data: dict[str, Any]
) -> None:
    _add(store)
    [registered] = store.entries()
    assert (registered["kind"], registered["actor"], registered["subject"]) == ("agent_registered", ACTOR, "refund-bot")
    assert registered["data"] == {"name": "refund-bot", "autonomy": "A2", "owner": "ann@example.com",
                                  "tools": ["stripe.refund", "crm.*"]}  # fmt: skip
    with store.engine.begin() as conn:
        change(conn, Ledger())
    [entry] = store.entries(1)
    assert (entry["kind"], entry["actor"], entry["subject"], entry["data"]) == (kind, ACTOR, "refund-bot", data)


def test_a_change_to_the_same_value_records_nothing(store: Any) -> None:
    agent, _token = _add(store)
    with store.engine.begin() as conn:
        assert ids.set_autonomy(conn, Ledger(), agent.name, "A2", 2.0, ACTOR) == agent
        assert ids.set_tools(conn, Ledger(), agent.name, ["stripe.refund", "crm.*"], 2.0, ACTOR) == agent
        assert ids.set_owner(conn, Ledger(), agent.name, "ANN@example.com", 2.0, ACTOR) == agent
    assert store.size() == 1


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"name": "refund bot"}, "invalid_agent", "agent name 'refund bot' is not valid"),
        ({"name": "x" * 65}, "invalid_agent", "agent name"),
        ({"tools": ["Stripe.*"]}, "invalid_agent", "tool glob 'Stripe.*' is not valid"),
        ({"tools": ["stripe.refund", "crm/notes"]}, "invalid_agent", "tool glob 'crm/notes'"),
        ({"autonomy": "A5"}, "invalid_autonomy", "one of A0, A1, A2, A3, A4, not 'A5'"),
        ({"autonomy": "2"}, "invalid_autonomy", "not '2'"),
        ({"owner": "ann"}, "invalid_email", "not an email address: 'ann'"),
        ({"owner": "ann@example"}, "invalid_email", "not an email address"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    store: Any, overrides: dict[str, Any], code: str, message: str
) -> None:
    overrides = dict(overrides)  # shared by the sqlite and postgresql runs
    name = overrides.pop("name", "refund-bot")
    with pytest.raises(ids.IdentityError, match=message) as raised:
        _add(store, name, **overrides)
    assert raised.value.code == code
    assert store.size() == 0
    with store.engine.connect() as conn:
        assert ids.list_agents(conn) == []


def test_duplicates_and_unknown_names(store: Any) -> None:
    _add(store)
    with pytest.raises(ids.IdentityError, match="agent 'refund-bot' already exists$") as raised:
        _add(store, tools=["crm.*"])
    assert raised.value.code == "agent_exists"
    for change in (lambda c: ids.revoke_agent(c, Ledger(), "ghost", 1.0, ACTOR),
                   lambda c: ids.set_autonomy(c, Ledger(), "ghost", "A1", 1.0, ACTOR),
                   lambda c: ids.rotate_agent_token(c, Ledger(), "ghost", 1.0, ACTOR),
                   lambda c: ids.get_agent(c, "ghost")):  # fmt: skip
        with pytest.raises(ids.IdentityError, match="no agent named 'ghost'") as raised, store.engine.begin() as conn:
            change(conn)
        assert raised.value.code == "unknown_agent"
    assert store.size() == 1


def test_the_row_and_its_entry_commit_together(store: Any) -> None:
    def broken_clock() -> Any:
        raise RuntimeError("clock stopped")

    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        ids.add_agent(conn, Ledger(broken_clock), "refund-bot", "A2", ["crm.*"], None, 1.0, ACTOR)
    with store.engine.connect() as conn:
        assert ids.list_agents(conn) == []
    assert store.size() == 0


# SQLite's reflection cannot describe the expression index on lower(name); the unique index on
# the token hash, which this test is about, it can.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_authentication_is_one_indexed_select(store: Any) -> None:
    _agent, token = _add(store)
    unique = [ix for ix in inspect(store.engine).get_indexes("agents") if ix["unique"]]
    unique += [{"column_names": c["column_names"]} for c in inspect(store.engine).get_unique_constraints("agents")]
    assert any(ix["column_names"] == ["token_hash"] for ix in unique)
    statements: list[str] = []
    with store.engine.connect() as conn:
        conn.execute(select(1))  # the transaction's BEGIN is not the lookup's cost

        def count(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            assert ids.authenticate_agent(conn, token) is not None
            assert ids.authenticate_agent(conn, "not-a-token") is None
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "token_hash" in statements[0]
