"""Sending the delivery outbox: one endpoint at a time per sender, its events in log order.

A sender leases an endpoint that has a due pending delivery (`lease_owner`, `lease_until`: one
sender per endpoint across every process), then sends its pending deliveries oldest first:
each event's body rebuilt from the log (`gateway.events.model.Event.body`: the same bytes every
attempt), signed per Standard Webhooks (`webhook-id` the event id, `webhook-timestamp`,
`webhook-signature` v1 HMAC-SHA256 with the endpoint's secret), POSTed over httpx with a
timeout. A 2xx marks it delivered; anything else is an attempt recorded with its status or
error, and the endpoint waits (exponential backoff, capped) before the same delivery is tried
again, so an endpoint's events always arrive in order, and those of each decision with them.
After `max_attempts` failed attempts of one delivery the endpoint is disabled, with a
`webhook_disabled` entry and an incident of that kind, in one transaction of the log writer.

At least once: a delivery is marked only after its 2xx, so a crash between the two sends it
again after the restart, with the same `webhook-id`; receivers dedupe by it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update
from standardwebhooks import Webhook

from gateway.events.reader import event_at
from gateway.events.webhooks import disable_endpoint
from gateway.store.records import record_incident
from gateway.store.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from gateway.store.writer import Writer
from ledger.database import read_only

log = logging.getLogger("warden.webhooks")

USER_AGENT = "Warden-Webhooks/1"


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after `failures` failed ones in a row: base·2^(n-1), capped."""
    return float(min(cap, base * (2 ** max(0, failures - 1))))


