"""Differential test: the Rust engine (through our wrapper) against cel-python as an oracle.

Generated, well-typed boolean expressions over generated packet data; the two must agree on
the value, or both fail. The generator covers arithmetic comparisons, boolean logic with
errors inside (short-circuit absorption), `in` on lists, field access (present, missing and
nested), `has()`, and string operations, and it deliberately reaches error paths: missing
fields, division/modulo by zero, int overflow, list index out of range, ordering across types.

Known divergences are excluded by construction, and each is pinned by
`test_known_divergences_are_still_what_we_documented` so a change in either engine shows:

- mixed int/double comparison and cross-type equality (`1 == 1.0`, `1 == "a"`, `1 in ["a"]`):
  the Rust engine follows the current CEL spec (compare by value / false); cel-python 0.5
  raises "no matching overload". Generated comparisons are homogeneous.
- `true == 1`: cel-python says true (a Python bool is an int); CEL and the Rust engine say false.
- `size()` of a non-ASCII string: the Rust engine counts UTF-8 bytes, cel-python code points.
  The generator applies size() to ASCII strings only.
- unary minus of -2**63: the Rust engine wraps, cel-python reports overflow. Negation is only
  generated on literals.
- `has(params.nope.x)`, the parent itself missing: the Rust engine gives an error (the CEL
  spec evaluates the operand before testing the field), cel-python says false. Generated
  data always holds `params.m`, the parent of the generated nested `has()` tests.
- `("a" + "b").contains("a")`: cel-python's `+` on strings returns a plain Python str, which
  has no CEL methods, so it reports "no such overload". Method receivers are generated as
  single literals or fields; arguments may still be concatenations.
- cel-python sometimes crashes outright (an IndexError in its evaluator); such examples are
  counted as a hypothesis event and skipped, and the known one is pinned.
- `-2**63 % -1`: the Rust engine reports overflow (as cel-go does), cel-python answers 0. The
  generator reaches it through data (params.i0 may be -2**63); it is recognised by the Rust
  error "overflow in remainder", which nothing else produces, and skipped as an event.
- NaN: cel-python says NaN == NaN. Doubles are generated small and without division, so no
  infinity or NaN arises.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import celpy
import pytest
from celpy import celtypes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from invariants import activation, compile_expression

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
INT_EDGES = [0, 1, -1, 7, 2**31, 2**62, 2**63 - 1, -(2**63)]


@dataclass(frozen=True)
class Case:
    source: str


def _int_literal(value: int) -> str:
    return f"({value})" if value >= 0 else f"({value + 1} - 1)" if value == -(2**63) else f"({value})"


def _str_literal(value: str) -> str:
    return json.dumps(value)  # \uXXXX escapes for everything outside ASCII (BMP only here)


ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
ANY_TEXT = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=6
)

INT_LEAF = st.one_of(
    st.sampled_from(INT_EDGES).map(_int_literal),
    st.integers(-1000, 1000).map(_int_literal),
    st.sampled_from(["params.i0", "params.i1", "params.m.i", "params.absent_i"]),
    st.sampled_from(["params.li[0]", "params.li[2]", "size(params.li)", "size(params.a0)"]),
)
DOUBLE_LEAF = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: repr(float(f))),
    st.sampled_from(["params.d0", "params.d1", "params.m.d", "params.absent_d"]),
)
STR_LEAF = st.one_of(
    ANY_TEXT.map(_str_literal),
    st.sampled_from(["params.s0", "params.s1", "params.m.s", "params.absent_s", "params.ls[0]"]),
)
ASCII_STR = st.one_of(ASCII.map(_str_literal), st.just("params.a0"))


def _binary(ops: list[str]) -> Any:
    return lambda inner: st.tuples(inner, st.sampled_from(ops), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")


INT_EXPR = st.recursive(INT_LEAF, _binary(["+", "-", "*", "/", "%"]), max_leaves=4)
DOUBLE_EXPR = st.recursive(DOUBLE_LEAF, _binary(["+", "-", "*"]), max_leaves=3)
STR_EXPR = st.recursive(STR_LEAF, _binary(["+"]), max_leaves=3)
CMP = ["==", "!=", "<", "<=", ">", ">="]


def _compare(operand: Any) -> Any:
    return st.tuples(operand, st.sampled_from(CMP), operand).map(lambda t: f"({t[0]} {t[1]} {t[2]})")


BOOL_LEAF = st.one_of(
    st.sampled_from(["true", "false", "params.b0", "params.absent_b", "params.m.b"]),
    _compare(INT_EXPR),
    _compare(DOUBLE_EXPR),
    _compare(STR_EXPR),
    st.tuples(INT_EXPR, st.sampled_from(["params.li", "[1, 2, 3]", "[]"])).map(lambda t: f"({t[0]} in {t[1]})"),
    st.tuples(STR_EXPR, st.sampled_from(["params.ls", "['a', 'b']"])).map(lambda t: f"({t[0]} in {t[1]})"),
    st.sampled_from(["i0", "s0", "absent_i", "m", "li"]).map(lambda f: f"has(params.{f})"),
    st.sampled_from(["i", "s", "zz"]).map(lambda f: f"has(params.m.{f})"),
    st.tuples(STR_LEAF, st.sampled_from(["contains", "startsWith", "endsWith"]), STR_EXPR).map(
        lambda t: f"{t[0]}.{t[1]}({t[2]})"
    ),
    st.tuples(ASCII_STR, st.sampled_from(CMP), INT_EXPR).map(lambda t: f"(size({t[0]}) {t[1]} {t[2]})"),
    st.tuples(STR_EXPR, st.sampled_from(["<", ">="]), INT_EXPR).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
)
BOOL_EXPR = st.recursive(
    BOOL_LEAF,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"!{e}"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
    ),
    max_leaves=5,
)

PARAMS = st.fixed_dictionaries(
    {
        "i0": st.sampled_from(INT_EDGES) | st.integers(-1000, 1000),
        "d0": st.floats(-1e6, 1e6, allow_nan=False),
        "s0": ANY_TEXT,
        "b0": st.booleans(),
    },
    optional={
        "i1": st.integers(-(2**63), 2**63 - 1),
        "d1": st.floats(-1e6, 1e6, allow_nan=False),
        "s1": ANY_TEXT,
        "a0": ASCII,
        "li": st.lists(st.integers(-5, 5), max_size=4),
        "ls": st.lists(ANY_TEXT, max_size=3),
    },
).flatmap(
    lambda p: st.fixed_dictionaries(
        {},
        optional={
            "i": st.integers(-5, 5),
            "d": st.floats(-10, 10, allow_nan=False),
            "s": ANY_TEXT,
            "b": st.booleans(),
        },
    ).map(lambda m: {**p, "m": m})  # always present: see has() in the module docstring
)

_ENV = celpy.Environment()
logging.getLogger("celpy").setLevel(logging.CRITICAL)


class OracleCrash(Exception):
    """cel-python itself failed (a Python exception that is not a CEL evaluation error)."""


def oracle(source: str, params: dict[str, Any]) -> bool | None:
    """cel-python's answer: the boolean, or None for any evaluation error."""
    program = _ENV.program(_ENV.compile(source))
    try:
        result = program.evaluate({"params": celpy.json_to_cel(params), "now": celtypes.TimestampType(NOW)})
    except celpy.CELEvalError:
        return None
    except Exception as exc:
        raise OracleCrash(f"{type(exc).__name__}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        return None
    assert isinstance(result, celtypes.BoolType), (source, result)
    return bool(result)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=BOOL_EXPR, params=PARAMS)
