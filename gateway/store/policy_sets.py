"""Every policy set ever activated, kept by its digest (table `policy_sets`, schema version 7).

A decision records the digest of the set it was made under; with the set's files kept here (and
in the `policy_activated` entry, for exports), the decision can be made again later under
exactly those files (`warden replay`), and two sets can be shown and compared (`warden policy
show`, `warden policy diff`). Files are UTF-8 text (the compiler refuses anything else), stored
as one JSON object {relative path: text}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Connection, select

from gateway.store.schema import policy_sets


class StoredSet(NamedTuple):
    digest: str
    files: dict[str, str]
    activated_at: float


def files_as_text(sources: Mapping[str, bytes]) -> dict[str, str]:
    """A compiled set's sources as {path: text}, sorted by path (they compiled, so they decode)."""
    return {path: sources[path].decode("utf-8") for path in sorted(sources)}


def save_policy_set(conn: Connection, digest: str, files: Mapping[str, str], now: float) -> bool:
    """Keep `files` under `digest` unless it is kept already; whether it was new."""
    found = conn.execute(select(policy_sets.c.digest).where(policy_sets.c.digest == digest)).first()
    if found is not None:
        return False
    conn.execute(policy_sets.insert().values(
        digest=digest, files=json.dumps(dict(files), sort_keys=True, ensure_ascii=False), activated_at=now))
    return True


def load_policy_set(conn: Connection, digest: str) -> StoredSet | None:
    row = conn.execute(select(policy_sets).where(policy_sets.c.digest == digest)).first()
    if row is None:
        return None
    return StoredSet(row.digest, json.loads(row.files), row.activated_at)


def list_policy_sets(conn: Connection) -> list[tuple[str, float]]:
    """(digest, first activated) of every kept set, oldest first."""
    rows = conn.execute(select(policy_sets.c.digest, policy_sets.c.activated_at)
                        .order_by(policy_sets.c.activated_at, policy_sets.c.digest)).all()
    return [(row.digest, row.activated_at) for row in rows]
