"""Prometheus metrics for `/metrics`, on a registry of their own.

Two kinds of value, kept apart on purpose:

- **Events this process saw** (decisions, HTTP requests, connector calls, policy reload
  failures): counters and histograms updated in-process. Prometheus scrapes every gateway
  process and sums them. The processes of one `warden serve --workers N` share one address, so a
  scrape there reaches whichever of them accepts the connection; `warden_process_info{worker,
  pid}` names it.
- **State of the whole deployment** (pending approvals, the outbox backlog, the audit log's
  size and checkpoint age, the kill switch): read from the database at scrape time by
  `DatabaseCollector`, so every process reports the same truth instead of its own share. A
  database error never fails the scrape: those gauges are left out and
  `warden_metrics_scrape_errors_total` goes up.

One operational counter watches the database connection itself: `warden_db_statements_total`
(by `kind`: read, write, other), the SQL statements this process sent, counted by a SQLAlchemy
`before_cursor_execute` listener on the runtime's engine (`metrics.count_statements(engine)`).

    metrics = Metrics(engine, breakers=outbox.open_breakers, policy_digest=lambda: holder.digest)
    metrics.observe_decision("executed", "stripe.refund", Risk.L1, 0.0021)
    metrics.on_call("stripe", "stripe.refund", "succeeded", 0.180)   # the outbox's hook
    body, content_type = metrics.render()

Each `Metrics` has its own `CollectorRegistry`, so tests and several apps in one process never
collide. Label values that come from outside (tool names, methods) are bounded: past a limit,
new values are reported as `other`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from enum import Enum

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select, text

from gateway.runtime.process import identity
from gateway.store.killswitch import read_kill_switch
from gateway.store.schema import decisions, executions
from ledger.database import read_only
from ledger.schema import checkpoints
from ledger.store import Ledger

log = logging.getLogger("warden.metrics")

#: What the outbox reports for each connector call (`on_call`'s `outcome`).
OUTCOMES = ("succeeded", "transient_error", "permanent_error", "breaker_open", "kill_switch",
            "unknown_outcome", "idempotency_conflict", "lease_lost")
#: Outcomes that count as connector failures, and the `kind` label they get.
FAILURE_KINDS = {"transient_error": "transient", "permanent_error": "permanent",
                 "unknown_outcome": "unknown_outcome", "idempotency_conflict": "idempotency_conflict"}
#: Outcomes of a claim that made no call, so have no duration.
NO_CALL = frozenset({"breaker_open", "kill_switch", "lease_lost"})
#: What a reconciliation found (`on_reconcile`'s `result`).
RECONCILIATION_RESULTS = ("found", "not_found", "error")

#: How a query to OPA ended (`observe_opa`'s `outcome`): an answer read, or why there was none.
OPA_OUTCOMES = ("allow", "deny", "wrong_shape", "undefined", "timeout", "unreachable", "status",
                "malformed", "not_configured")
#: A query to OPA has a budget of half a second by default (opa_timeout_seconds).
OPA_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: A decision takes well under a millisecond to a few; anything near a second is a problem.
DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: HTTP requests include the database commit and long polls are excluded by the caller.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: A connector call is a network round trip to Stripe, Shopify, the CRM.
#: Jobs per log writer batch: 1 when idle, up to the writer's `max_batch` under load.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONNECTOR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
_PG_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 2000"  # ms: a slow DB must not hang a scrape


class BoundedLabel:
    """Passes label values through until `limit` distinct ones were seen; then `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
        return value


def risk_label(risk: object) -> str:
    """`L0`..`L3` from a `Risk`, an int or a label already written out."""
    if isinstance(risk, Enum):
        return str(risk.name)
    if isinstance(risk, int):
        return f"L{risk}"
    return str(risk)


class Metrics:
    """Every Warden metric, on `self.registry`; `render()` is the `/metrics` body.

    `engine` (optional): read deployment state at scrape time. `breakers`: returns
    {connector: open?} for `warden_circuit_breaker_open`. `policy_digest`: returns the active
    policy set's digest for `warden_policy_info`. All three can be set later as attributes of
    the same names (`metrics.database.engine`, `metrics.breakers`, `metrics.policy_digest`).
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        breakers: Callable[[], Mapping[str, bool]] | None = None,
        policy_digest: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.time,
        process: bool = True,
        max_tools: int = 500,
    ) -> None:
        self.registry = CollectorRegistry()
        self.breakers = breakers
        self.policy_digest = policy_digest
        self._tool = BoundedLabel(max_tools)
        self._connector = BoundedLabel(100)
        r = self.registry
        self.decisions = Counter("warden_decisions", "Decisions made, by status, tool and risk tier.",
                                 ["status", "tool", "risk"], registry=r)
        self.decision_seconds = Histogram("warden_decision_seconds", "Time to decide one packet.",
                                          buckets=DECISION_BUCKETS, registry=r)
        self.requests = Counter("warden_http_requests", "HTTP requests, by method, route template and status code.",
                                ["method", "route", "code"], registry=r)
        self.request_seconds = Histogram("warden_http_request_seconds", "HTTP request duration.",
                                         ["method", "route"], buckets=REQUEST_BUCKETS, registry=r)
        self.connector_calls = Counter("warden_connector_calls", "Connector calls, by outcome.",
                                       ["connector", "tool", "outcome"], registry=r)
        self.connector_failures = Counter("warden_connector_failures", "Connector calls that failed, by kind.",
                                          ["connector", "tool", "kind"], registry=r)
        self.connector_seconds = Histogram("warden_connector_seconds", "Connector call duration.",
                                           ["connector"], buckets=CONNECTOR_BUCKETS, registry=r)
        self.connector_reconciliations = Counter(
            "warden_connector_reconciliations", "Executions whose outcome was unknown, checked with the provider, "
            "by what it showed (found: not sent again).", ["connector", "tool", "result"], registry=r)
        self.connector_throttle_waits = Counter(
            "warden_connector_throttle_waits", "Calls that waited for the client-side rate limit.",
            ["connector"], registry=r)
        self.connector_throttle_seconds = Counter(
            "warden_connector_throttle_wait_seconds", "Time calls waited for the client-side rate limit.",
            ["connector"], registry=r)
        self.connector_compensations = Counter(
            "warden_connector_compensations", "Compensations asked for, by the compensating decision's status.",
            ["connector", "tool", "status"], registry=r)
        self.webhook_deliveries = Counter("warden_webhook_deliveries",
                                          "Webhook delivery attempts, by outcome (delivered: a 2xx; failed).",
                                          ["outcome"], registry=r)
        self.webhook_seconds = Histogram("warden_webhook_seconds", "Time a webhook receiver took to answer.",
                                         buckets=CONNECTOR_BUCKETS, registry=r)
        self.writer_batches = Histogram("warden_log_writer_batch_jobs",
                                        "Jobs per batch of the log writer (one transaction, one commit each).",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.writer_batch_seconds = Histogram("warden_log_writer_batch_seconds",
                                              "Time the log writer took per batch, the commit included.",
                                              buckets=DECISION_BUCKETS, registry=r)
        self.writer_redone = Counter("warden_log_writer_batches_redone",
                                     "Batches written again one job at a time, under savepoints, because a "
                                     "job failed (a duplicate packet_id, a lost lease, a refused value).",
                                     registry=r)
        self.opa_requests = Counter("warden_opa_requests",
                                    "Queries to OPA for `opa` policy statements, by outcome (allow, deny; "
                                    "anything else denied the action too).", ["outcome"], registry=r)
        self.opa_seconds = Histogram("warden_opa_seconds", "Time a query to OPA took, up to its budget.",
                                     buckets=OPA_BUCKETS, registry=r)
        self.policy_reload_failures = Counter("warden_policy_reload_failures",
                                              "Policy reloads that did not compile (the last good set stayed active).",
                                              registry=r)
        # Registered before the database collector: a scrape's own statements (that collector's
        # read) are counted in the next scrape, not in the one that runs them.
        self.statements = StatementCounter()
        r.register(self.statements)
        self.database = DatabaseCollector(engine, clock=clock)
        r.register(self.database)
        r.register(_LiveCollector(self))
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    def observe_decision(self, status: str, tool: str, risk: object, seconds: float) -> None:
        self.decisions.labels(status, self._tool(tool), risk_label(risk)).inc()
        self.decision_seconds.observe(seconds)

    def observe_batch(self, jobs: int, seconds: float, redone: bool = False) -> None:
        """The log writer's `on_batch` hook: one committed (or failed) batch."""
        self.writer_batches.observe(jobs)
        self.writer_batch_seconds.observe(seconds)
        if redone:
            self.writer_redone.inc()

    def observe_request(self, method: str, route: str, code: int | str, seconds: float | None = None) -> None:
        """`route` is the route template (`/v1/actions/{decision_id}`), never the raw path."""
        method = method.upper() if method.upper() in HTTP_METHODS else OTHER
        self.requests.labels(method, route, str(code)).inc()
        if seconds is not None:
            self.request_seconds.labels(method, route).observe(seconds)

    def observe_connector_call(self, connector: str, tool: str, outcome: str, seconds: float) -> None:
        """The outbox's `on_call` hook: one call to `connector`'s `tool` and how it ended."""
        connector, tool = self._connector(connector), self._tool(tool)
        label = outcome if outcome in OUTCOMES else OTHER
        self.connector_calls.labels(connector, tool, label).inc()
        kind = FAILURE_KINDS.get(outcome)
        if kind is not None:
            self.connector_failures.labels(connector, tool, kind).inc()
        if outcome not in NO_CALL:
            self.connector_seconds.labels(connector).observe(seconds)

    on_call = observe_connector_call

    def observe_reconciliation(self, connector: str, tool: str, result: str) -> None:
        """The outbox's `on_reconcile` hook."""
        label = result if result in RECONCILIATION_RESULTS else OTHER
        self.connector_reconciliations.labels(self._connector(connector), self._tool(tool), label).inc()

    def observe_throttle_wait(self, connector: str, seconds: float) -> None:
        """A live connector's `on_wait` hook (runs on the connectors' loop: counters only)."""
        connector = self._connector(connector)
        self.connector_throttle_waits.labels(connector).inc()
        self.connector_throttle_seconds.labels(connector).inc(max(0.0, seconds))

    def observe_compensation(self, tool: str, status: str) -> None:
        self.connector_compensations.labels(self._connector(tool.split(".", 1)[0]), self._tool(tool), status).inc()

    def observe_webhook(self, outcome: str, seconds: float) -> None:
        self.webhook_deliveries.labels(outcome).inc()
        self.webhook_seconds.observe(seconds)

    def observe_opa(self, outcome: str, seconds: float) -> None:
        """The OPA delegate's `on_answer` hook: one query and how it ended."""
        self.opa_requests.labels(outcome if outcome in OPA_OUTCOMES else OTHER).inc()
        self.opa_seconds.observe(seconds)

    def count_statements(self, engine: Engine) -> None:
        """Count every statement `engine` sends from now on in `warden_db_statements_total`."""
        self.statements.attach(engine)

    def policy_reload_failed(self, _error: str = "") -> None:
        """Count a failed reload (usable directly as part of `PolicyWatcher`'s `on_failed`)."""
        self.policy_reload_failures.inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for the `/metrics` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LiveCollector(Collector):
    """Values this process holds and reads on demand: breakers, the active policy digest and which
    process answers (`gateway.runtime.process`)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(read=True)

    def _families(self, read: bool = False) -> list[Metric]:
        breakers = GaugeMetricFamily("warden_circuit_breaker_open", "1 while a connector's circuit breaker is open.",
                                     labels=["connector"])
        policy = GaugeMetricFamily("warden_policy_info", "The active policy set (always 1).", labels=["digest"])
        process = GaugeMetricFamily(
            "warden_process_info", "The gateway process that answered this scrape: its number among `warden serve "
            "--workers N` and its pid (always 1).", labels=["worker", "pid"])
        if read:
            self._read(breakers, policy)
            me = identity()
            process.add_metric([str(me["worker"]), str(me["pid"])], 1.0)
        return [breakers, policy, process]

    def _read(self, breakers: GaugeMetricFamily, policy: GaugeMetricFamily) -> None:
        source = self._metrics.breakers
        if source is not None:
            try:
                for connector, is_open in sorted(source().items()):
                    breakers.add_metric([connector], 1.0 if is_open else 0.0)
            except Exception:  # a metrics read never breaks the scrape
                log.exception("reading the circuit breakers failed")
        digest = self._metrics.policy_digest
        if digest is not None:
            try:
                value = digest()
            except Exception:
                log.exception("reading the active policy digest failed")
                value = None
            if value:
                policy.add_metric([value], 1.0)


