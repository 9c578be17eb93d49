"""`canonical_bytes` (msgspec fast path, rfc8785 fallback) is byte-identical to `rfc8785.dumps`."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_bytes

SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=1500, deadline=None)
@given(VALUES)
def test_canonical_bytes_equal_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_values_rfc8785_refuses_are_refused() -> None:
    for value in ({"amount": float("nan")}, [float("inf")], {"n": 2**60}):
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_bytes(value)


def test_deep_astral_and_float_values_take_the_exact_path() -> None:
    deep: object = 1
    for _ in range(14):
        deep = [deep]
    for value in (deep, {"k": "\U0001F600"}, {"b": 1.5, "a": 1e21}, {"é": "\u2028", "\u00e9": 1}):
        assert canonical_bytes(value) == rfc8785.dumps(value)
