"""Agents and people: who may call Warden, and how they prove it.

Each agent and each user holds one bearer token: a prefix saying what it is for (`wdn_agent_`,
`wdn_user_`) and 32 random bytes (`secrets.token_urlsafe`). Warden keeps only its SHA-256, so a
copy of the database lets nobody in; authentication hashes the presented token and looks the hash
up through the table's unique index: one indexed select per request. A token is shown once, when
it is issued; neither the token nor its hash ever goes into an audit entry or a message.

Every change (register, change a field, rotate a token, revoke) writes its audit entry in the same
transaction as the row (`Ledger.append` in the caller's `engine.begin()`): kinds
`agent_registered`, `agent_changed` (`field`, `old`, `new`; a token rotation is field `token`
with both values null), `agent_revoked`, `user_added`, `user_changed`, `user_revoked`.
Names are never reused: a revoked agent or user keeps its row, so the log's names stay unambiguous.

Errors: `IdentityError` with a stable `code` (see `ERROR_CODES`) and a message for humans.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Connection, Row, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from dsl.model import Autonomy
from gateway.engine.agents import Agent
from gateway.store.schema import agents, users
from ledger.store import Ledger

AGENT_TOKEN_PREFIX = "wdn_agent_"
USER_TOKEN_PREFIX = "wdn_user_"
_MAX_TOKEN_LENGTH = 128

Role = Literal["founder", "approver", "auditor", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)

ERROR_CODES = (
    "last_founder",
    "agent_exists", "unknown_agent", "agent_revoked", "invalid_agent", "invalid_autonomy",
    "user_exists", "unknown_user", "user_revoked", "invalid_email", "invalid_role",
)  # fmt: skip

_EMAIL = re.compile(r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


class IdentityError(Exception):
    """A registry operation refused: `code` is stable (API problem codes), the message is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class User(BaseModel):
    """A person with an account: their (lowercase) email and their role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    role: Role


@dataclass(frozen=True)
class AgentRecord:
    """An agent as the registry lists it, revoked ones included."""

    agent: Agent
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class UserRecord:
    user: User
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# -- tokens -------------------------------------------------------------------------------------


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _lookup(conn: Connection, table: Table, token: str, prefix: str) -> Row[Any] | None:
    """The active row holding `token`, found by its hash through the unique index."""
    if not isinstance(token, str) or not token.startswith(prefix) or len(token) > _MAX_TOKEN_LENGTH:
        return None
    digest = token_digest(token)
    row = conn.execute(select(table).where(table.c.token_hash == digest)).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None
    return row


def authenticate_agent(conn: Connection, token: str) -> Agent | None:
    """The agent this bearer token belongs to; None for an unknown, rotated or revoked token."""
    row = _lookup(conn, agents, token, AGENT_TOKEN_PREFIX)
    return None if row is None else _agent(row)


def authenticate_user(conn: Connection, token: str) -> User | None:
    """The person this bearer token belongs to; None for an unknown, rotated or revoked token."""
    row = _lookup(conn, users, token, USER_TOKEN_PREFIX)
    return None if row is None else User(email=row.email, role=row.role)


# -- agents -------------------------------------------------------------------------------------


def add_agent(
    conn: Connection, ledger: Ledger, name: str, autonomy: Autonomy | str, tools: Iterable[str],
    owner: str | None, now: float, actor: str,
) -> tuple[Agent, str]:
    """Register an agent; returns it and its token (shown once, never stored)."""
    agent = _validated_agent(name, autonomy, tools, owner)
    existing = conn.execute(select(agents.c.revoked_at).where(agents.c.name == agent.name)).one_or_none()
    if existing is not None:
        revoked = " (revoked; names are not reused)" if existing.revoked_at is not None else ""
        raise IdentityError("agent_exists", f"agent {agent.name!r} already exists{revoked}")
    token = new_token(AGENT_TOKEN_PREFIX)
    values = {"name": agent.name, "autonomy": int(agent.autonomy), "owner": agent.owner,
              "tools": json.dumps(list(agent.tools)), "token_hash": token_digest(token), "created_at": now}
    _insert(conn, agents, values, "agent_exists", f"agent {agent.name!r} already exists")
    ledger.append(conn, "agent_registered", actor, agent.name, _agent_data(agent))
    return agent, token


def get_agent(conn: Connection, name: str) -> AgentRecord:
    row = conn.execute(select(agents).where(agents.c.name == name)).one_or_none()
    if row is None:
        raise IdentityError("unknown_agent", f"no agent named {name!r}")
    return AgentRecord(_agent(row), row.created_at, row.revoked_at)


def list_agents(conn: Connection, *, include_revoked: bool = True) -> list[AgentRecord]:
    query = select(agents).order_by(agents.c.name)
    if not include_revoked:
        query = query.where(agents.c.revoked_at.is_(None))
    return [AgentRecord(_agent(row), row.created_at, row.revoked_at) for row in conn.execute(query)]


def set_autonomy(conn: Connection, ledger: Ledger, name: str, autonomy: Autonomy | str, now: float, actor: str) -> Agent:
    current = _active_agent(conn, name)
    return _change_agent(conn, ledger, current, "autonomy", _validated_agent(name, autonomy, current.tools, current.owner), actor)


def set_tools(conn: Connection, ledger: Ledger, name: str, tools: Iterable[str], now: float, actor: str) -> Agent:
    current = _active_agent(conn, name)
    return _change_agent(conn, ledger, current, "tools", _validated_agent(name, current.autonomy, tools, current.owner), actor)


def set_owner(conn: Connection, ledger: Ledger, name: str, owner: str | None, now: float, actor: str) -> Agent:
    current = _active_agent(conn, name)
    return _change_agent(conn, ledger, current, "owner", _validated_agent(name, current.autonomy, current.tools, owner), actor)


def rotate_agent_token(conn: Connection, ledger: Ledger, name: str, now: float, actor: str) -> str:
    """A new token for the agent; the old one stops working when this transaction commits."""
    _active_agent(conn, name)
    token = new_token(AGENT_TOKEN_PREFIX)
    conn.execute(update(agents).where(agents.c.name == name).values(token_hash=token_digest(token)))
    ledger.append(conn, "agent_changed", actor, name, {"field": "token", "old": None, "new": None})
    return token


def revoke_agent(conn: Connection, ledger: Ledger, name: str, now: float, actor: str) -> Agent:
    """Revoke an agent: its token stops working; the row stays (names are not reused)."""
    agent = _active_agent(conn, name)
    conn.execute(update(agents).where(agents.c.name == name).values(revoked_at=now))
    ledger.append(conn, "agent_revoked", actor, name, {"name": name})
    return agent


def _active_agent(conn: Connection, name: str) -> Agent:
    row = conn.execute(select(agents).where(agents.c.name == name).with_for_update()).one_or_none()
    if row is None:
        raise IdentityError("unknown_agent", f"no agent named {name!r}")
    if row.revoked_at is not None:
        raise IdentityError("agent_revoked", f"agent {name!r} is revoked")
    return _agent(row)


def _change_agent(conn: Connection, ledger: Ledger, current: Agent, field: str, changed: Agent, actor: str) -> Agent:
    old, new = _agent_data(current)[field], _agent_data(changed)[field]
    if old == new:
        return current
    column = {"autonomy": int(changed.autonomy), "tools": json.dumps(list(changed.tools)), "owner": changed.owner}[field]
    conn.execute(update(agents).where(agents.c.name == current.name).values({field: column}))
    ledger.append(conn, "agent_changed", actor, current.name, {"field": field, "old": old, "new": new})
    return changed


def _validated_agent(name: str, autonomy: Autonomy | str, tools: Iterable[str], owner: str | None) -> Agent:
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


def _agent(row: Row[Any]) -> Agent:
    return Agent(name=row.name, autonomy=Autonomy(row.autonomy), owner=row.owner, tools=tuple(json.loads(row.tools)))


def _agent_data(agent: Agent) -> dict[str, Any]:
    return {"name": agent.name, "autonomy": agent.autonomy.name, "owner": agent.owner, "tools": list(agent.tools)}


def parse_autonomy(value: Autonomy | str) -> Autonomy:
    if isinstance(value, Autonomy):
        return value
    if isinstance(value, str) and value.strip().upper() in Autonomy.__members__:
        return Autonomy[value.strip().upper()]
    raise IdentityError("invalid_autonomy", f"autonomy must be one of {', '.join(Autonomy.__members__)}, not {value!r}")


# -- users --------------------------------------------------------------------------------------


def add_user(conn: Connection, ledger: Ledger, email: str, role: str, now: float, actor: str) -> tuple[User, str]:
    """Give a person an account; returns it and their token (shown once, never stored)."""
    user = User(email=normalise_email(email), role=parse_role(role))
    existing = conn.execute(select(users.c.revoked_at).where(users.c.email == user.email)).one_or_none()
    if existing is not None:
        revoked = " (revoked; accounts are not reused)" if existing.revoked_at is not None else ""
        raise IdentityError("user_exists", f"user {user.email!r} already exists{revoked}")
    token = new_token(USER_TOKEN_PREFIX)
    values = {"email": user.email, "role": user.role, "token_hash": token_digest(token), "created_at": now}
    _insert(conn, users, values, "user_exists", f"user {user.email!r} already exists")
    ledger.append(conn, "user_added", actor, user.email, {"email": user.email, "role": user.role})
    return user, token


def get_user(conn: Connection, email: str) -> UserRecord:
    address = normalise_email(email)
    row = conn.execute(select(users).where(users.c.email == address)).one_or_none()
    if row is None:
        raise IdentityError("unknown_user", f"no user {address!r}")
    return UserRecord(User(email=row.email, role=row.role), row.created_at, row.revoked_at)


def list_users(conn: Connection, *, include_revoked: bool = True) -> list[UserRecord]:
    query = select(users).order_by(users.c.email)
    if not include_revoked:
        query = query.where(users.c.revoked_at.is_(None))
    return [UserRecord(User(email=row.email, role=row.role), row.created_at, row.revoked_at) for row in conn.execute(query)]


def set_role(conn: Connection, ledger: Ledger, email: str, role: str, now: float, actor: str) -> User:
    current = _active_user(conn, email)
    changed = User(email=current.email, role=parse_role(role))
    if current.role == "founder" and changed.role != "founder":
        _keep_a_founder(conn, current.email, "demote")
    if changed.role != current.role:
        conn.execute(update(users).where(users.c.email == current.email).values(role=changed.role))
        ledger.append(conn, "user_changed", actor, current.email, {"field": "role", "old": current.role, "new": changed.role})
    return changed


def rotate_user_token(conn: Connection, ledger: Ledger, email: str, now: float, actor: str) -> str:
    """A new token for the person; the old one stops working when this transaction commits."""
    user = _active_user(conn, email)
    token = new_token(USER_TOKEN_PREFIX)
    conn.execute(update(users).where(users.c.email == user.email).values(token_hash=token_digest(token)))
    ledger.append(conn, "user_changed", actor, user.email, {"field": "token", "old": None, "new": None})
    return token


def revoke_user(conn: Connection, ledger: Ledger, email: str, now: float, actor: str) -> User:
    user = _active_user(conn, email)
    if user.role == "founder":
        _keep_a_founder(conn, user.email, "revoke")
    conn.execute(update(users).where(users.c.email == user.email).values(revoked_at=now))
    ledger.append(conn, "user_revoked", actor, user.email, {"email": user.email, "role": user.role})
    return user


def _keep_a_founder(conn: Connection, email: str, verb: str) -> None:
    """Refuse to leave the deployment without an active founder: only founders pull the kill
    switch and approve L3 actions, so a registry without one could never do either again."""
    others = conn.execute(
        select(users.c.email).where(users.c.role == "founder", users.c.revoked_at.is_(None),
                                    users.c.email != email).limit(1)
    ).first()
    if others is None:
        raise IdentityError("last_founder", f"cannot {verb} {email}: it is the last active founder; "
                            "add another founder first (`warden users add EMAIL --role founder`)")


def _active_user(conn: Connection, email: str) -> User:
    address = normalise_email(email)
    row = conn.execute(select(users).where(users.c.email == address).with_for_update()).one_or_none()
    if row is None:
        raise IdentityError("unknown_user", f"no user {address!r}")
    if row.revoked_at is not None:
        raise IdentityError("user_revoked", f"user {address!r} is revoked")
    return User(email=row.email, role=row.role)


def parse_role(value: str) -> Role:
    role = value.strip().lower() if isinstance(value, str) else value
    if role not in ROLES:
        raise IdentityError("invalid_role", f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return role  # type: ignore[no-any-return]


def normalise_email(value: str) -> str:
    """`Alice@Example.COM ` → `alice@example.com`; refuses what is plainly not an address."""
    address = value.strip().lower() if isinstance(value, str) else ""
    if len(address) > 254 or not _EMAIL.match(address):
        raise IdentityError("invalid_email", f"not an email address: {value!r}")
    return address


def _insert(conn: Connection, table: Table, values: dict[str, Any], code: str, message: str) -> None:
    """Insert; a concurrent insert of the same key surfaces as the duplicate error, not a crash."""
    try:
        conn.execute(insert(table).values(values))
    except IntegrityError as exc:
        raise IdentityError(code, message) from exc
