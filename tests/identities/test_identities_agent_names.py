"""Agent names are unique regardless of case, in the registry and in the database; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError

from gateway.cli.main import main
from gateway.engine.agents import Agent
from gateway.store import identities as ids
from gateway.store import schema as gateway_schema
from gateway.store.schema import agents
from ledger import schema as ledger_schema
from ledger.database import make_engine
from ledger.store import Ledger

ACTOR = "cli:operator"


def _add(store: Any, name: str) -> tuple[Agent, str]:
    with store.engine.begin() as conn:
        return ids.add_agent(conn, Ledger(), name, "A2", ["crm.*"], None, 1000.0, ACTOR)


def _row(name: str) -> dict[str, Any]:
    return {"name": name, "autonomy": 2, "owner": None, "tools": "[]", "token_hash": name.encode().ljust(32, b"."),
            "created_at": 1.0}  # fmt: skip


@pytest.mark.parametrize("variant", ["Refund-Bot", "REFUND-BOT", "refund-Bot"])
def test_a_name_differing_only_in_case_is_refused(store: Any, variant: str) -> None:
    _add(store, "refund-bot")
    with pytest.raises(ids.IdentityError, match=f"^agent '{variant}' already exists as 'refund-bot': agent names "
                                                "are unique regardless of case$") as raised:  # fmt: skip
        _add(store, variant)
    assert raised.value.code == "agent_exists"
    assert store.size() == 1
    with store.engine.connect() as conn:
        assert [r.agent.name for r in ids.list_agents(conn)] == ["refund-bot"]


def test_a_revoked_name_is_not_reused_in_another_case(store: Any) -> None:
    _add(store, "refund-bot")
    with store.engine.begin() as conn:
        ids.revoke_agent(conn, Ledger(), "refund-bot", 2000.0, ACTOR)
    with pytest.raises(ids.IdentityError, match="already exists as 'refund-bot' \\(revoked; names are not reused\\)"):
        _add(store, "Refund-Bot")


def test_lookups_ignore_case_and_entries_name_the_agent_as_registered(store: Any) -> None:
    agent, old_token = _add(store, "Refund-Bot")
    assert agent.name == "Refund-Bot"
    with store.engine.begin() as conn:
        assert ids.get_agent(conn, "refund-bot").agent == agent
        assert ids.get_agent(conn, "REFUND-BOT").agent == agent
        assert ids.set_autonomy(conn, Ledger(), "refund-bot", "A3", 2.0, ACTOR).name == "Refund-Bot"
        assert ids.set_tools(conn, Ledger(), "REFUND-bot", ["stripe.*"], 2.0, ACTOR).name == "Refund-Bot"
        assert ids.set_owner(conn, Ledger(), "refund-BOT", "ann@example.com", 2.0, ACTOR).name == "Refund-Bot"
        new_token = ids.rotate_agent_token(conn, Ledger(), "refund-bot", 2.0, ACTOR)
        assert ids.revoke_agent(conn, Ledger(), "rEFUND-bOT", 3.0, ACTOR).name == "Refund-Bot"
        with pytest.raises(ids.IdentityError, match="^agent 'Refund-Bot' is revoked$") as raised:
            ids.set_autonomy(conn, Ledger(), "refund-bot", "A1", 4.0, ACTOR)
        assert raised.value.code == "agent_revoked"
        assert ids.authenticate_agent(conn, old_token) is None and ids.authenticate_agent(conn, new_token) is None
    assert {entry["subject"] for entry in store.entries()} == {"Refund-Bot"}
    assert [e["kind"] for e in store.entries()] == ["agent_registered"] + ["agent_changed"] * 4 + ["agent_revoked"]
    assert store.entries()[-1]["data"] == {"name": "Refund-Bot"}
    with store.engine.connect() as conn:
        [record] = ids.list_agents(conn)
    assert (record.agent.name, record.active) == ("Refund-Bot", False)


def test_the_database_refuses_a_second_name_in_another_case(store: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(agents).values(_row("refund-bot")))
    with pytest.raises(IntegrityError), store.engine.begin() as conn:  # a writer that skips the registry
        conn.execute(insert(agents).values(_row("Refund-Bot")))
    with store.engine.connect() as conn:
        assert ids.get_agent(conn, "REFUND-BOT").agent.name == "refund-bot"


def _version_one(url: str) -> Any:
    """A database whose gateway tables are still at schema version 1."""
    engine = make_engine(url)
    ledger_schema.upgrade(engine)
    ledger_schema.upgrade_component(engine, gateway_schema.COMPONENT, gateway_schema.MIGRATIONS[:1])
    return engine


def test_the_upgrade_adds_the_index_to_an_existing_registry(db_url: str) -> None:
    engine = _version_one(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(agents).values(_row("refund-bot")))
            conn.execute(insert(agents).values(_row("Refund-Bot")))  # version 1 lets this in
            conn.execute(insert(agents).values(_row("Payout-Bot")))
        with pytest.raises(ledger_schema.SchemaError, match="differ only in case: 'Refund-Bot', 'refund-bot'; keep one"):
            gateway_schema.upgrade(engine)
        with engine.connect() as conn:
            assert ledger_schema.current_version(conn, gateway_schema.COMPONENT) == 1
        with engine.begin() as conn:
            conn.execute(agents.delete().where(agents.c.name == "Refund-Bot"))
        assert gateway_schema.upgrade(engine)[gateway_schema.COMPONENT] == (1, gateway_schema.LATEST_VERSION)
        names = {index["name"] for index in inspect(engine).get_indexes("agents") if index["unique"]} \
            if engine.dialect.name == "postgresql" else set(_sqlite_indexes(engine))
        assert gateway_schema.AGENT_NAME_INDEX in names
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(agents).values(_row("PAYOUT-BOT")))
        with engine.connect() as conn:
            gateway_schema.require_current(conn)
    finally:
        engine.dispose()


def _sqlite_indexes(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return [row[1] for row in conn.exec_driver_sql("PRAGMA index_list('agents')") if row[2] == 1]


def test_the_command_line_refuses_a_name_in_another_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("WARDEN_")]:
        monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(["agents", "add", "refund-bot", "--autonomy", "A2", "--tools", "crm.*", "--db", url]) == 0
    capsys.readouterr()
    assert main(["agents", "add", "Refund-Bot", "--autonomy", "A2", "--tools", "crm.*", "--db", url]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == ("warden: error: agent 'Refund-Bot' already exists as 'refund-bot': agent names are unique "
                       "regardless of case\n")  # fmt: skip
    assert main(["agents", "list", "--json", "--db", url]) == 0
    assert [agent["name"] for agent in json.loads(capsys.readouterr().out)] == ["refund-bot"]
