"""The retry delay: full jitter under an exponential cap, never before the API's Retry-After."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from gateway.execution.backoff import backoff_delay

seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
retry_afters = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@given(
    attempts=st.integers(min_value=1, max_value=10_000),
    base=seconds,
    cap=seconds,
    retry_after=retry_afters,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_bounded(attempts: int, base: float, cap: float, retry_after: float | None, seed: int) -> None:
    delay = backoff_delay(attempts, base=base, cap=cap, retry_after=retry_after, rng=random.Random(seed))
    honoured = retry_after if retry_after is not None and math.isfinite(retry_after) and retry_after > 0 else 0.0
    assert math.isfinite(delay)
    assert 0.0 <= delay <= max(cap, honoured)
    assert delay >= honoured
    assert delay <= max(min(cap, base * 2.0 ** min(attempts - 1, 60)), honoured)


def test_the_cap_grows_exponentially_then_stops() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    delays = [backoff_delay(n, base=0.5, cap=60.0, retry_after=None, rng=Top()) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
