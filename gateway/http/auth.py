"""Bearer-token authentication and role checks for every endpoint.

Agents hold `wdn_agent_…` tokens from `warden agents add`; people hold `wdn_user_…` tokens from
`warden users add`. Tokens are looked up by their SHA-256 (`gateway.identities`); the raw token is
never stored or logged. Each route declares who may call it with `require(...)`:

    require("agent")                         agents only
    require("approver", "founder")           people with one of these roles
    require("agent", "auditor", "founder")   either
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from gateway.engine.agents import Agent
from gateway.store.identities import authenticate_agent, authenticate_user
from gateway.http.problems import Problem
from ledger.database import read_only

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


class TokenCache:
    """Recently authenticated tokens, by SHA-256, for `ttl` seconds.

    Every request authenticates; the registry changes rarely. A revoked or rotated token, or a
    changed autonomy level, takes effect within `ttl` seconds (default 2) on every process, and
    at once on the process that made the change (`clear()`). Unknown tokens are not cached, so
    a token just issued works immediately.
    """

    def __init__(self, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Principal | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: bytes, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate(db: Engine, token: str, cache: TokenCache | None = None) -> Principal:
    key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
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


def require(*roles: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency admitting callers whose role is one of `roles`."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Principal:
        runtime = request.app.state.warden
        principal = authenticate(runtime.db, bearer_token(request), runtime.tokens)
        if principal.role not in allowed:
            who = "agents" if principal.is_agent else f"role {principal.role!r}"
            raise Problem("forbidden_role", f"{who} may not call this endpoint "
                          f"(allowed: {', '.join(sorted(allowed))})")
        request.state.principal = principal
        request.state.actor = principal.name
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return dependency
