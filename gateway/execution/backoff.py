"""How long a failed execution waits before its next attempt.

Exponential backoff with "full jitter" (a uniform draw below the exponential bound, so retries
of many failed calls spread out instead of arriving together), never sooner than the external
API asked for with `Retry-After`.
"""

from __future__ import annotations

import math
import random


def backoff_delay(
    attempts: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt number `attempts` (1-based): "full jitter", a uniform
    draw below min(cap, base * 2**(attempts - 1)), but never sooner than the API's `retry_after`."""
    exponent = min(max(attempts - 1, 0), 60)  # 2**60 * base is past any sane cap already
    delay = rng.uniform(0.0, max(0.0, min(cap, base * 2.0**exponent)))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, retry_after)
    return delay