def test_rust_engine_agrees_with_cel_python(source: str, params: dict[str, Any]) -> None:
    outcome = compile_expression(source).evaluate(activation(params=params, now=NOW))
    try:
        expected = oracle(source, params)
    except OracleCrash:
        event("excluded: cel-python crashed")  # see test_cel_python_crashes_are_its_own
        return
    if outcome.error == "overflow in remainder" and expected is not None:
        event("excluded: -2**63 % -1")  # the only int remainder that overflows; see docstring
        return
    event(f"verdict {outcome.verdict}")
    assert outcome.holds == expected, (source, params, outcome, expected)


def test_cel_python_crashes_are_its_own() -> None:
    """The one oracle crash the generator reaches: an erroring condition in a ternary that
    holds an `in` on a list literal, under `&&` (its evaluator pops an empty stack). The Rust
    engine answers ERROR, as CEL says for an erroring condition."""
    source = "(params.absent_b && (params.absent_b ? true : (0 in [])))"
    with pytest.raises(OracleCrash, match="IndexError"):
        oracle(source, {})
    outcome = compile_expression(source).evaluate(activation(now=NOW))
    assert outcome.error == "no such field 'absent_b'"


# (source, the Rust engine's answer through our wrapper, cel-python's answer; None = error)
DIVERGENCES = [
    ("1 == 1.0", True, None),
    ("2 > 1.5", True, None),
    ("1 == 'a'", False, None),
    ("1 in ['a']", False, None),
    ("true == 1", False, True),
    ("size('\\u00e9') == 2", True, False),
    ("-(-9223372036854775807 - 1) < 0", True, None),
    ("0.0 / 0.0 == 0.0 / 0.0", False, True),
    ("has(params.nope.x)", None, False),
    ("('a' + 'b').contains('a')", True, None),
    ("(-9223372036854775807 - 1) % -1 == 0", None, True),
]


@pytest.mark.parametrize(("source", "rust", "python"), DIVERGENCES)
def test_known_divergences_are_still_what_we_documented(
    source: str, rust: bool | None, python: bool | None
) -> None:
    assert compile_expression(source).evaluate(activation(now=NOW)).holds is rust
    assert oracle(source, {}) is python
