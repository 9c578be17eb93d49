"""Pruned activations: what each program reads, and that pruning never changes an outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invariants import (
    CelCompileError,
    Limits,
    Needs,
    Outcome,
    PacketLimitError,
    Program,
    activation,
    compile_expression,
)
from invariants.lexer import Token, tokenize
from invariants.reads import covers, field_reads, union

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
WHOLE = None

READS: list[tuple[str, dict[str, frozenset[str] | None]]] = [
    ("params.amount > 50000", {"params": frozenset({"amount"})}),
    ("params . amount > 1 && has(params.meta.x)", {"params": frozenset({"amount", "meta"})}),
    ("evidence.reconciled == true || agent.name == 'x'",
     {"evidence": frozenset({"reconciled"}), "agent": frozenset({"name"})}),
    ("params.items.all(i, i.amount > 0)", {"params": frozenset({"items"})}),
    ("params.items.exists(i, i == params.amount)", {"params": frozenset({"items", "amount"})}),
    ("params.title.matches('x') && params.title.size() > 0", {"params": frozenset({"title"})}),
    ("context.agent == 'params.secret' + \"evidence.x\"", {"context": frozenset({"agent"})}),
    ("params.a // params.b\n > 0", {"params": frozenset({"a"})}),
    # the whole root: any use that is not `root.field`
    ("'x' in params", {"params": WHOLE}),
    ("size(params) > 0 && params.a", {"params": WHOLE}),
    ("params['amount'] > 0", {"params": WHOLE}),
    ("params.all(k, k == 'a')", {"params": WHOLE}),
    ("params == {}", {"params": WHOLE}),
    ("{params.a: 1}[evidence] == 1", {"params": frozenset({"a"}), "evidence": WHOLE}),
    ("[1].all(params, params > 0) && params.a", {"params": WHOLE}),
    ("now > timestamp('2024-01-01T00:00:00Z')", {"now": WHOLE}),
    ("true", {}),
]


@pytest.mark.parametrize(("source", "expected"), READS)
def test_reads_name_top_level_fields_or_the_whole_root(
    source: str, expected: dict[str, frozenset[str] | None]
) -> None:
    assert dict(compile_expression(source).reads) == expected


def test_a_string_literal_the_engine_reads_differently_makes_every_root_whole() -> None:
    source = '"a" + params.b + "c" == params.d'
    tokens = tokenize(source)
    assert field_reads(tokens, ["params"]) == {"params": frozenset({"b", "d"})}
    # a tokenizer that took the whole left side for one literal would hide `params.b`
    merged = [Token("string", '"a" + params.b + "c"', 0, 1, 1), *tokens[-4:]]
    assert field_reads(merged, ["params"]) == {"params": WHOLE}


def test_a_root_the_engine_reads_but_the_tokens_do_not_show_is_whole() -> None:
    assert field_reads(tokenize("params.a"), ["params", "evidence"]) == {
        "params": frozenset({"a"}), "evidence": WHOLE}


def test_union_and_covers() -> None:
    a = {"params": frozenset({"a"}), "evidence": WHOLE}
    b = {"params": frozenset({"b"}), "agent": frozenset({"name"})}
    both = union([a, b])
    assert both == {"params": frozenset({"a", "b"}), "evidence": WHOLE,
                    "agent": frozenset({"name"})}
    assert covers(both, a) and covers(both, b) and not covers(a, b)
    assert union([both, {"params": WHOLE}])["params"] is WHOLE
    assert not covers({"params": frozenset({"a"})}, {"params": WHOLE})
    with pytest.raises(ValueError, match="unknown roots"):
        Needs({"packet": WHOLE})


def test_a_pruned_activation_holds_only_what_its_programs_read() -> None:
    programs = [compile_expression("params.amount > 5"), compile_expression("has(evidence.ok)")]
    needs = Needs.of(programs)
    act = activation(params={"amount": 10, "note": "long text"}, evidence={"x": 1},
                     agent={"name": "bot"}, now=NOW, needs=needs)
    assert act.context.variables == {"params": {"amount": 10}, "evidence": {}}
    assert act.variables["params"] == {"amount": 10, "note": "long text"}  # the whole packet
    assert [p.evaluate(act) for p in programs] == [Outcome(True, None), Outcome(False, None)]
    missing = compile_expression("evidence.ok").evaluate(act)
    assert missing.verdict == "ERROR" and "ok" in (missing.error or "")


def test_a_program_the_needs_do_not_cover_reads_the_whole_packet() -> None:
    needs = Needs.of([compile_expression("params.amount > 5")])
    act = activation(params={"amount": 10, "note": "hi"}, agent={"name": "bot"}, now=NOW,
                     needs=needs)
    assert compile_expression("params.note == 'hi' && agent.name == 'bot'").evaluate(act).holds
    assert compile_expression("size(params) == 2").evaluate(act).holds


@pytest.mark.parametrize(
    ("evidence", "fragment"),
    [
        ({"unread": [[[["deep"]]]]}, "nested more than 4 levels deep"),
        ({"unread": list(range(9))}, "has 9 entries; the limit is 8"),
        ({"unread": "x" * 300}, "larger than 200 bytes"),
        ({"unread": float("nan")}, "not a JSON number"),
        ({"unread": b"raw"}, "bytes is not a JSON value"),
    ],
)
def test_limits_apply_to_the_whole_packet_not_only_what_is_read(
    evidence: dict[str, Any], fragment: str
) -> None:
    limits = Limits(max_data_depth=4, max_collection_items=8, max_data_bytes=200)
    needs = Needs.of([compile_expression("params.amount > 5")])
    with pytest.raises(PacketLimitError, match=fragment) as info:
        activation(params={"amount": 1}, evidence=evidence, now=NOW, limits=limits, needs=needs)
    assert info.value.path.startswith("evidence.unread")


# ---- equivalence: pruned and whole activations give the same outcome ---------------------------

FIELDS = ["amount", "status", "items", "a", "b", "reconciled", "name", "x y", ""]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-3, max_value=3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "a", "matched", "2024-01-01T00:00:00Z", "1h", "params.a", "ü"])
    | st.text(max_size=8)
)
#: Nested objects hold at most one key: the engine iterates maps in a random order, so which
#: error a comprehension over a bigger map meets first (and a `map()` result's order) varies
#: from one evaluation to the next, pruned or not.
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=3), inner, max_size=1),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6)

ROOTS = ["params", "evidence", "agent", "context"]
ROOT = st.sampled_from(ROOTS)
FIELD = st.sampled_from(["amount", "status", "items", "a", "b", "reconciled", "name"])
LITERAL = st.sampled_from(
    ["0", "1", "-1", "2.5", "true", "false", "null", "'a'", "'matched'", "[]", "[1, 'a']",
     "{'a': 1}", "'params.a'", '"evidence.b"', "r'\\d'"]
)


@st.composite
def selection(draw: st.DrawFn) -> str:
    root, field = draw(ROOT), draw(FIELD)
    tail = draw(st.sampled_from(["", ".a", ".status", "[0]", "['a']", ".size()"]))
    return f"{root}.{field}{tail}"


@st.composite
def atom(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return draw(selection())
    if kind == 4:
        return f"has({draw(ROOT)}.{draw(FIELD)})"
    if kind == 5:
        return draw(st.sampled_from([*ROOTS, "now"]))  # a bare root: reads the whole of it
    if kind == 6:
        key = draw(st.sampled_from(["'a'", "'amount'", "0"]))
        return f"{draw(ROOT)}[{key}]"
    if kind == 7:
        var = draw(st.sampled_from(["x", "params", "agent"]))  # may shadow a root
        op = draw(st.sampled_from(["all", "exists", "exists_one", "filter", "map"]))
        body = draw(st.sampled_from([f"{var} == 1", f"{var}.a > 0", f"has({var}.a)",
                                     f"{var} in params.items"]))
        return f"{draw(selection())}.{op}({var}, {body})"
    if kind == 8:
        return f"size({draw(selection())})"
    return draw(LITERAL)


@st.composite
def expression(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(atom())
    left, right = draw(expression(depth - 1)), draw(expression(depth - 1))
    form = draw(st.sampled_from(
        ["{} && {}", "{} || {}", "{} == {}", "{} < {}", "{} + {}", "!({})", "{} in {}",
         "{} ? {} : true", "[{}, {}]", "{{'k': {}}}"]))
    return form.format(left, right) if form.count("{}") == 2 else form.format(left)


def _outcomes(programs: list[Program], needs: Needs | None, packet: dict[str, Any]) -> Any:
    try:
        act = activation(**packet, now=NOW, needs=needs)
    except PacketLimitError as exc:
        return ("refused", exc.message, exc.path)
    return [(outcome.value, outcome.error) for outcome in (p.evaluate(act) for p in programs)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(sources=st.lists(expression(), min_size=1, max_size=3), params=OBJECTS,
       evidence=OBJECTS, agent=OBJECTS, context=OBJECTS)
def test_pruned_and_whole_activations_give_the_same_outcomes(
    sources: list[str], params: dict[str, Any], evidence: dict[str, Any],
    agent: dict[str, Any], context: dict[str, Any],
) -> None:
    programs = []
    for source in sources:
        try:
            programs.append(compile_expression(source))
        except CelCompileError:
            continue
    packet = {"params": params, "evidence": evidence, "agent": agent, "context": context}
    whole = _outcomes(programs, None, packet)
    assert _outcomes(programs, Needs.of(programs), packet) == whole
    # each program alone: the others are evaluated through the whole-packet fallback
    for program in programs:
        assert _outcomes(programs, Needs.of([program]), packet) == whole


#: Source fragments; comprehensions only over fields (see JSON about iterating bigger maps).
CEL_SOUP = st.sampled_from(
    [*ROOTS, "now", ".", ".a", ".amount", ".items", "has(", ".items.all(x, ", ".a.exists(x, ", "x",
     "(", ")", "[", "]", "{", "}", ",", ":", " ", "\n", "//", "==", "&&", "||", "+", "!",
     " in ", "'", '"', "\\", "r'", "1", "a", "size(", "params.a"]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(CEL_SOUP, min_size=1, max_size=24), params=OBJECTS, evidence=OBJECTS)
def test_pruning_holds_for_any_source_the_compiler_accepts(
    parts: list[str], params: dict[str, Any], evidence: dict[str, Any]
) -> None:
    try:
        program = compile_expression("".join(parts))
    except CelCompileError:
        return
    packet = {"params": params, "evidence": evidence, "agent": {"name": "bot"}, "context": {}}
    assert _outcomes([program], Needs.of([program]), packet) == _outcomes([program], None, packet)
