"""When to try a request again, and how long to wait first.

Every request the SDK sends may be repeated without effect: reads and dry runs change nothing,
and a submitted packet keeps its `packet_id`, which the gateway answers with the decision it
stored. So a dropped connection, a timeout, or a 502/503/504 (the gateway, or a proxy in front
of it, not ready) is retried with exponential backoff and full jitter, honouring `Retry-After`.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import httpx

__all__ = ["RETRIED_STATUSES", "Retries", "retryable_error"]

RETRIED_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Retries:
    """`attempts` in all (1: never retry); the n-th retry waits up to `backoff * 2**(n-1)`
    seconds (full jitter), at most `max_backoff`; a `Retry-After` of seconds is honoured up to
    `max_backoff`."""

    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("Retries needs attempts >= 1 and non-negative backoffs")

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: fall back to our own backoff
                return min(max(float(retry_after), 0.0), self.max_backoff)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (retry - 1)))


def retryable_error(exc: Exception) -> bool:
    """A transport failure worth another attempt (not a malformed URL or request)."""
    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)
