"""Client-side rate limits, so that Warden stays within a provider's limits instead of
collecting 429s: a token bucket for request-count limits (HubSpot: N requests per 10 s) and a
cost bucket for Shopify's GraphQL leaky bucket (`extensions.cost.throttleStatus`).

Both live on the connectors' event loop (`connectors.live.runner`), one per provider account, and
so are shared by every outbox worker and request of the process. Several processes each keep their
own: with N processes, give each 1/N of the plan's rate (`crm_requests_per_10s`), or let the
provider's 429 and `Retry-After` (which every connector honours) settle the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: (connector, seconds waited) after every wait, for the metrics
OnWait = Callable[[str, float], None]


class TokenBucket:
    """`rate` requests per `per` seconds, in bursts of at most `rate`. `pause(seconds)` (a 429's
    Retry-After) makes every caller wait at least that long."""

    def __init__(self, rate: float, per: float, *, name: str, on_wait: OnWait | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("a token bucket needs a positive rate and period")
        self.capacity = float(rate)
        self.refill = rate / per
        self.name = name
        self.on_wait = on_wait
        self.clock = clock
        self._tokens = float(rate)
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + max(0.0, seconds))
        self._tokens = 0.0

    def delay(self) -> float:
        """Seconds until a token is free (0: now); takes the token when it is free now."""
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.refill)
        self._stamp = now
        if now < self._paused_until:
            return self._paused_until - now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.refill

    async def acquire(self) -> float:
        """Wait for a token; returns how long it waited."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        waited = 0.0
        async with self._lock:  # first come, first served
            while (wait := self.delay()) > 0:
                await asyncio.sleep(wait)
                waited += wait
        if waited and self.on_wait is not None:
            self.on_wait(self.name, waited)
        return waited


class CostBucket:
    """Shopify's leaky bucket as the client sees it: `maximum` points, restored at `restore`
    points per second, corrected by every answer's `throttleStatus`."""

    def __init__(self, *, maximum: float = 2000.0, restore: float = 100.0, name: str,
                 on_wait: OnWait | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.restore = restore
        self.name = name
        self.on_wait = on_wait
        self.clock = clock
        self._available = maximum
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None

    def available(self) -> float:
        now = self.clock()
        return min(self.maximum, self._available + (now - self._stamp) * self.restore)

    def observe(self, maximum: float, currently_available: float, restore: float) -> None:
        """An answer's `extensions.cost.throttleStatus`: the provider's own figures."""
        if maximum > 0:
            self.maximum = maximum
        if restore > 0:
            self.restore = restore
        self._available = max(0.0, min(self.maximum, currently_available))
        self._stamp = self.clock()

    def spend(self, cost: float) -> None:
        self._available = self.available() - cost
        self._stamp = self.clock()

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` points are available (0: now)."""
        missing = min(cost, self.maximum) - self.available()
        return max(0.0, missing / self.restore) if self.restore > 0 else 0.0

    async def acquire(self, cost: float) -> float:
        """Wait until `cost` points are available and spend them; returns how long it waited."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        waited = 0.0
        async with self._lock:
            while (wait := self.wait_for(cost)) > 0:
                await asyncio.sleep(wait)
                waited += wait
            self.spend(cost)
        if waited and self.on_wait is not None:
            self.on_wait(self.name, waited)
        return waited
