"""What every identity table shares: bearer tokens, lookups, and the audited lifecycle.

A `Registry` describes one table of identities (the agents by name, the people by email): its key
column, its token prefix and the words its messages and audit entries use. The functions here do
the work for either table, so registering, rotating a token, revoking and authenticating are
written once; `agents.py` and `users.py` say only what differs (their fields, how those are
validated and what their audit entries hold).

Every change writes its audit entry in the caller's transaction, beside the row it changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Row, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.store import Ledger

AGENT_TOKEN_PREFIX = "wdn_agent_"
USER_TOKEN_PREFIX = "wdn_user_"
_MAX_TOKEN_LENGTH = 128

ERROR_CODES = (
    "last_founder",
    "agent_exists", "unknown_agent", "agent_revoked", "invalid_agent", "invalid_autonomy",
    "user_exists", "unknown_user", "user_revoked", "invalid_email", "invalid_role",
    "weak_password", "invalid_invite", "invalid_ttl", "invalid_credentials", "throttled",
)  # fmt: skip


class IdentityError(Exception):
    """A registry operation refused: `code` is stable (API problem codes), the message is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Registration:
    """When an identity was registered and, once revoked, when it was revoked."""

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


# -- one table of identities --------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """One table of identities that hold bearer tokens.

    `noun` names an identity in messages and in the stable codes and audit kinds
    (`{noun}_exists`, `unknown_{noun}`, `{noun}_revoked`, `{noun}_changed`); `added` is the kind
    of the entry that registers one. With `fold_case`, keys differing only in case are the same
    key: lookups ignore case (through an index on `lower(key)`) and the key is stored as given.
    """

    table: Table
    key: Column[str]
    prefix: str
    noun: str
    added: str
    unknown: str  # the message for a key nobody holds, with `{key}` in it
    not_reused: str  # why a revoked key cannot be registered again
    fold_case: bool = False

    def matches(self, key: str) -> ColumnElement[bool]:
        """The rows holding `key` (at most one: the key is unique, case folded or not)."""
        return func.lower(self.key) == key.lower() if self.fold_case else self.key == key

    def unknown_key(self, key: str) -> IdentityError:
        return IdentityError(f"unknown_{self.noun}", self.unknown.format(key=repr(key)))


def authenticate(conn: Connection, registry: Registry, token: str) -> Row[Any] | None:
    """The active row holding `token`, found by its hash through the unique index; None for an
    unknown, rotated or revoked token, or one of another registry's prefix."""
    if not isinstance(token, str) or not token.startswith(registry.prefix) or len(token) > _MAX_TOKEN_LENGTH:
        return None
    digest = token_digest(token)
    table = registry.table
    row = conn.execute(select(table).where(table.c.token_hash == digest)).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None
    return row


def lookup(conn: Connection, registry: Registry, key: str) -> Row[Any]:
    """The row holding `key`, revoked or not."""
    row = conn.execute(select(registry.table).where(registry.matches(key))).one_or_none()
    if row is None:
        raise registry.unknown_key(key)
    return row


def lookup_active(conn: Connection, registry: Registry, key: str) -> Row[Any]:
    """The row holding `key`, locked for the change about to be made; refuses a revoked one."""
    row = conn.execute(select(registry.table).where(registry.matches(key)).with_for_update()).one_or_none()
    if row is None:
        raise registry.unknown_key(key)
    stored = row._mapping[registry.key.name]
    if row.revoked_at is not None:
        raise IdentityError(f"{registry.noun}_revoked", f"{registry.noun} {stored!r} is revoked")
    return row


def rows(conn: Connection, registry: Registry, *, include_revoked: bool) -> list[Row[Any]]:
    """Every row, ordered by key (active ones only unless `include_revoked`)."""
    query = select(registry.table).order_by(registry.key)
    if not include_revoked:
        query = query.where(registry.table.c.revoked_at.is_(None))
    return list(conn.execute(query))


def register(
    conn: Connection, ledger: Ledger, registry: Registry, key: str, values: Mapping[str, Any],
    data: Mapping[str, Any], now: float, actor: str,
) -> str:
    """Insert a new identity under `key` with its other columns `values`, and its audit entry
    holding `data`; returns its token (shown once, never stored)."""
    clash = conn.execute(
        select(registry.key, registry.table.c.revoked_at).where(registry.matches(key))
    ).one_or_none()
    if clash is not None:
        raise IdentityError(f"{registry.noun}_exists", _exists_message(registry, key, clash[0], clash[1]))
    token = new_token(registry.prefix)
    row = {**values, registry.key.name: key, "token_hash": token_digest(token), "created_at": now}
    try:
        conn.execute(insert(registry.table).values(row))
    except IntegrityError as exc:  # a concurrent registration of the same key
        raise IdentityError(f"{registry.noun}_exists", f"{registry.noun} {key!r} already exists") from exc
    ledger.append(conn, registry.added, actor, key, dict(data))
    return token


def change(
    conn: Connection, ledger: Ledger, registry: Registry, key: str, columns: Mapping[str, Any],
    field: str, old: Any, new: Any, actor: str,
) -> None:
    """Update `columns` of the identity stored as `key`; its `{noun}_changed` entry says which
    `field` changed, from `old` to `new`."""
    conn.execute(update(registry.table).where(registry.key == key).values(dict(columns)))
    ledger.append(conn, f"{registry.noun}_changed", actor, key, {"field": field, "old": old, "new": new})


def rotate_token(conn: Connection, ledger: Ledger, registry: Registry, key: str, actor: str) -> str:
    """A new token for the active identity holding `key`; the old one stops working when this
    transaction commits. The entry says only that the token changed (field `token`, no values)."""
    stored = lookup_active(conn, registry, key)._mapping[registry.key.name]
    token = new_token(registry.prefix)
    change(conn, ledger, registry, stored, {"token_hash": token_digest(token)}, "token", None, None, actor)
    return token


def revoke(
    conn: Connection, ledger: Ledger, registry: Registry, key: str, data: Mapping[str, Any], now: float,
    actor: str,
) -> None:
    """Revoke the identity stored as `key`: its token stops working; the row stays, so its key is
    never given to anyone else."""
    conn.execute(update(registry.table).where(registry.key == key).values(revoked_at=now))
    ledger.append(conn, f"{registry.noun}_revoked", actor, key, dict(data))


def _exists_message(registry: Registry, key: str, stored: str, revoked_at: float | None) -> str:
    revoked = f" (revoked; {registry.not_reused})" if revoked_at is not None else ""
    if stored == key:
        return f"{registry.noun} {key!r} already exists{revoked}"
    return (f"{registry.noun} {key!r} already exists as {stored!r}{revoked}: "
            f"{registry.noun} names are unique regardless of case")
