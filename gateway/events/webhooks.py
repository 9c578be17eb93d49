"""Webhook endpoints and their durable delivery outbox, in SQL.

An endpoint (`whk_…`) is a URL, the event kinds it wants and a secret (`whsec_…`, shown once)
that signs every delivery. Registering, disabling, enabling and removing one are audit entries
(`webhook_added`, `webhook_disabled`, `webhook_enabled`, `webhook_removed`: the URL without its
query, never the secret) in the same transaction as the change. An endpoint receives the events
of entries after its own `webhook_added` entry (`from_seq`).

The fan-out (`fan_out`) turns the log into deliveries: it reads the entries after a durable
cursor (`gateway_state` `webhook_cursor`), inserts one `webhook_deliveries` row per active
endpoint that wants each event, and moves the cursor, all in one transaction run by the log
writer (which holds the log's head lock, so fan-outs of several processes take turns and see
every committed entry). A crash before its commit leaves cursor and rows as they were, so the
next fan-out does the same again: no event is skipped and no delivery row is made twice.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, delete, func, insert, select, update

from gateway.events.model import EVENT_KINDS
from gateway.events.reader import head as log_head, read_events
from gateway.store.randomness import random_hex
from gateway.store.schema import gateway_state, webhook_attempts, webhook_deliveries, webhook_endpoints
from ledger.store import Ledger

CURSOR_KEY = "webhook_cursor"
MAX_URL = 2048


class WebhookError(Exception):
    """A webhook change that cannot be made: `code` is `not_found` or `invalid_request`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    kinds: tuple[str, ...]
    state: str
    from_seq: int
    created_at: float
    created_by: str
    disabled_at: float | None
    disabled_reason: str | None
    failures: int
    pending: int

    def document(self) -> dict[str, Any]:
        """As the API and `warden webhooks list --json` show it: never the secret."""
        return {"id": self.id, "url": self.url, "events": list(self.kinds), "state": self.state,
                "from_seq": self.from_seq, "created_at": self.created_at, "created_by": self.created_by,
                "disabled_at": self.disabled_at, "disabled_reason": self.disabled_reason,
                "failures": self.failures, "pending": self.pending}


def new_secret() -> str:
    """`whsec_` and 32 random bytes in base64, as Standard Webhooks secrets are written."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("invalid_request", f"a webhook URL must be http(s)://host/…, not {url[:80]!r}")
    if parts.username or parts.password:
        raise WebhookError("invalid_request", "a webhook URL must not hold credentials; the signature "
                                              "authenticates Warden to the receiver")
    if len(url) > MAX_URL:
        raise WebhookError("invalid_request", f"a webhook URL may be at most {MAX_URL} characters")
    return url.strip()


def shown_url(url: str) -> str:
    """The URL as the audit log records it: without a query, which may carry a receiver's token."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def check_kinds(kinds: list[str]) -> tuple[str, ...]:
    wanted = [kind.strip() for text in kinds for kind in text.split(",") if kind.strip()]
    unknown = sorted(set(wanted) - set(EVENT_KINDS))
    if unknown:
        raise WebhookError("invalid_request", f"unknown event kind(s) {', '.join(map(repr, unknown))}; "
                                              f"the kinds are {', '.join(EVENT_KINDS)}")
    if not wanted:
        raise WebhookError("invalid_request", f"name the events to send: any of {', '.join(EVENT_KINDS)}")
    return tuple(kind for kind in EVENT_KINDS if kind in wanted)


