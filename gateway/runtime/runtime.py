"""One running gateway: the database, the log and its signer, the active policies, the connectors,
the outbox worker and the background loops, assembled from `Settings`.

`Runtime(settings)` opens and migrates the database, loads (or, on first start, generates) the
checkpoint signing key, compiles the policies and builds the pipeline. Threads start in
`start()` (the FastAPI lifespan calls it) and stop in `stop()`:

- the outbox worker (re-drives what a crash left in flight, then runs due executions);
- the webhook worker (fans the log out into the delivery outbox and sends it, `gateway.events`);
- the policy watcher (activates changed policy files that compile; SIGHUP reloads at once);
- the housekeeping loop, every second: expires overdue approvals, signs checkpoints on time and
  re-verifies the audit log (`TamperWatch.tick`); a tamper alarm engages the kill switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import timedelta
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from connectors.registry import Registry
from dsl import compile_policy_dir
from dsl.grammar import grammar_digest
from dsl.model import PolicySet
from gateway.engine.decider import Decider
from gateway.pipeline.approvals import Approvals
from gateway.pipeline.compensate import Compensations
from gateway.pipeline.audit import AuditReader
from gateway.config import Settings
from gateway.delegation.opa import OpaDelegate
from gateway.logs import log_event
from gateway.runtime.connectors import ConnectorHealth, connectors_for
from gateway.runtime.metrics import Metrics
from gateway.execution.breaker import CircuitBreakers
from gateway.execution.outbox import Outbox
from gateway.execution.worker import Worker
from gateway.events.delivery import Sender
from gateway.events.hub import Hub
from gateway.events.worker import DeliveryWorker
from gateway.runtime.reload import PolicyHolder, PolicyWatcher
from gateway.store.identities import purge_stale
from gateway.store.killswitch import read_kill_switch
from gateway.store.notifications import CommitListener
from gateway.store.schema import gateway_state, upgrade
from gateway.store.session_lock import TAMPER_WATCH, SessionLock
from gateway.store.tokens import TokenCache
from gateway.store.writer import Writer
from gateway.pipeline.submit import Gateway, Limits
from gateway.runtime.tamper import TamperWatch, alarm_of, fail_closed
from ledger.checkpointer import Checkpointer, CheckpointPolicy
from ledger.database import make_engine, read_only
from ledger.keys import KeyMismatchError, current_key, read_signer_key, write_signer_key
from ledger.note import generate_key
from ledger.store import Ledger

if TYPE_CHECKING:
    from gateway.replay.replay import Replayed, Replayer

log = logging.getLogger("warden.runtime")
decision_log = logging.getLogger("warden.decisions")
POLICY_STATE_KEY = "active_policy"


@dataclass(frozen=True)
class PacketLimits:
    max_bytes: int = 65_536
    max_depth: int = 16
    max_items: int = 1_000


class Changes:
    """Wakes long-polling requests of this process when a decision changes: at once for a change
    of this process, or of another on PostgreSQL (`gateway.store.notifications`); the requests'
    periodic re-read covers the rest."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    async def wait(self, decision_id: str, timeout: float) -> None:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.setdefault(decision_id, set()).add(entry)
        try:
            with contextlib.suppress(TimeoutError):  # a timeout is the ordinary end of a long-poll
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                waiting = self._waiters.get(decision_id)
                if waiting is not None:
                    waiting.discard(entry)
                    if not waiting:
                        del self._waiters[decision_id]

    def notify(self, decision_id: str) -> None:
        with self._lock:
            entries = list(self._waiters.get(decision_id, ()))
        for loop, event in entries:
            loop.call_soon_threadsafe(event.set)

    def notify_all(self) -> None:
        with self._lock:
            ids = list(self._waiters)
        for decision_id in ids:
            self.notify(decision_id)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._replayer: Replayer | None = None
        self.db = make_engine(settings.database_url, pool_size=16, max_overflow=16) \
            if not settings.database_url.startswith("sqlite") else make_engine(settings.database_url)
        upgrade(self.db)
        self.signer = _load_or_create_signer(settings)
        with self.db.connect() as conn:
            current = current_key(conn)
        if current is not None and current.verifier_key != self.signer.verifier_key:
            raise KeyMismatchError(
                f"{settings.signing_key_file} is not the audit log's signing key (the log signs "
                f"with key {current.key_id}); point signing_key_file at the right key"
            )
        self.ledger = Ledger()
        self.checkpointer = Checkpointer(
            self.signer,
            CheckpointPolicy(every_entries=settings.checkpoint_every_entries,
                             every_seconds=settings.checkpoint_every_seconds),
            ledger=self.ledger, clock=clock,
        )
        self.metrics = Metrics(engine=self.db)
        self._own_registry = registry is None
        self.registry = registry or connectors_for(settings, on_wait=self.metrics.observe_throttle_wait)
        self.connector_health = ConnectorHealth(self.registry)
        self.metrics.count_statements(self.db)
        known = self.registry.known_tools()
        expiry = timedelta(seconds=settings.approval_ttl_default_seconds)
        self.policies = PolicyHolder(
            compile_policy_dir(settings.policy_dir, known_tools=known),
            engine_factory=lambda policy_set: Decider(policy_set, approval_expiry=expiry),
        )
        self.watcher = PolicyWatcher(
            self.policies, settings.policy_dir, poll_seconds=settings.policy_poll_seconds,
            on_activated=self._policy_activated, on_failed=self.metrics.policy_reload_failed,
            known_tools=known,
        ) if settings.policy_reload else None
        self.writer = Writer(self.db, self.ledger, checkpointer=self.checkpointer, background=True,
                             on_statement=self.metrics.statements.count, on_batch=self.metrics.observe_batch)
        self.outbox = Outbox(
            self.writer, self.registry, clock=clock,
            max_attempts=settings.outbox_max_attempts,
            backoff_base=settings.outbox_backoff_base_seconds,
            backoff_max=settings.outbox_backoff_max_seconds,
            breaker=CircuitBreakers(failures=settings.breaker_failures,
                                    cooldown=settings.breaker_cooldown_seconds),
            on_call=self.metrics.observe_connector_call,
            on_reconcile=self.metrics.observe_reconciliation,
        )
        self.worker = Worker(self.outbox, threads=settings.outbox_workers,
                             recover_on_start=settings.outbox_recover_on_start)
        self.metrics.breakers = lambda: {
            name: state != "closed" for name, state in self.outbox.breaker.states().items()
        }
        self.metrics.policy_digest = lambda: self.policies.current()[0].digest
        self.opa = OpaDelegate(settings.opa_url, timeout=settings.opa_timeout_seconds, token=settings.opa_token,
                               on_answer=self.metrics.observe_opa)
        self.gateway = Gateway(
            self.writer, policies=lambda: self.policies.current()[1],
            registry=self.registry, outbox=self.outbox, clock=clock, on_decision=self._observe_decision,
            limits=Limits(settings.repeated_denials_threshold, settings.repeated_denials_window_seconds),
            delegate=self.opa,
        )
        self.compensations = Compensations(self.gateway, self.registry, on_compensation=self.metrics.observe_compensation)
        self.approvals = Approvals(self.gateway, passkeys_required_for_l3=settings.passkeys_required_for_l3)
        self.changes = Changes()
        self.commits = CommitListener(
            self.db.url.set(drivername="postgresql").render_as_string(hide_password=False), self._heard_commit,
        ) if self.db.dialect.name == "postgresql" else None
        self.writer.on_subjects(self._notify_changes)
        self.events = Hub(self.db)  # the log's events for `GET /v1/events`
        self.writer.on_commit(self.events.wake)
        self.webhooks = DeliveryWorker(
            Sender(self.db, self.writer, clock=clock, timeout=settings.webhook_timeout_seconds,
                   max_attempts=settings.webhook_max_attempts, backoff_base=settings.webhook_backoff_base_seconds,
                   backoff_max=settings.webhook_backoff_max_seconds, on_delivery=self.metrics.observe_webhook),
            threads=settings.webhook_workers, release_on_start=settings.outbox_recover_on_start)
        self.writer.on_commit(self.webhooks.wake)
        self.tokens: TokenCache[Any] = TokenCache()  # who each token is, for the HTTP layer
        self.audit = AuditReader(self.db, self.ledger)
        self.packet_limits = PacketLimits(max_bytes=settings.max_packet_bytes)
        self.long_poll_max = float(settings.long_poll_max_seconds)
        self.tamper = TamperWatch(self.ledger, self._tamper_alarm,
                                  full_check_seconds=settings.tamper_full_check_seconds)
        # With several processes on one PostgreSQL, one of them re-verifies the log at a time.
        self.tamper_lock = SessionLock(self.db, TAMPER_WATCH)
        self._stop = threading.Event()
        self._next_purge = 0.0
        self._housekeeper: threading.Thread | None = None
        self._record_active_policy(self.policies.current()[0])

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._sign_checkpoints()  # a log that has never been checkpointed gets one now
        self.connector_health.start()
        self.worker.start()
        self.webhooks.start()
        if self.commits is not None:
            self.commits.start()
        if self.watcher is not None:
            self.watcher.start()
        self._stop.clear()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="warden-housekeeping", daemon=True)
        self._housekeeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()
        self.worker.stop()
        self.webhooks.stop()
        if self.commits is not None:
            self.commits.stop()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=5)
        self.tamper_lock.release()
        self.connector_health.stop()
        self.opa.close()
        self.writer.close()
        self.db.dispose()
        if self._own_registry and self.registry.runner is not None:
            self.registry.close()  # live mode: the connectors' loop and clients

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _housekeeping(self) -> None:
        while not self._stop.wait(1.0):
            for task in (self._expire_approvals, self._sign_checkpoints, self._verify_log, self._purge_stale):
                try:
                    task()
                except Exception:  # one failing task never starves the others; the next tick retries
                    log.exception("housekeeping failed", extra={"task": task.__name__.lstrip("_")})

    def _heard_commit(self, subjects: list[str] | None) -> None:
        """Another process committed: wake what waits on it here (long-polls on those decisions,
        the console feed) instead of at their next poll."""
        if subjects is None:
            self.changes.notify_all()
        else:
            self._notify_changes(subjects)
        self.writer.committed_elsewhere()

    def _notify_changes(self, subjects: list[str]) -> None:
        for subject in subjects:
            self.changes.notify(subject)

    def _expire_approvals(self) -> None:
        if self.approvals.expire_due():
            self.changes.notify_all()

    def _sign_checkpoints(self) -> None:
        self.writer.run(self.checkpointer.maybe_sign)

    def _purge_stale(self) -> None:
        """Hourly: ended console sessions and spent sign-in failure counts are deleted."""
        now = self.clock()
        if now < self._next_purge:
            return
        self._next_purge = now + 3600.0
        settings = self.settings
        self.writer.run(lambda conn: purge_stale(conn, now, max_seconds=settings.console_session_max_seconds,
                                                 window=settings.login_window_seconds))

    def _verify_log(self) -> None:
        if self.tamper_lock.held():
            self.tamper.tick(self.db)

    def _tamper_alarm(self, problem: str, detail: dict[str, object]) -> None:
        """The live log failed verification: fail closed. The incident and the engaged kill switch
        are recorded in the log itself, so an auditor sees them beside whatever was altered."""
        now = self.clock()
        state = self.writer.run(lambda conn: fail_closed(conn, self.ledger, problem, detail, now))
        log.error("kill switch engaged", extra={"reason": state.reason})

    def replay(self, decision_id: str) -> Replayed:
        """A recorded decision decided again (`GET /v1/actions/{id}/replay`); the compiled
        policy sets are kept between calls."""
        from gateway.pipeline.errors import DecisionNotFound, shown
        from gateway.replay.history import DatabaseHistory, HistoryError
        from gateway.replay.replay import Replayer

        if self._replayer is None:
            self._replayer = Replayer(DatabaseHistory(self.db))
        try:
            recorded = self._replayer.history.decision(decision_id)
        except HistoryError:
            raise DecisionNotFound(f"no decision {shown(decision_id)}") from None
        return self._replayer.replay(recorded)

    def tamper_alarm(self) -> str | None:
        """The reason of a kill switch a tamper alarm engaged and no founder has released yet;
        `/readyz` reports it and stays ready: the switch denies every packet, and founders and
        auditors must reach the gateway to investigate and release it."""
        with read_only(self.db.connect()) as conn:
            return alarm_of(read_kill_switch(conn))

    # ------------------------------------------------------------ policies

    def _policy_activated(self, policy_set: PolicySet) -> None:
        self._record_active_policy(policy_set)

    def _record_active_policy(self, policy_set: PolicySet) -> None:
        """A `policy_activated` entry whenever the active digest differs from the last recorded,
        or the set is not kept by its digest yet (a database from before version 7): the entry
        carries the set's files, and `policy_sets` keeps them, in the same transaction."""
        import json

        from gateway.store.policy_sets import files_as_text, save_policy_set

        files = files_as_text(policy_set.sources)

        def work(conn: Any) -> None:
            raw = conn.execute(
                select(gateway_state.c.value).where(gateway_state.c.key == POLICY_STATE_KEY)
            ).scalar_one_or_none()
            kept_now = save_policy_set(conn, policy_set.digest, files, self.clock())
            if raw is not None and json.loads(raw).get("digest") == policy_set.digest and not kept_now:
                return
            self.ledger.append(conn, "policy_activated", "warden", policy_set.digest, {
                "digest": policy_set.digest, "policies": [p.name for p in policy_set.policies],
                "files": list(files), "sources": files, "grammar": grammar_digest(),
            })
            value = json.dumps({"digest": policy_set.digest, "at": self.clock()})
            if raw is None:
                conn.execute(gateway_state.insert().values(key=POLICY_STATE_KEY, value=value))
            else:
                conn.execute(gateway_state.update().where(gateway_state.c.key == POLICY_STATE_KEY).values(value=value))

        self.writer.run(work)
        log.info("policies active", extra={"digest": policy_set.digest})

    # ------------------------------------------------------------ observations

    def _observe_decision(self, decision: Any, tool: str, seconds: float) -> None:
        """Metrics, and the log: over HTTP the decision's fields join the request's one
        `http_request` line (`gateway.logs.join_request_line`, `decision_ms` its own time);
        a decision made outside a request gets a `decision` line (`warden.decisions`)."""
        from gateway.logs import join_request_line

        self.metrics.observe_decision(decision.status, tool, decision.risk, seconds)
        fields = {"decision_id": decision.decision_id, "packet_id": decision.packet_id, "tool": tool,
                  "status": decision.status, "risk": decision.risk.name, "autonomy": decision.autonomy.name}
        if not join_request_line(**fields, decision_ms=round(seconds * 1000, 3)):
            log_event(decision_log, "decision", **fields, duration_ms=round(seconds * 1000, 3))

    def latest_checkpoint(self) -> str | None:
        with read_only(self.db.connect()) as conn:
            found = self.ledger.latest_checkpoint(conn)
        return None if found is None else found[1]

    def readiness(self, opa: dict[str, Any] | None = None) -> dict[str, bool]:
        """What `/readyz` checks; `opa`: `opa_report()` already made for the same probe."""
        checks = {"database": False, "policies": self.policies.current()[0] is not None, "signing_key": self.signer is not None}
        try:
            with self.db.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            checks["database"] = True
        except Exception:
            log.warning("readiness: database unreachable")
        if self.connector_health.enabled:
            checks["connectors"] = self.connector_health.ready()
        opa = self.opa_report() if opa is None else opa
        if opa["delegations"]:
            checks["opa"] = bool(opa["reachable"])
        return checks

    def opa_report(self) -> dict[str, Any]:
        """For `/readyz`: whether an OPA server is configured, whether it answers `GET /health`
        within the budget, and how many `opa` statements the active policies have. OPA counts
        for readiness only while a policy delegates to it."""
        delegations = sum(len(p.delegations) for p in self.policies.current()[0].policies)
        report: dict[str, Any] = {"configured": self.opa.configured, "delegations": delegations,
                                  "reachable": None}
        if self.opa.configured:
            report["reachable"] = self.opa.healthy()
        return report


def _load_or_create_signer(settings: Settings) -> Any:
    """The checkpoint signing key; on first start a new one is written (mode 0600)."""
    path = settings.signing_key_file
    if path.exists():
        signer = read_signer_key(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = generate_key(settings.log_origin)
        write_signer_key(path, signer)
        log.warning("generated a new checkpoint signing key",
                    extra={"path": str(path), "verifier_key": signer.verifier_key})
    # The verifier (public) key beside it, for auditors: `warden audit verify DIR --key FILE`.
    public = path.with_suffix(".pub")
    if not public.exists():
        public.write_text(signer.verifier_key + "\n", encoding="utf-8")
    return signer