#: The first word of a statement (upper case, first six characters) → its `kind` label.
_STATEMENT_KINDS = {"SELECT": "read", "WITH": "read", "INSERT": "write", "UPDATE": "write", "DELETE": "write"}
STATEMENT_KINDS = ("read", "write", "other")


def statement_kind(statement: str) -> str:
    """`read` (SELECT, WITH), `write` (INSERT, UPDATE, DELETE) or `other` (BEGIN, SAVEPOINT,
    RELEASE, SET, PRAGMA, DDL)."""
    head = statement.lstrip()[:6].upper()
    return _STATEMENT_KINDS.get(head) or ("read" if head.startswith("WITH") else "other")


class StatementCounter(Collector):
    """`warden_db_statements_total{kind}`: the statements sent through a cursor of the engines
    it is attached to, in this process. Commits, and the implicit BEGIN that psycopg sends on
    PostgreSQL, go through the driver rather than a cursor and are not counted; SQLite's explicit
    BEGIN [IMMEDIATE] is (as `other`). An `executemany` counts once.

    The listener does one dictionary lookup and one integer increment under a lock: well under a
    microsecond a statement.
    """

    def __init__(self) -> None:
        self._counts = dict.fromkeys(STATEMENT_KINDS, 0)
        self._lock = threading.Lock()

    def attach(self, engine: Engine) -> None:
        if not event.contains(engine, "before_cursor_execute", self._before_cursor_execute):
            event.listen(engine, "before_cursor_execute", self._before_cursor_execute)

    def _before_cursor_execute(self, _conn: object, _cursor: object, statement: str, _parameters: object,
                               _context: object, _executemany: bool) -> None:
        self.count(statement_kind(statement))

    def count(self, kind: str) -> None:
        """Count one statement of `kind` sent past SQLAlchemy (the log writer's own, through the
        driver)."""
        with self._lock:
            self._counts[kind] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]

    def collect(self) -> Iterable[Metric]:
        return [self._family(self.counts())]

    @staticmethod
    def _family(counts: Mapping[str, int]) -> CounterMetricFamily:
        family = CounterMetricFamily("warden_db_statements",
                                     "SQL statements this process sent to the database, by kind (read, write, other).",
                                     labels=["kind"])
        for kind, n in counts.items():
            family.add_metric([kind], n)
        return family


