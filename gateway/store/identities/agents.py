"""The agent registry: which agents may call Warden, how far each may act alone, with which tools.

An agent's name is unique regardless of case (`Refund-Bot` and `refund-bot` are one agent): it is
stored as given, found whatever its case, and the database keeps a unique index on `lower(name)`.
Audit entries: `agent_registered` (the agent's fields), `agent_changed` (`field`, `old`, `new`;
a token rotation is field `token` with both values null), `agent_revoked` (`name`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Row

from dsl.model import Autonomy
from gateway.engine.agents import Agent
from gateway.store.identities import registry as reg
from gateway.store.identities.registry import AGENT_TOKEN_PREFIX, IdentityError, Registration
from gateway.store.identities.users import normalise_email
from gateway.store.schema import agents
from ledger.store import Ledger

AGENTS = reg.Registry(
    table=agents, key=agents.c.name, prefix=AGENT_TOKEN_PREFIX, noun="agent", added="agent_registered",
    unknown="no agent named {key}", not_reused="names are not reused", fold_case=True,
)


@dataclass(frozen=True, kw_only=True)
class AgentRecord(Registration):
    """An agent as the registry lists it, revoked ones included."""

    agent: Agent


def authenticate_agent(conn: Connection, token: str) -> Agent | None:
    """The agent this bearer token belongs to; None for an unknown, rotated or revoked token."""
    row = reg.authenticate(conn, AGENTS, token)
    return None if row is None else _agent(row)


def add_agent(
    conn: Connection, ledger: Ledger, name: str, autonomy: Autonomy | str, tools: Iterable[str],
    owner: str | None, now: float, actor: str,
) -> tuple[Agent, str]:
    """Register an agent; returns it and its token (shown once, never stored)."""
    agent = _validated(name, autonomy, tools, owner)
    token = reg.register(conn, ledger, AGENTS, agent.name, _columns(agent), _data(agent), now, actor)
    return agent, token


def get_agent(conn: Connection, name: str) -> AgentRecord:
    return _record(reg.lookup(conn, AGENTS, name))


def list_agents(conn: Connection, *, include_revoked: bool = True) -> list[AgentRecord]:
    return [_record(row) for row in reg.rows(conn, AGENTS, include_revoked=include_revoked)]


def set_autonomy(conn: Connection, ledger: Ledger, name: str, autonomy: Autonomy | str, now: float, actor: str) -> Agent:
    current = _agent(reg.lookup_active(conn, AGENTS, name))
    return _change(conn, ledger, current, "autonomy", _validated(current.name, autonomy, current.tools, current.owner), actor)


def set_tools(conn: Connection, ledger: Ledger, name: str, tools: Iterable[str], now: float, actor: str) -> Agent:
    current = _agent(reg.lookup_active(conn, AGENTS, name))
    return _change(conn, ledger, current, "tools", _validated(current.name, current.autonomy, tools, current.owner), actor)


def set_owner(conn: Connection, ledger: Ledger, name: str, owner: str | None, now: float, actor: str) -> Agent:
    current = _agent(reg.lookup_active(conn, AGENTS, name))
    return _change(conn, ledger, current, "owner", _validated(current.name, current.autonomy, current.tools, owner), actor)


def rotate_agent_token(conn: Connection, ledger: Ledger, name: str, now: float, actor: str) -> str:
    """A new token for the agent; the old one stops working when this transaction commits."""
    return reg.rotate_token(conn, ledger, AGENTS, name, actor)


def revoke_agent(conn: Connection, ledger: Ledger, name: str, now: float, actor: str) -> Agent:
    """Revoke an agent: its token stops working; the row stays (names are not reused)."""
    agent = _agent(reg.lookup_active(conn, AGENTS, name))
    reg.revoke(conn, ledger, AGENTS, agent.name, {"name": agent.name}, now, actor)
    return agent


def parse_autonomy(value: Autonomy | str) -> Autonomy:
    if isinstance(value, Autonomy):
        return value
    if isinstance(value, str) and value.strip().upper() in Autonomy.__members__:
        return Autonomy[value.strip().upper()]
    raise IdentityError("invalid_autonomy", f"autonomy must be one of {', '.join(Autonomy.__members__)}, not {value!r}")


def _change(conn: Connection, ledger: Ledger, current: Agent, field: str, changed: Agent, actor: str) -> Agent:
    old, new = _data(current)[field], _data(changed)[field]
    if old == new:
        return current
    reg.change(conn, ledger, AGENTS, current.name, {field: _columns(changed)[field]}, field, old, new, actor)
    return changed


def _validated(name: str, autonomy: Autonomy | str, tools: Iterable[str], owner: str | None) -> Agent:
    level = parse_autonomy(autonomy)
    globs = tuple(dict.fromkeys(glob.strip() for glob in tools if glob.strip()))
    email = None if owner is None or not owner.strip() else normalise_email(owner)
    try:
        return Agent(name=name, autonomy=level, owner=email, tools=globs)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = error["loc"]
            subject = f"tool glob {error['input']!r}" if where[:1] == ("tools",) else f"agent name {error['input']!r}"
            hint = ("use lowercase letters, digits and _ . - * ? [ ] !" if where[:1] == ("tools",)
                    else "use letters, digits and . _ - (at most 64)")
            problems.append(f"{subject} is not valid: {hint}")
        raise IdentityError("invalid_agent", "; ".join(dict.fromkeys(problems))) from None


def _columns(agent: Agent) -> dict[str, Any]:
    """The agent's fields as the `agents` table stores them."""
    return {"autonomy": int(agent.autonomy), "owner": agent.owner, "tools": json.dumps(list(agent.tools))}


def _data(agent: Agent) -> dict[str, Any]:
    """The agent's fields as its audit entries hold them."""
    return {"name": agent.name, "autonomy": agent.autonomy.name, "owner": agent.owner, "tools": list(agent.tools)}


def _agent(row: Row[Any]) -> Agent:
    return Agent(name=row.name, autonomy=Autonomy(row.autonomy), owner=row.owner, tools=tuple(json.loads(row.tools)))


def _record(row: Row[Any]) -> AgentRecord:
    return AgentRecord(agent=_agent(row), created_at=row.created_at, revoked_at=row.revoked_at)
