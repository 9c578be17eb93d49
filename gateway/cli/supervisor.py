"""`warden serve --workers N`: N gateway processes on one listening socket, and the parent that
keeps them running.

    Supervisor(workers, serve).run()   # forks the workers; returns when they have all stopped

`serve(number, ready)` runs in each forked child (worker `number`, 1..N) and returns its exit
code; it calls `ready()` once it is serving. The parent forks every worker from one thread that
holds no database connection, so each child starts from a clean copy. Then the parent only
waits for signals:

- SIGTERM, SIGINT: each worker is sent SIGTERM and stops as a lone `warden serve` does (the
  requests in flight are answered, within 5 s, then the gateway's threads stop); one still
  running after `GRACE` seconds is killed. A second SIGTERM or SIGINT kills them at once.
- SIGHUP: passed on to every worker (each one reloads its policies), unless `forward_sighup` is
  off (the workers do not watch their policies, and SIGHUP would end them): then it is ignored.
- SIGCHLD: a worker that exited is started again, with a log line. One that exited before it was
  serving failed at start-up: it is started again after a pause (0.5 s, doubling), and after
  `STARTUP_ATTEMPTS` such failures in a row the parent stops the others and exits with the
  reason (`SupervisorFailed`).

uvicorn's own multiprocess supervisor is not used: SIGHUP there restarts every worker (here it
reloads the policies), its workers are spawned (a fresh interpreter each, which re-reads the
settings instead of running on the parent's), and it restarts a worker that fails at start-up
forever unless it exited with uvicorn's own start-up failure code.

Each worker also holds the read end of a pipe whose write end only the parent holds (the
lifeline): when the parent dies, however it dies, the read returns and the worker stops itself,
so no orphan keeps serving the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("warden.serve")

#: Seconds a worker has to stop after SIGTERM: uvicorn's 5 s for the requests in flight, then
#: the gateway's threads (the outbox finishes the executions it holds, up to 10 s).
GRACE = 30.0
#: Start-up failures in a row after which the parent gives up.
STARTUP_ATTEMPTS = 3
#: The first pause before a worker that failed at start-up is started again; it doubles.
FIRST_PAUSE = 0.5
WATCHED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
Serve = Callable[[int, Callable[[], None]], int]


class SupervisorFailed(Exception):
    """The workers could not be kept running; the message says why, `code` is the last failed
    worker's exit code (negative: the signal that killed it)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Worker:
    number: int
    pid: int
    ready_fd: int  # the parent's end of the pipe the worker writes one byte to once it serves
    failures: int  # start-up failures in a row before this process
    ready: bool = False


