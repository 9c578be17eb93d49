"""Events read from the audit log: the entries after a seq, of the event kinds, with the agent
each one's decision belongs to (one read of `decisions` per page, not per entry)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select

from gateway.events.model import EVENT_KINDS, Event, decision_of, project
from gateway.store.schema import decisions
from ledger.schema import entries

#: Entries read at a time.
PAGE = 500
_KINDS = frozenset(EVENT_KINDS)


def head(conn: Connection) -> int:
    """The seq of the log's last entry; -1 for an empty log."""
    found = conn.execute(select(func.max(entries.c.seq))).scalar()
    return -1 if found is None else int(found)


def read_events(conn: Connection, after: int, *, upto: int | None = None, limit: int = PAGE) -> tuple[int, list[Event]]:
    """The events among the (at most `limit`) entries after `after` (and up to `upto`), and the
    seq of the last entry read (`after` when there was none)."""
    query = select(entries.c.seq, entries.c.leaf_hash, entries.c.body).where(entries.c.seq > after)
    if upto is not None:
        query = query.where(entries.c.seq <= upto)
    rows = conn.execute(query.order_by(entries.c.seq).limit(limit)).all()
    if not rows:
        return after, []
    parsed: list[tuple[int, bytes, dict[str, Any]]] = []
    for seq, leaf, body in rows:
        entry = json.loads(bytes(body))
        if entry.get("kind") in _KINDS:
            parsed.append((int(seq), bytes(leaf), entry))
    owners = _owners(conn, (_decision(entry) for _seq, _leaf, entry in parsed))
    found = [_event(seq, leaf, entry, owners) for seq, leaf, entry in parsed]
    return int(rows[-1].seq), found


def event_at(conn: Connection, seq: int) -> Event | None:
    """The event of entry `seq`, or None when that entry is no event."""
    _last, found = read_events(conn, seq - 1, upto=seq, limit=1)
    return found[0] if found else None


def _decision(entry: dict[str, Any]) -> str | None:
    data = entry.get("data")
    return decision_of(str(entry.get("kind")), str(entry.get("subject", "")), data if isinstance(data, dict) else {})


def _owners(conn: Connection, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    owners: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        owners.update({str(row.decision_id): str(row.agent) for row in conn.execute(
            select(decisions.c.decision_id, decisions.c.agent).where(decisions.c.decision_id.in_(chunk)))})
    return owners


def _event(seq: int, leaf: bytes, entry: dict[str, Any], owners: dict[str, str]) -> Event:
    kind = str(entry["kind"])
    actor = str(entry.get("actor", ""))
    data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
    assert isinstance(data, dict)
    decision_id = _decision(entry)
    agent = actor if kind == "decision" else owners.get(decision_id or "")
    if agent is None and kind == "incident" and isinstance(data.get("agent"), str):
        agent = data["agent"]
    return Event(seq=seq, leaf_hash=leaf.hex(), kind=kind, time=str(entry.get("time", "")),
                 subject=str(entry.get("subject", "")), decision_id=decision_id, agent=agent, data=project(kind, actor, data))
