"""The reads behind the console's pages, each one query or a few, on a read-only connection.

Lists are paged by key (`created_at`, `decision_id`), never by offset, so the hundredth page of
100,000 decisions costs what the first does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, tuple_

from gateway.engine.models import Decision
from gateway.store.killswitch import KillSwitch, read_kill_switch
from gateway.store.schema import agents, decisions, incidents

STATUSES = ("executed", "executing", "pending_approval", "denied", "drafted", "rejected", "expired", "failed")
RISKS = ("L0", "L1", "L2", "L3")
PAGE = 50


@dataclass(frozen=True)
class Shell:
    """What every page shows around its content: the kill switch and the pending count."""

    kill_switch: KillSwitch
    pending: int
    seq: int  # the log's last entry when the page was read (-1: empty), where its live feed starts


def shell(conn: Connection) -> Shell:
    from ledger.schema import entries

    seq = conn.execute(select(func.max(entries.c.seq))).scalar()
    pending = conn.execute(select(func.count()).select_from(decisions)
                           .where(decisions.c.status == "pending_approval")).scalar_one()
    return Shell(kill_switch=read_kill_switch(conn), pending=int(pending), seq=-1 if seq is None else int(seq))


@dataclass
class Row:
    """A decision as lists show it."""

    decision: Decision
    decision_id: str
    agent: str
    tool: str
    params: dict[str, Any]
    created_at: float
    expires_at: float | None
    packet: dict[str, Any] = field(default_factory=dict)


def _row(r: Any) -> Row:
    packet = json.loads(r.packet)
    return Row(decision=Decision.model_validate_json(r.decision), decision_id=r.decision_id, agent=r.agent,
               tool=r.tool, params=packet.get("action", {}).get("params", {}), created_at=r.created_at,
               expires_at=r.expires_at, packet=packet)


_COLUMNS = (decisions.c.decision_id, decisions.c.agent, decisions.c.tool, decisions.c.decision,
            decisions.c.packet, decisions.c.created_at, decisions.c.expires_at)


#: The inbox shows at most this many pending approvals (the soonest to expire); the rest are one
#: click away on the activity page, filtered to pending and paged.
INBOX_LIMIT = 250


def pending(conn: Connection, limit: int | None = None) -> list[Row]:
    """Pending approvals, soonest expiry first (at most `INBOX_LIMIT` unless told)."""
    query = (select(*_COLUMNS).where(decisions.c.status == "pending_approval")
             .order_by(decisions.c.expires_at, decisions.c.decision_id).limit(limit or INBOX_LIMIT))
    return [_row(r) for r in conn.execute(query)]


def decision(conn: Connection, decision_id: str) -> Row | None:
    r = conn.execute(select(*_COLUMNS).where(decisions.c.decision_id == decision_id)).first()
    return None if r is None else _row(r)


def by_packet(conn: Connection, agent: str, packet_id: str) -> Row | None:
    """The decision on `agent`'s packet `packet_id` (one at most: the pair is unique)."""
    r = conn.execute(select(*_COLUMNS).where(decisions.c.agent == agent, decisions.c.packet_id == packet_id)).first()
    return None if r is None else _row(r)


def recent(conn: Connection, agent: str, tool: str, *, exclude: str, limit: int = 10) -> list[Row]:
    """This agent's latest decisions for the same tool."""
    query = (select(*_COLUMNS)
             .where(decisions.c.agent == agent, decisions.c.tool == tool, decisions.c.decision_id != exclude)
             .order_by(decisions.c.created_at.desc(), decisions.c.decision_id.desc()).limit(limit))
    return [_row(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class Filters:
    agent: str = ""
    tool: str = ""
    status: str = ""
    risk: str = ""
    since: float | None = None
    until: float | None = None
    before: tuple[float, str] | None = None  # the page key: (created_at, decision_id) of the last row shown

    def query_string(self, **change: Any) -> str:
        from urllib.parse import urlencode

        values = {"agent": self.agent, "tool": self.tool, "status": self.status, "risk": self.risk} | change
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def activity(conn: Connection, filters: Filters, limit: int = PAGE) -> tuple[list[Row], tuple[float, str] | None]:
    """One page of decisions, newest first, and the key of the next page (None at the end)."""
    from dsl.model import Risk

    where = []
    if filters.agent:
        where.append(decisions.c.agent == filters.agent)
    if filters.tool:
        where.append(decisions.c.tool == filters.tool)
    if filters.status:
        where.append(decisions.c.status == filters.status)
    if filters.risk in RISKS:
        where.append(decisions.c.risk == int(Risk[filters.risk]))
    if filters.since is not None:
        where.append(decisions.c.created_at >= filters.since)
    if filters.until is not None:
        where.append(decisions.c.created_at < filters.until)
    if filters.before is not None:
        at, key = filters.before
        # A row-value comparison, so the database seeks into ix_decisions_created (an OR of the two
        # cases made SQLite scan the index from the newest row: the 1,900th page cost 4.5 first pages).
        where.append(tuple_(decisions.c.created_at, decisions.c.decision_id) < tuple_(at, key))
    query = (select(*_COLUMNS).where(*where)
             .order_by(decisions.c.created_at.desc(), decisions.c.decision_id.desc()).limit(limit + 1))
    rows = [_row(r) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].created_at, rows[-1].decision_id) if more and rows else None)


def choices(conn: Connection) -> dict[str, list[str]]:
    """Agent names and tools for the activity filters."""
    names = list(conn.execute(select(agents.c.name).order_by(agents.c.name)).scalars())
    return {"agents": names}


@dataclass(frozen=True)
class Incident:
    id: int
    kind: str
    agent: str | None
    decision_id: str | None
    summary: str
    detail: Any
    created_at: float
    audit_seq: int | None
    acknowledged_at: float | None
    acknowledged_by: str | None


def _incident(r: Any) -> Incident:
    try:
        detail = json.loads(r.detail)
    except ValueError:
        detail = r.detail
    return Incident(id=r.id, kind=r.kind, agent=r.agent, decision_id=r.decision_id, summary=r.summary,
                    detail=detail, created_at=r.created_at, audit_seq=r.audit_seq,
                    acknowledged_at=r.acknowledged_at, acknowledged_by=r.acknowledged_by)


def incident_list(conn: Connection, *, open_only: bool = False, before: int | None = None,
                  limit: int = PAGE) -> tuple[list[Incident], int | None]:
    query = select(incidents)
    if open_only:
        query = query.where(incidents.c.acknowledged_at.is_(None))
    if before is not None:
        query = query.where(incidents.c.id < before)
    found = [_incident(r) for r in conn.execute(query.order_by(incidents.c.id.desc()).limit(limit + 1))]
    more = len(found) > limit
    found = found[:limit]
    return found, (found[-1].id if more and found else None)


def incident(conn: Connection, incident_id: int) -> Incident | None:
    r = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return None if r is None else _incident(r)


def last_activity(conn: Connection) -> dict[str, float]:
    """Each agent's latest decision time."""
    query = select(decisions.c.agent, func.max(decisions.c.created_at)).group_by(decisions.c.agent)
    return {name: at for name, at in conn.execute(query)}
