"""Bearer-token authentication and role checks for every endpoint.

Agents hold `wdn_agent_…` tokens from `warden agents add`; people hold `wdn_user_…` tokens from
`warden users add`. Tokens are looked up by their SHA-256 (`gateway.identities`); the raw token is
never stored or logged. Each route declares who may call it with `require(...)`:

    require("agent")                         agents only
    require("approver", "founder")           people with one of these roles
    require("agent", "auditor", "founder")   either
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from gateway.agents import Agent
from gateway.identities import authenticate_agent, authenticate_user
from gateway.problems import Problem

PEOPLE_ROLES = ("founder", "approver", "auditor", "viewer")


@dataclass(frozen=True)
class Principal:
    """Who is calling: an agent, or a person with a role."""

    kind: str  # "agent" | "user"
    name: str  # agent name or user email
    role: str  # "agent" or the user's role
    agent: Agent | None = None

    @property
    def is_agent(self) -> bool:
        return self.kind == "agent"


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Problem("missing_token", "send `Authorization: Bearer <token>`")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem("invalid_token", "the Authorization header must be `Bearer <token>`")
    return token


def authenticate(db: Engine, token: str) -> Principal:
    try:
        with db.connect() as conn:
            if token.startswith("wdn_agent_"):
                agent = authenticate_agent(conn, token)
                if agent is not None:
                    return Principal("agent", agent.name, "agent", agent)
            elif token.startswith("wdn_user_"):
                user = authenticate_user(conn, token)
                if user is not None:
                    return Principal("user", user.email, user.role)
    except DBAPIError as exc:
        raise Problem("database_unavailable", "cannot check the token: the database is unreachable") from exc
    raise Problem("invalid_token", "the token is unknown or was revoked")


def require(*roles: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency admitting callers whose role is one of `roles`."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Principal:
        principal = authenticate(request.app.state.warden.db, bearer_token(request))
        if principal.role not in allowed:
            who = "agents" if principal.is_agent else f"role {principal.role!r}"
            raise Problem("forbidden_role", f"{who} may not call this endpoint "
                          f"(allowed: {', '.join(sorted(allowed))})")
        request.state.principal = principal
        request.state.actor = principal.name
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return dependency