class Sender:
    """Leases due endpoints and sends their deliveries; one per runtime, shared by its threads."""

    def __init__(self, engine: Engine, writer: Writer, *, clock: Callable[[], float] = time.time,
                 timeout: float = 10.0, max_attempts: int = 8, backoff_base: float = 1.0,
                 backoff_max: float = 300.0, lease_seconds: float = 60.0,
                 client: httpx.Client | None = None, on_delivery: Callable[[str, float], None] | None = None) -> None:
        self.engine = engine
        self.writer = writer
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.lease_seconds = max(lease_seconds, timeout * 3)
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                             headers={"User-Agent": USER_AGENT})
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.on_delivery = on_delivery  # (outcome, seconds): metrics

    def close(self) -> None:
        self.client.close()

    def release_all(self) -> int:
        """Free every lease (at start of a single process: a crash left them held)."""
        with self.engine.begin() as conn:
            return int(conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.lease_owner.is_not(None))
                                    .values(lease_owner=None, lease_until=None)).rowcount)

    # ------------------------------------------------------------ claiming

    def claim(self, thread: str) -> str | None:
        """Lease one active endpoint with a due pending delivery; its id, or None."""
        now = self.clock()
        owner = f"{self.owner}:{thread}"
        due = exists().where(webhook_deliveries.c.endpoint_id == webhook_endpoints.c.id,
                             webhook_deliveries.c.state == "pending")
        free = or_(webhook_endpoints.c.lease_until.is_(None), webhook_endpoints.c.lease_until < now)
        with read_only(self.engine.connect()) as conn:
            candidates = list(conn.execute(select(webhook_endpoints.c.id).where(
                webhook_endpoints.c.state == "active", webhook_endpoints.c.next_attempt_at <= now, free, due)
                .order_by(webhook_endpoints.c.next_attempt_at).limit(8)).scalars())
        for endpoint_id in candidates:
            with self.engine.begin() as conn:
                taken = conn.execute(update(webhook_endpoints).where(
                    webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.state == "active", free)
                    .values(lease_owner=owner, lease_until=now + self.lease_seconds)).rowcount
            if taken:
                return str(endpoint_id)
        return None

    def _release(self, conn: Connection, endpoint_id: str, owner: str, **values: Any) -> None:
        conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id,
                                                     webhook_endpoints.c.lease_owner == owner)
                     .values(lease_owner=None, lease_until=None, **values))

    # ------------------------------------------------------------ sending

    def run_once(self, thread: str = "0", *, budget: int = 100) -> int:
        """Claim an endpoint and send up to `budget` of its deliveries; how many were delivered
        (-1: nothing was due)."""
        endpoint_id = self.claim(thread)
        if endpoint_id is None:
            return -1
        owner = f"{self.owner}:{thread}"
        try:
            return self._send_endpoint(endpoint_id, owner, budget)
        except Exception:
            log.exception("webhook deliveries failed", extra={"endpoint": endpoint_id})
            with self.engine.begin() as conn:
                self._release(conn, endpoint_id, owner)
            return 0

    def _send_endpoint(self, endpoint_id: str, owner: str, budget: int) -> int:
        delivered = 0
        while delivered < budget:
            with read_only(self.engine.connect()) as conn:
                endpoint = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).one()
                head = conn.execute(select(webhook_deliveries).where(
                    webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.state == "pending")
                    .order_by(webhook_deliveries.c.seq).limit(1)).first()
                event = None if head is None else event_at(conn, int(head.seq))
            if head is None or endpoint.lease_owner != owner or endpoint.state != "active":
                with self.engine.begin() as conn:
                    self._release(conn, endpoint_id, owner)
                return delivered
            assert event is not None, f"delivery {head.seq} is of an entry that is no event"
            ok, status, error, seconds = self._post(endpoint.url, endpoint.secret, event.id, event.body())
            now = self.clock()
            attempt = int(head.attempts) + 1
            with self.engine.begin() as conn:
                conn.execute(insert(webhook_attempts).values(
                    endpoint_id=endpoint_id, seq=head.seq, attempt=attempt, at=now, status_code=status,
                    error=error, duration_ms=round(seconds * 1000, 3)))
                conn.execute(update(webhook_deliveries).where(and_(
                    webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.seq == head.seq))
                    .values(attempts=attempt, **({"state": "delivered", "delivered_at": now} if ok else {})))
                if ok:
                    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                                 .values(failures=0, next_attempt_at=0.0, lease_until=now + self.lease_seconds))
                else:
                    failures = int(endpoint.failures) + 1
                    self._release(conn, endpoint_id, owner, failures=failures,
                                  next_attempt_at=now + backoff(failures, self.backoff_base, self.backoff_max))
            if self.on_delivery is not None:
                self.on_delivery("delivered" if ok else "failed", seconds)
            if not ok:
                log.warning("webhook delivery failed", extra={"endpoint": endpoint_id, "seq": int(head.seq),
                                                              "attempt": attempt, "status": status, "error": error})
                if attempt >= self.max_attempts:
                    self._give_up(endpoint_id, int(head.seq), attempt, status, error)
                return delivered
            delivered += 1
        with self.engine.begin() as conn:
            self._release(conn, endpoint_id, owner)
        return delivered

    def _post(self, url: str, secret: str, message_id: str, body: bytes) -> tuple[bool, int | None, str | None, float]:
        stamp = datetime.fromtimestamp(self.clock(), UTC)
        headers = {"content-type": "application/json", "webhook-id": message_id,
                   "webhook-timestamp": str(int(stamp.timestamp())),
                   "webhook-signature": Webhook(secret).sign(message_id, stamp, body)}
        started = time.perf_counter()
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:500], time.perf_counter() - started
        seconds = time.perf_counter() - started
        if 200 <= response.status_code < 300:
            return True, response.status_code, None, seconds
        return False, response.status_code, f"HTTP {response.status_code}", seconds

    def _give_up(self, endpoint_id: str, seq: int, attempts: int, status: int | None, error: str | None) -> None:
        """The cap: disable the endpoint and open an incident, in one transaction of the log."""
        now = self.clock()
        reason = f"delivery of evt_{seq} failed {attempts} times (last: {error or status})"

        def work(conn: Connection) -> None:
            if disable_endpoint(conn, self.writer.ledger, endpoint_id, "warden", reason, now):
                record_incident(conn, self.writer.ledger, kind="webhook_disabled",
                                summary=f"webhook endpoint {endpoint_id} disabled: {reason}",
                                detail={"endpoint_id": endpoint_id, "seq": seq, "attempts": attempts,
                                        "status_code": status, "error": error}, now=now)

        self.writer.run(work)
        log.error("webhook endpoint disabled", extra={"endpoint": endpoint_id, "reason": reason})


def pending_total(engine: Engine) -> int:
    with read_only(engine.connect()) as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_deliveries)
                                .where(webhook_deliveries.c.state == "pending")).scalar_one())