class Supervisor:
    def __init__(self, workers: int, serve: Serve, *, forward_sighup: bool = True) -> None:
        if workers < 1:
            raise ValueError("a supervisor needs at least one worker")
        self.workers = workers
        self.serve = serve
        self.forward_sighup = forward_sighup
        self._running: dict[int, _Worker] = {}  # pid → worker
        self._due: dict[int, tuple[float, int]] = {}  # number → (when to start it, failures so far)
        self._lifeline = (-1, -1)
        self._mask: set[int | signal.Signals] = set()
        self._announced = False

    # -- the parent ------------------------------------------------------------------------------

    def run(self) -> None:
        """Start the workers and keep them running until SIGTERM or SIGINT (then return) or until
        one keeps failing at start-up (then raise `SupervisorFailed`)."""
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if threads:  # a fork copies one thread: whatever the others held would stay held
            raise RuntimeError(f"cannot fork workers while threads run: {', '.join(threads)}")
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        self._lifeline = os.pipe()
        try:
            for number in range(1, self.workers + 1):
                self._start(number, failures=0)
            self._watch()
            self._stop_all()
            log.info("every worker has stopped")
        finally:
            self._stop_all()
            for fd in self._lifeline:
                os.close(fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _watch(self) -> None:
        while True:
            self._notice_ready()
            now = time.monotonic()
            for number, (when, failures) in sorted(self._due.items()):
                if when <= now:
                    del self._due[number]
                    self._start(number, failures)
            waiting = self._due or any(not w.ready for w in self._running.values())
            info = signal.sigtimedwait(WATCHED, 0.05 if waiting else 1.0)
            if info is None:
                continue
            if info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping the workers", extra={"signal": signal.Signals(info.si_signo).name})
                return
            if info.si_signo == signal.SIGHUP:
                if not self.forward_sighup:
                    log.warning("SIGHUP ignored: the workers do not reload their policies (policy_reload is off)")
                for worker in self._running.values() if self.forward_sighup else ():
                    _signal(worker.pid, signal.SIGHUP)
            else:
                self._reap(restart=True)

    def _start(self, number: int, failures: int) -> None:
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker; it never returns from here
            os.close(ready_read)
            self._child(number, ready_write)
        os.close(ready_write)
        os.set_blocking(ready_read, False)
        self._running[pid] = _Worker(number, pid, ready_read, failures)

    def _notice_ready(self) -> None:
        for worker in self._running.values():
            if worker.ready:
                continue
            try:
                said = os.read(worker.ready_fd, 1)
            except BlockingIOError:
                continue
            if said:
                worker.ready, worker.failures = True, 0
                log.info("worker %d (pid %d) is serving", worker.number, worker.pid,
                         extra={"worker": worker.number, "pid": worker.pid})
        if not self._announced and len(self._running) == self.workers and all(w.ready for w in self._running.values()):
            self._announced = True
            log.info("all %d workers are serving", self.workers, extra={"pids": sorted(self._running)})

    def _reap(self, *, restart: bool) -> None:
        while self._running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._running.pop(pid, None)
            if worker is None:
                continue
            self._notice_ready_of(worker)
            os.close(worker.ready_fd)
            if restart:
                self._replace(worker, status)

    def _notice_ready_of(self, worker: _Worker) -> None:
        if not worker.ready:
            with contextlib.suppress(BlockingIOError):  # nothing written: it never said it serves
                worker.ready = bool(os.read(worker.ready_fd, 1))

    def _replace(self, worker: _Worker, status: int) -> None:
        how = _exit_description(status)
        fields = {"worker": worker.number, "pid": worker.pid, "status": how}
        if worker.ready:
            log.warning("worker %d (pid %d) %s; starting another", worker.number, worker.pid, how, extra=fields)
            self._due[worker.number] = (time.monotonic(), 0)
            return
        failures = worker.failures + 1
        if failures >= STARTUP_ATTEMPTS:
            raise SupervisorFailed(
                f"worker {worker.number} {how} before it was serving, {failures} times in a row; stopping "
                "(its error is in the log above)", os.waitstatus_to_exitcode(status))
        pause = FIRST_PAUSE * 2 ** (failures - 1)
        log.warning("worker %d (pid %d) %s before it was serving; starting it again in %g s", worker.number,
                    worker.pid, how, pause, extra=fields)
        self._due[worker.number] = (time.monotonic() + pause, failures)

    def _stop_all(self) -> None:
        """SIGTERM to every worker, then wait for them; SIGKILL after `GRACE` seconds or at a
        second SIGTERM/SIGINT."""
        self._due.clear()
        for worker in self._running.values():
            _signal(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while self._running:
            left = deadline - time.monotonic()
            info = signal.sigtimedwait(WATCHED, max(0.0, min(left, 0.5))) if left > 0 else None
            if left <= 0 or (info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT)):
                for worker in self._running.values():
                    log.warning("worker %d (pid %d) killed: it did not stop in time", worker.number, worker.pid,
                                extra={"worker": worker.number, "pid": worker.pid})
                    _signal(worker.pid, signal.SIGKILL)
                deadline = time.monotonic() + GRACE
            self._reap(restart=False)

    # -- a worker ----------------------------------------------------------------------------

    def _child(self, number: int, ready_write: int) -> None:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            for worker in self._running.values():  # the other workers' pipes are the parent's
                os.close(worker.ready_fd)
            lifeline, parent_end = self._lifeline
            os.close(parent_end)
            threading.Thread(target=_stop_with_parent, args=(lifeline,), name="warden-lifeline", daemon=True).start()

            def ready() -> None:
                os.write(ready_write, b"1")

            code = self.serve(number, ready)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - whatever happens, the child ends here
            print(f"warden serve: worker {number} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _stop_with_parent(lifeline: int) -> None:
    """In a worker: block until the parent is gone (the lifeline's write end closed), then stop."""
    while os.read(lifeline, 1):
        continue
    os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone; the next reap collects it
        os.kill(pid, sig)


def _exit_description(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"