def add_endpoint(conn: Connection, ledger: Ledger, url: str, kinds: list[str], actor: str,
                 now: float) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it and its secret (shown once)."""
    url, wanted = check_url(url), check_kinds(kinds)
    endpoint_id, secret = "whk_" + random_hex(10), new_secret()
    entry = ledger.append(conn, "webhook_added", actor, endpoint_id,
                          {"id": endpoint_id, "url": shown_url(url), "events": list(wanted)})
    conn.execute(insert(webhook_endpoints).values(
        id=endpoint_id, url=url, kinds=json.dumps(list(wanted)), secret=secret, state="active",
        from_seq=entry.seq, created_at=now, created_by=actor, failures=0, next_attempt_at=0.0))
    return get_endpoint(conn, endpoint_id), secret


def get_endpoint(conn: Connection, endpoint_id: str) -> Endpoint:
    found = [e for e in list_endpoints(conn, endpoint_id) if e.id == endpoint_id]
    if not found:
        raise WebhookError("not_found", f"no webhook endpoint {endpoint_id[:60]!r}")
    return found[0]


def list_endpoints(conn: Connection, endpoint_id: str | None = None) -> list[Endpoint]:
    pending = (select(webhook_deliveries.c.endpoint_id, func.count().label("n"))
               .where(webhook_deliveries.c.state == "pending").group_by(webhook_deliveries.c.endpoint_id))
    query = select(webhook_endpoints).order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    if endpoint_id is not None:
        query = query.where(webhook_endpoints.c.id == endpoint_id)
        pending = pending.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    counts = {str(row.endpoint_id): int(row.n) for row in conn.execute(pending)}
    return [Endpoint(id=row.id, url=row.url, kinds=tuple(json.loads(row.kinds)), state=row.state,
                     from_seq=int(row.from_seq), created_at=row.created_at, created_by=row.created_by,
                     disabled_at=row.disabled_at, disabled_reason=row.disabled_reason,
                     failures=int(row.failures), pending=counts.get(row.id, 0))
            for row in conn.execute(query)]


def disable_endpoint(conn: Connection, ledger: Ledger, endpoint_id: str, actor: str, reason: str,
                     now: float) -> bool:
    """Stop sending to an endpoint (its pending deliveries wait); False if it was disabled already."""
    get_endpoint(conn, endpoint_id)
    changed = conn.execute(update(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.state == "active").values(
        state="disabled", disabled_at=now, disabled_reason=reason, lease_owner=None, lease_until=None)).rowcount
    if changed:
        ledger.append(conn, "webhook_disabled", actor, endpoint_id, {"id": endpoint_id, "reason": reason})
    return bool(changed)


def enable_endpoint(conn: Connection, ledger: Ledger, endpoint_id: str, actor: str, now: float) -> bool:
    """Send again, starting with the deliveries still pending; False if it was active already.
    Events of entries appended while it was disabled are not sent."""
    get_endpoint(conn, endpoint_id)
    changed = conn.execute(update(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.state == "disabled").values(
        state="active", disabled_at=None, disabled_reason=None, failures=0, next_attempt_at=0.0)).rowcount
    if changed:
        entry = ledger.append(conn, "webhook_enabled", actor, endpoint_id, {"id": endpoint_id})
        conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                     .values(from_seq=entry.seq))
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id,
                                                      webhook_deliveries.c.state == "pending")
                     .values(attempts=0))
    return bool(changed)


def remove_endpoint(conn: Connection, ledger: Ledger, endpoint_id: str, actor: str) -> None:
    """Forget an endpoint, its deliveries and their attempts."""
    get_endpoint(conn, endpoint_id)
    for table in (webhook_attempts, webhook_deliveries):
        conn.execute(delete(table).where(table.c.endpoint_id == endpoint_id))
    conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    ledger.append(conn, "webhook_removed", actor, endpoint_id, {"id": endpoint_id})


def deliveries(conn: Connection, endpoint_id: str, *, limit: int = 100, after: int = -1) -> list[dict[str, Any]]:
    """An endpoint's deliveries after seq `after`, oldest first, each with its attempts."""
    get_endpoint(conn, endpoint_id)
    rows = conn.execute(select(webhook_deliveries).where(
        webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.seq > after)
        .order_by(webhook_deliveries.c.seq).limit(limit)).all()
    attempts: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for a in conn.execute(select(webhook_attempts).where(
                webhook_attempts.c.endpoint_id == endpoint_id,
                webhook_attempts.c.seq.between(rows[0].seq, rows[-1].seq)).order_by(webhook_attempts.c.id)):
            attempts.setdefault(int(a.seq), []).append(
                {"attempt": a.attempt, "at": a.at, "status_code": a.status_code, "error": a.error,
                 "duration_ms": a.duration_ms})
    return [{"event_id": f"evt_{row.seq}", "seq": int(row.seq), "kind": row.kind, "decision_id": row.decision_id,
             "state": row.state, "attempts": attempts.get(int(row.seq), []), "created_at": row.created_at,
             "delivered_at": row.delivered_at} for row in rows]


# ------------------------------------------------------------------ the fan-out


def read_cursor(conn: Connection) -> int:
    raw = conn.execute(select(gateway_state.c.value).where(gateway_state.c.key == CURSOR_KEY)).scalar_one_or_none()
    return -1 if raw is None else int(json.loads(raw)["seq"])


def fan_out_due(conn: Connection) -> bool:
    """Is there an active endpoint whose events the cursor has not reached? (A read.)"""
    start = conn.execute(select(func.min(webhook_endpoints.c.from_seq))
                         .where(webhook_endpoints.c.state == "active")).scalar()
    if start is None:
        return False
    return max(read_cursor(conn), int(start)) < log_head(conn)


def fan_out(conn: Connection, now: float, *, limit: int = 500) -> int:
    """Turn the entries after the cursor into deliveries (up to `limit` entries); returns how
    many delivery rows it made. Run it inside the log writer (`Writer.run`)."""
    active = [(row.id, int(row.from_seq), frozenset(json.loads(row.kinds))) for row in conn.execute(
        select(webhook_endpoints.c.id, webhook_endpoints.c.from_seq, webhook_endpoints.c.kinds)
        .where(webhook_endpoints.c.state == "active"))]
    cursor = read_cursor(conn)
    if not active:
        return 0
    start = max(cursor, min(from_seq for _id, from_seq, _kinds in active))
    last, events = read_events(conn, start, limit=limit)
    rows = [{"endpoint_id": endpoint_id, "seq": event.seq, "kind": event.kind, "decision_id": event.decision_id,
             "state": "pending", "attempts": 0, "created_at": now}
            for event in events for endpoint_id, from_seq, kinds in active
            if event.seq > from_seq and event.kind in kinds]
    if rows:
        conn.execute(insert(webhook_deliveries), rows)
    if last != cursor:
        value = json.dumps({"seq": last})
        if conn.execute(update(gateway_state).where(gateway_state.c.key == CURSOR_KEY).values(value=value)).rowcount == 0:
            conn.execute(insert(gateway_state).values(key=CURSOR_KEY, value=value))
    return len(rows)
