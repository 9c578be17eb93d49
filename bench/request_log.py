"""CPU spent logging one governed request: the JSON lines `POST /v1/actions` writes.

    python bench/request_log.py [--rounds N]

Through the handler `configure_logging` installs (redacting filter, JSON formatter), writing to
a stream that discards the text, per request:

(a) one `http_request` line carrying the decision's fields (what a governed request writes);
(b) the baseline: a `decision` line (logger `warden.decisions`) and an `http_request` line
    with the same fields between them (what one wrote before they were merged);
(c) line (a) with a token in a field, so redaction has something to mask.

Prints median and p99 microseconds per request, and b/a. Run it on two checkouts to compare the
encoders. Never part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.logs import configure_logging, log_event, request_id_var  # noqa: E402

REQUEST = {"method": "POST", "route": "/v1/actions", "path": "/v1/actions", "code": 200,
           "duration_ms": 4.512, "actor": "refund-bot"}
DECISION = {"decision_id": "dec_01J9Z8X7W6V5T4S3R2Q1P0N9M8", "packet_id": "pkt-2024-05-01-000123",
            "tool": "stripe.refund", "status": "executed", "risk": "L1", "autonomy": "A2"}


class Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def measure(call: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """(median, p99) in microseconds over `rounds` timed calls after a warm-up."""
    for _ in range(min(500, rounds)):
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    configure_logging("info", stream=Discard())
    http, decisions = logging.getLogger("warden.http"), logging.getLogger("warden.decisions")
    request_id_var.set("4bf92f3577b34da6a3ce929d0e0e4736")

    def one_line() -> None:
        log_event(http, "http_request", **REQUEST, **DECISION, decision_ms=3.217)

    def two_lines() -> None:
        log_event(decisions, "decision", **DECISION, duration_ms=3.217)
        log_event(http, "http_request", **REQUEST)

    def with_token() -> None:
        log_event(http, "http_request", **REQUEST, **DECISION, decision_ms=3.217,
                  note="Authorization: Bearer wdn_agent_0123456789abcdef")

    a = measure(one_line, args.rounds)
    b = measure(two_lines, args.rounds)
    c = measure(with_token, args.rounds)
    print(f"{'per request':<44} {'median µs':>10} {'p99 µs':>10}")
    print(f"{'(a) one http_request line with the decision':<44} {a[0]:>10.1f} {a[1]:>10.1f}")
    print(f"{'(b) decision + http_request lines':<44} {b[0]:>10.1f} {b[1]:>10.1f}")
    print(f"{'(c) line (a) with a token to mask':<44} {c[0]:>10.1f} {c[1]:>10.1f}")
    print(f"\nb/a: {b[0] / a[0]:.1f}x")


if __name__ == "__main__":
    main()