class DatabaseCollector(Collector):
    """Deployment state read from the database in one read-only snapshot per scrape.

    Never raises: on any error the database gauges are left out of this scrape and
    `warden_metrics_scrape_errors_total` is incremented (it is always reported).
    `warden_audit_checkpoint_age_seconds` is absent until the first checkpoint is signed.
    """

    def __init__(self, engine: Engine | None, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock
        self._ledger = Ledger()
        self._errors = 0
        self._lock = threading.Lock()

    @property
    def errors(self) -> int:
        return self._errors

    def describe(self) -> Iterable[Metric]:
        return [*self._gauges({}), self._error_family()]

    def collect(self) -> Iterable[Metric]:
        values: dict[str, float] = {}
        if self.engine is not None:
            try:
                values = self.read(self.engine)
            except Exception as exc:  # noqa: BLE001 - the scrape must survive any database failure
                with self._lock:
                    self._errors += 1
                log.warning("metrics: reading the database failed: %s: %s", type(exc).__name__,
                            str(exc).splitlines()[0] if str(exc) else "")
                values = {}
        return [*self._gauges(values), self._error_family()]

    def read(self, engine: Engine) -> dict[str, float]:
        """The database values, by metric name (raises on a database error)."""
        with engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text(_PG_STATEMENT_TIMEOUT))
                pending = conn.execute(
                    select(func.count()).select_from(decisions).where(decisions.c.status == "pending_approval")
                ).scalar_one()
                outbox = conn.execute(
                    select(func.count()).select_from(executions).where(executions.c.state.in_(("pending", "running")))
                ).scalar_one()
                size = self._ledger.head(conn).size
                signed_at = conn.execute(
                    select(checkpoints.c.signed_at).order_by(checkpoints.c.size.desc()).limit(1)
                ).scalar_one_or_none()
                engaged = read_kill_switch(conn).engaged
        values = {
            "warden_pending_approvals": float(pending),
            "warden_outbox_pending": float(outbox),
            "warden_audit_log_entries": float(size),
            "warden_kill_switch_engaged": 1.0 if engaged else 0.0,
        }
        if signed_at is not None:
            values["warden_audit_checkpoint_age_seconds"] = max(0.0, self._clock() - float(signed_at))
        return values

    @staticmethod
    def _gauges(values: Mapping[str, float]) -> list[Metric]:
        """The database gauges; those without a value (an error, no checkpoint yet) have no sample."""
        return [
            GaugeMetricFamily(name, help_text, value=values[name]) if name in values
            else GaugeMetricFamily(name, help_text)
            for name, help_text in _DATABASE_GAUGES
        ]

    def _error_family(self) -> CounterMetricFamily:
        return CounterMetricFamily("warden_metrics_scrape_errors",
                                   "Scrapes whose database read failed (those gauges were left out).",
                                   value=self._errors)


_DATABASE_GAUGES = (
    ("warden_pending_approvals", "Decisions waiting for approval (status pending_approval)."),
    ("warden_outbox_pending", "Executions not yet finished (state pending or running)."),
    ("warden_audit_log_entries", "Entries in the audit log (the tree head's size)."),
    ("warden_audit_checkpoint_age_seconds", "Seconds since the latest checkpoint was signed."),
    ("warden_kill_switch_engaged", "1 while the kill switch is engaged."),
)

__all__ = ["CONNECTOR_BUCKETS", "DECISION_BUCKETS", "OUTCOMES", "STATEMENT_KINDS", "DatabaseCollector", "Metrics",
           "StatementCounter", "statement_kind"]
