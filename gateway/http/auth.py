"""Bearer-token authentication and role checks for every endpoint.

Agents hold `wdn_agent_…` tokens from `warden agents add`; people hold `wdn_user_…` tokens from
`warden users add`. Tokens are looked up by their SHA-256 (`gateway.store.identities`, recent
answers cached by `gateway.store.tokens`); the raw token is never stored or logged. Each route
declares who may call it with `require(...)`:

    require("agent")                         agents only
    require("approver", "founder")           people with one of these roles
    require("agent", "auditor", "founder")   either
    require(*ANYONE)                         any agent or person with a token
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from dsl.model import PEOPLE_ROLES
from gateway.engine.agents import Agent
from gateway.http.problems import Problem
from gateway.store.identities import authenticate_agent, authenticate_user
from gateway.store.tokens import TokenCache
from ledger.database import read_only

#: Every caller with a token: agents and people of every role (`dsl.model.PEOPLE_ROLES`).
ANYONE: tuple[str, ...] = ("agent", *PEOPLE_ROLES)


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


def _cache_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def authenticate(db: Engine, token: str, cache: TokenCache[Principal] | None = None) -> Principal:
    key = _cache_key(token)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    principal: Principal | None = None
    try:
        with read_only(db.connect()) as conn:
            if token.startswith("wdn_agent_"):
                agent = authenticate_agent(conn, token)
                if agent is not None:
                    principal = Principal("agent", agent.name, "agent", agent)
            elif token.startswith("wdn_user_"):
                user = authenticate_user(conn, token)
                if user is not None:
                    principal = Principal("user", user.email, user.role)
    except DBAPIError as exc:
        raise Problem("database_unavailable", "cannot check the token: the database is unreachable") from exc
    if principal is None:
        raise Problem("invalid_token", "the token is unknown or was revoked")
    if cache is not None:
        cache.put(key, principal)
    return principal


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency admitting callers whose role is one of `roles`."""
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        runtime = request.app.state.warden
        token = bearer_token(request)
        # A token seen in the last seconds is answered here; only a miss reads the database,
        # on a worker thread (a plain function dependency would take that hop every time).
        principal: Principal | None = runtime.tokens.get(_cache_key(token))
        if principal is None:
            principal = await run_in_threadpool(authenticate, runtime.db, token, runtime.tokens)
        if principal.role not in allowed:
            who = "agents" if principal.is_agent else f"role {principal.role!r}"
            raise Problem("forbidden_role", f"{who} may not call this endpoint "
                          f"(allowed: {', '.join(sorted(allowed))})")
        request.state.principal = principal
        request.state.actor = principal.name
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return dependency
