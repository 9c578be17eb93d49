"""Properties that hold for every input: nothing but our own errors escapes, errors are ERROR."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invariants import (
    CelCompileError,
    Outcome,
    PacketLimitError,
    Program,
    activation,
    compile_expression,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

KEYS = st.sampled_from(["amount", "status", "items", "a", "b", "reconciled", "x y", ""])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS | st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)

#: Conditions in the style of the shipped policies, plus a few that stress every type.
POLICY_SOURCES = [
    "params.amount > 50000",
    "params.amount <= 500.0 && evidence.b >= 0.15 && !(params.status in ['stripe.payout'])",
    "evidence.reconciled == true",
    "evidence.a.status == 'matched' && evidence.b < 0.3",
    "has(params.items) && size(params.items) > 100",
    "params.items.exists(i, i.amount > 10) || params.items.all(i, i == null)",
    "params.items.map(i, i.a, i.b).size() > 0",
    "params.status.startsWith('ref') || params.status.matches('^[a-z]+$')",
    "params.amount / params.b > 2 && params.amount % 7 == 1",
    "params.amount * 1000000 - params.b + 1 > 0",
    "double(params.amount) * 1.5 > 10.0 && int(params.b) != 0",
    "now - duration(params.status) < timestamp(evidence.status)",
    "agent.name in context.items && context.a[0] == params.a['b']",
    "string(params.amount) + params.status == 'x' ? params.a : params.b",
    "type(params.a) == map || type(params.a) == list ? size(params.a) > 0 : params.a",
    "params",
]
PROGRAMS = [compile_expression(s) for s in POLICY_SOURCES]


def check_outcome(outcome: Outcome) -> None:
    assert outcome.verdict in ("PASS", "FAIL", "ERROR")
    if outcome.error is not None:
        assert outcome.verdict == "ERROR" and outcome.holds is None
        assert isinstance(outcome.error, str) and outcome.error
    else:
        assert outcome.value in (True, False) and type(outcome.value) is bool
        assert outcome.holds is outcome.value
        assert outcome.verdict == ("PASS" if outcome.value else "FAIL")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(params=OBJECTS, evidence=OBJECTS, agent=OBJECTS, context=OBJECTS)
def test_evaluate_never_raises_for_json_like_data(
    params: dict[str, Any], evidence: dict[str, Any], agent: dict[str, Any], context: dict[str, Any]
) -> None:
    try:
        act = activation(params=params, evidence=evidence, agent=agent, context=context, now=NOW)
    except PacketLimitError:
        return  # over a limit: refused before evaluation, which is also fail-closed
    for program in PROGRAMS:
        check_outcome(program.evaluate(act))


NOT_JSON = st.recursive(
    SCALARS
    | st.integers()
    | st.floats()
    | st.binary(max_size=3)
    | st.sets(st.integers(), max_size=2)
    | st.just(NOW)
    | st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner)
    | st.dictionaries(st.text(max_size=3) | st.integers() | st.none(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(value=NOT_JSON)
def test_activation_refuses_only_with_packet_limit_error(value: Any) -> None:
    try:
        act = activation(params={"v": value}, now=NOW)
    except PacketLimitError as err:
        assert err.message and err.path.startswith("params")
        return
    assert _is_json_like(value)
    for program in PROGRAMS:
        check_outcome(program.evaluate(act))


def _is_json_like(value: Any) -> bool:
    if value is None or type(value) in (bool, str):
        return type(value) is not str or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if type(value) is int:
        return -(2**63) <= value < 2**63
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_is_json_like(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_json_like(v) for k, v in value.items())
    return False


CEL_ALPHABET = st.sampled_from(
    list("()[]{}.,:?!<>=&|+-*/%'\"\\ \n\tabcxyz019_u") + ["params", "evidence", ".all(", "has(", "in ", "r'", "b'", "'''", "//", "é"]
)


@settings(max_examples=500)
@given(parts=st.lists(CEL_ALPHABET, max_size=40))
def test_compile_raises_only_compile_errors_inside_the_source(parts: list[str]) -> None:
    source = "".join(parts)
    try:
        program = compile_expression(source)
    except CelCompileError as err:
        lines = source.split("\n")
        assert 1 <= err.line <= len(lines)
        assert 1 <= err.column <= len(lines[err.line - 1]) + 1
        assert err.message and "<input>" not in err.message
        return
    assert isinstance(program, Program)
    check_outcome(program.evaluate(activation(now=NOW)))
