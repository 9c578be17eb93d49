"""Hot policy reload: the active policy set and its engine, swapped while the gateway runs.

    holder = PolicyHolder.from_dir("policies", known_tools=catalog)   # fails loudly at start-up
    watcher = PolicyWatcher(holder, "policies", on_activated=record, on_failed=alert).start()
    install_sighup(watcher)                                           # `kill -HUP` reloads now
    policy_set, engine = holder.current()                             # per request: one pair

A reload compiles the directory's `*.policy` files. A set with a new digest is handed to
`on_activated(policy_set)` first (the gateway appends its `policy_activated` audit entry there)
and then becomes active, so every decision under a digest comes after the entry recording it; if
the callback raises, the set is not activated and `on_failed` is told why (the watcher tries again
on its next poll). A set that does not compile leaves the last good one active: `on_failed` gets
the rendered diagnostics (`file:line:col: error: ...` with the source line and a caret), which
are also logged. The same digest again is a no-op.

The watcher polls (path, mtime_ns, size) of the `*.policy` files every `poll_seconds` and
compiles once a change has stayed the same for one more poll, so an editor's half-written save
is not compiled. `reload_now()` compiles at once, in the caller's thread, whatever the files'
stamps say.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from dsl import PolicyCompileError, PolicySet, compile_policy_dir
from dsl.compiler import POLICY_SUFFIX
from gateway.engine.decider import Decider
from gateway.logs import log_event

log = logging.getLogger("warden.policy")

Snapshot = tuple[tuple[str, int, int], ...]


class PolicyHolder:
    """The active (PolicySet, Decider) pair. Readers take `current()` once per request and use
    that pair throughout, so a swap never mixes two sets within one decision."""

    def __init__(self, policy_set: PolicySet, *, engine_factory: Callable[[PolicySet], Decider] = Decider) -> None:
        self._engine_factory = engine_factory
        self._changed = threading.Condition()
        self._active = (policy_set, engine_factory(policy_set))

    @classmethod
    def from_dir(cls, policy_dir: str | Path, *, known_tools: Collection[str] | None = None) -> PolicyHolder:
        """Compile `policy_dir` (PolicyCompileError if it does not compile)."""
        return cls(compile_policy_dir(policy_dir, known_tools=known_tools))

    def current(self) -> tuple[PolicySet, Decider]:
        return self._active

    @property
    def digest(self) -> str:
        return self._active[0].digest

    def build(self, policy_set: PolicySet) -> Decider:
        return self._engine_factory(policy_set)

    def activate(self, policy_set: PolicySet, engine: Decider | None = None) -> None:
        """Make `policy_set` the active one (with `engine` if already built for it)."""
        pair = (policy_set, engine if engine is not None else self._engine_factory(policy_set))
        with self._changed:
            self._active = pair
            self._changed.notify_all()

    def wait_for(self, digest: str, timeout: float) -> bool:
        """Block until the set with `digest` is active; False after `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._active[0].digest == digest, timeout)


@dataclass(frozen=True)
class ReloadResult:
    outcome: Literal["activated", "unchanged", "failed"]
    digest: str  # the active digest afterwards
    error: str | None = None


class PolicyWatcher:
    """Reloads `policy_dir` into `holder` when its files change (a daemon thread) or on demand."""

    def __init__(
        self,
        holder: PolicyHolder,
        policy_dir: str | Path,
        *,
        poll_seconds: float = 1.0,
        on_activated: Callable[[PolicySet], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        known_tools: Collection[str] | None = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.holder = holder
        self.policy_dir = Path(policy_dir)
        self.poll_seconds = poll_seconds
        self.on_activated = on_activated
        self.on_failed = on_failed
        self.known_tools = known_tools
        self._reload_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload_requested = False
        self._thread: threading.Thread | None = None
        self._applied = self.snapshot()  # the holder's set is taken to be these files
        self._seen = self._applied

    def snapshot(self) -> Snapshot:
        """(name, mtime_ns, size) of every `*.policy` file, sorted; empty if the folder is gone."""
        stamps = []
        try:
            for file in self.policy_dir.glob("*" + POLICY_SUFFIX):
                try:
                    st = file.stat()
                except OSError:  # removed between listing and stat: the next poll sees it
                    continue
                stamps.append((file.name, st.st_mtime_ns, st.st_size))
        except OSError:
            return ()
        return tuple(sorted(stamps))

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> PolicyWatcher:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="warden-policy-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request_reload(self) -> None:
        """Ask for a reload without waiting (safe from a signal handler)."""
        if self._thread is not None and self._thread.is_alive():
            self._reload_requested = True
            self._wake.set()
        else:
            threading.Thread(target=self.reload_now, name="warden-policy-reload", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self._reload_requested:
                    self._reload_requested = False
                    self.reload_now()
                else:
                    self.poll_once()
            except Exception:  # the watcher outlives any surprise; the last good set stays
                log.exception("policy watcher: unexpected error")

    def poll_once(self) -> ReloadResult | None:
        """One poll: reload if the files changed and then held still since the last poll."""
        current = self.snapshot()
        stable = current == self._seen
        self._seen = current
        if current == self._applied or not stable:
            return None
        return self._reload(current)

    # -- reloading ----------------------------------------------------------------------------

    def reload_now(self) -> ReloadResult:
        """Compile the directory now and activate it if it compiles to a new digest."""
        return self._reload(self.snapshot())

    def _reload(self, stamps: Snapshot) -> ReloadResult:
        with self._reload_lock:
            active = self.holder.digest
            try:
                policy_set = compile_policy_dir(self.policy_dir, known_tools=self.known_tools)
            except PolicyCompileError as err:
                self._applied = stamps  # do not recompile the same broken files every poll
                return self._failed(err.render(), count=len(err.diagnostics))
            except Exception as exc:  # a compiler bug must not take the gateway down
                self._applied = stamps
                return self._failed(f"{self.policy_dir}: the policies could not be compiled: {type(exc).__name__}: {exc}")
            if policy_set.digest == active:
                self._applied = stamps
                return ReloadResult("unchanged", active)
            try:
                engine = self.holder.build(policy_set)
                if self.on_activated is not None:
                    self.on_activated(policy_set)
                self.holder.activate(policy_set, engine)
            except Exception as exc:  # not recorded, so not active; retried on the next poll
                return self._failed(f"policy set {policy_set.digest} compiled but was not activated: "
                                    f"{type(exc).__name__}: {exc}")
            self._applied = stamps
            log_event(log, "policy_activated", digest=policy_set.digest, previous=active,
                      files=list(policy_set.files), warnings=len(policy_set.warnings))
            return ReloadResult("activated", policy_set.digest)

    def _failed(self, error: str, count: int = 1) -> ReloadResult:
        log_event(log, "policy_reload_failed", level=logging.ERROR, active=self.holder.digest,
                  errors=count, diagnostics=error)
        if self.on_failed is not None:
            try:
                self.on_failed(error)
            except Exception:
                log.exception("policy watcher: on_failed raised")
        return ReloadResult("failed", self.holder.digest, error)


def install_sighup(watcher: PolicyWatcher) -> bool:
    """Make SIGHUP reload the policies; False (nothing installed) off the main thread or where
    there is no SIGHUP. The handler only wakes the watcher and then chains to any handler that
    was installed before (uvicorn handles SIGINT/SIGTERM itself and leaves SIGHUP alone; its
    multi-worker supervisor uses SIGHUP in the parent to restart workers, which reload anyway)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGHUP)

    def on_sighup(signum: int, frame: FrameType | None) -> None:
        watcher.request_reload()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGHUP, on_sighup)
    return True
