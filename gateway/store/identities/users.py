"""People's accounts: an email (kept lowercase) and one of the people roles.

The roles are the ones every policy set knows (`dsl.model.PEOPLE_ROLES`), most powerful first. A deployment always keeps an active founder: only founders pull the kill switch and approve
L3 actions. Audit entries: `user_added` (`email`, `role`), `user_changed` (`field`, `old`, `new`;
a token rotation is field `token` with both values null), `user_revoked` (`email`, `role`).
A change of role and a revocation end the person's console sessions (`sessions.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from sqlalchemy import Connection, Row, select

from dsl.model import PEOPLE_ROLES
from gateway.store.identities import registry as reg
from gateway.store.identities.registry import USER_TOKEN_PREFIX, IdentityError, Registration
from gateway.store.identities.sessions import end_sessions_for
from gateway.store.schema import users
from ledger.store import Ledger

ROLES: tuple[str, ...] = PEOPLE_ROLES

USERS = reg.Registry(
    table=users, key=users.c.email, prefix=USER_TOKEN_PREFIX, noun="user", added="user_added",
    unknown="no user {key}", not_reused="accounts are not reused",
)

_EMAIL = re.compile(r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return role


Role = Annotated[str, AfterValidator(_known_role)]


class User(BaseModel):
    """A person with an account: their (lowercase) email and their role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    role: Role


@dataclass(frozen=True, kw_only=True)
class UserRecord(Registration):
    """A person as the registry lists them, revoked accounts included."""

    user: User


def authenticate_user(conn: Connection, token: str) -> User | None:
    """The person this bearer token belongs to; None for an unknown, rotated or revoked token."""
    row = reg.authenticate(conn, USERS, token)
    return None if row is None else _user(row)


def add_user(conn: Connection, ledger: Ledger, email: str, role: str, now: float, actor: str) -> tuple[User, str]:
    """Give a person an account; returns it and their token (shown once, never stored)."""
    user = User(email=normalise_email(email), role=parse_role(role))
    data = {"email": user.email, "role": user.role}
    token = reg.register(conn, ledger, USERS, user.email, {"role": user.role}, data, now, actor)
    return user, token


def get_user(conn: Connection, email: str) -> UserRecord:
    return _record(reg.lookup(conn, USERS, normalise_email(email)))


def list_users(conn: Connection, *, include_revoked: bool = True) -> list[UserRecord]:
    return [_record(row) for row in reg.rows(conn, USERS, include_revoked=include_revoked)]


def set_role(conn: Connection, ledger: Ledger, email: str, role: str, now: float, actor: str) -> User:
    current = _user(reg.lookup_active(conn, USERS, normalise_email(email)))
    changed = User(email=current.email, role=parse_role(role))
    if current.role == "founder" and changed.role != "founder":
        _keep_a_founder(conn, current.email, "demote")
    if changed.role != current.role:
        reg.change(conn, ledger, USERS, current.email, {"role": changed.role}, "role", current.role, changed.role, actor)
        end_sessions_for(conn, current.email, now)  # they sign in again, under their new role
    return changed


def rotate_user_token(conn: Connection, ledger: Ledger, email: str, now: float, actor: str) -> str:
    """A new token for the person; the old one stops working when this transaction commits."""
    return reg.rotate_token(conn, ledger, USERS, normalise_email(email), actor)


def revoke_user(conn: Connection, ledger: Ledger, email: str, now: float, actor: str) -> User:
    user = _user(reg.lookup_active(conn, USERS, normalise_email(email)))
    if user.role == "founder":
        _keep_a_founder(conn, user.email, "revoke")
    reg.revoke(conn, ledger, USERS, user.email, {"email": user.email, "role": user.role}, now, actor)
    end_sessions_for(conn, user.email, now)
    return user


def parse_role(value: str) -> str:
    role = value.strip().lower() if isinstance(value, str) else value
    if role not in ROLES:
        raise IdentityError("invalid_role", f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return role


def normalise_email(value: str) -> str:
    """`Alice@Example.COM ` → `alice@example.com`; refuses what is plainly not an address."""
    address = value.strip().lower() if isinstance(value, str) else ""
    if len(address) > 254 or not _EMAIL.match(address):
        raise IdentityError("invalid_email", f"not an email address: {value!r}")
    return address


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


def _user(row: Row[Any]) -> User:
    return User(email=row.email, role=row.role)


def _record(row: Row[Any]) -> UserRecord:
    return UserRecord(user=_user(row), created_at=row.created_at, revoked_at=row.revoked_at)
