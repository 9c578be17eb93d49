"""A short-lived cache of authenticated bearer tokens, keyed by the token's SHA-256.

Every request authenticates; the registry of agents and people changes rarely. A revoked or
rotated token, or a changed autonomy level, takes effect within `ttl` seconds (default 2) on
every process, and at once on the process that made the change (`clear()`). Unknown tokens are
not cached, so a token just issued works immediately. The raw token is never a key.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class TokenCache(Generic[T]):
    """Who each recently authenticated token belongs to (`T`), for `ttl` seconds; at most `size`
    tokens (the cache starts over when full)."""

    def __init__(self, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> T | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: bytes, who: T) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, who)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
