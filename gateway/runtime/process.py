"""Which gateway process this is: its number among the processes `warden serve --workers N`
runs on one listening socket (1 of 1 when it runs alone), and its pid.

Each connection goes to whichever process accepts it, so an operator needs the answering process
named: `/readyz` reports `"process": {"worker", "workers", "pid"}` and `/metrics` the gauge
`warden_process_info{worker, pid}`. `warden serve` calls `set_worker` in each process before
it serves; a process has one identity, so it is kept here, per process, not per `Runtime`.
"""

from __future__ import annotations

import os

_worker = 1
_workers = 1


def set_worker(number: int, workers: int) -> None:
    """This process is worker `number` (1-based) of `workers`."""
    global _worker, _workers
    if not 1 <= number <= workers:
        raise ValueError(f"worker {number} of {workers}")
    _worker, _workers = number, workers


def identity() -> dict[str, int]:
    """{"worker": n, "workers": N, "pid": this process's id}."""
    return {"worker": _worker, "workers": _workers, "pid": os.getpid()}
