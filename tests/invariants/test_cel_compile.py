"""compile_expression: every way a source is refused at load, with its message and position."""

from __future__ import annotations

import datetime as dt

import cel
import pytest

from invariants import DEFAULT_LIMITS, CelCompileError, Limits, compile_expression
from invariants.references import FUNCTIONS

# (source, line, column, message fragment)
SYNTAX_ERRORS = [
    ("params.amount >", 1, 16, "ends too early; expected a value"),
    ("params.amount > 50000 &&\n  params.currency ==\n  )", 3, 3, "unexpected ')'"),
    ("(params.amount > 1", 1, 19, "missing ')' at the end of the expression"),
    ("params.items[0", 1, 15, "missing ']'"),
    ('params.currency == "usd', 1, 20, "string literal is not closed"),
    ("params.currency == 'usd", 1, 20, "string literal is not closed"),
    ('params.memo == "a\\qb"', 1, 16, "invalid escape sequence"),
    ("params.amount @ 5", 1, 15, "unexpected character '@'"),
    ("params.amount 5", 1, 15, "unexpected '5'; expected the end of the expression"),
    ("params.", 1, 8, "unexpected '.'"),
    ("has(params)", 1, 5, "has() takes a field selection"),
    ("params.items.all(1, true)", 1, 18, "first argument must be a variable name"),
    ("99999999999999999999 > params.amount", 1, 1, "integer literal out of range"),
    ("18446744073709551616u > 1u", 1, 1, "unsigned integer literal out of range"),
    ("1e999 > params.ratio", 1, 1, "number literal out of range"),
    ("params.?amount", 1, 7, "'.?' is not supported"),
    ("   ", 1, 1, "empty expression"),
    ("", 1, 1, "empty expression"),
    ("// only a comment", 1, 18, "ends too early"),
]


@pytest.mark.parametrize(("source", "line", "column", "fragment"), SYNTAX_ERRORS)
def test_syntax_errors_are_located_and_worded(
    source: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(CelCompileError) as info:
        compile_expression(source)
    err = info.value
    assert fragment in err.message
    assert (err.line, err.column) == (line, column)
    assert "<input>" not in err.message and "NUM_FLOAT" not in err.message
    assert str(err) == f"{line}:{column}: {err.message}"


def test_columns_count_characters_not_bytes() -> None:
    with pytest.raises(CelCompileError) as info:
        compile_expression('params.note == "é" &&')
    assert (info.value.line, info.value.column) == (1, 22)


def test_error_is_a_value_error_with_its_fields_as_args() -> None:
    with pytest.raises(ValueError) as info:
        compile_expression("1 +")
    assert info.value.args[1:] == (1, 4)


# (source, line, column, message fragment)
NAME_ERRORS = [
    ("param.amount > 1", 1, 1, "unknown variable 'param' (did you mean 'params'?)"),
    ("params.amount > limit", 1, 17, "unknown variable 'limit'"),
    ("params.a > 1 &&\n  Evidence.b", 2, 3, "did you mean 'evidence'?"),
    ("params.items.all(x, x > 0) && x > 1", 1, 31, "unknown variable 'x'"),
    ("params.items.all(x, y > 0)", 1, 21, "unknown variable 'y'"),
    ("math.abs(params.delta) > 1", 1, 1, "unknown function 'math.abs' (extension libraries"),
    ("cel.bind(x, 1, x > 0)", 1, 1, "unknown function 'cel.bind'"),
    ("optional.none() == params.x", 1, 1, "unknown function 'optional.none'"),
    ("params.a > 1 && optional.x", 1, 17, "unknown variable 'optional'"),
    ("params.x.startswith('a')", 1, 10, "unknown function 'startswith' (did you mean 'startsWith'?)"),
    ("lowerAscii(params.x) == 'a'", 1, 1, "unknown function 'lowerAscii'"),
    ("params.items.all(x)", 1, 14, "all() takes a variable name and an expression"),
    ("params.m.all(k, v, v > 0)", 1, 10, "all() takes a variable name and an expression"),
    ("exists(params.items, x, x)", 1, 1, "exists() takes a variable name"),
    ("x.all(y)", 1, 3, "all() takes a variable name"),
    (".params.amount > 1", 1, 1, "unknown variable '.params'"),  # found by the engine's list
]


@pytest.mark.parametrize(("source", "line", "column", "fragment"), NAME_ERRORS)
def test_unknown_names_are_refused_at_their_position(
    source: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(CelCompileError) as info:
        compile_expression(source)
    assert fragment in info.value.message
    assert (info.value.line, info.value.column) == (line, column)


@pytest.mark.parametrize(
    ("source", "roots"),
    [
        ("params.amount > 50000", {"params"}),
        ("evidence.reconciliation.status == 'matched' && agent.name != ''", {"evidence", "agent"}),
        ("params.items.all(item, item.amount > 0)", {"params"}),
        ("params.items.exists(params, params > 1)", {"params"}),  # a binder may shadow a root
        ("params.m.map(k, k != 'x', k).size() > 0", {"params"}),
        ("type(params.amount) == int && now > timestamp('2024-01-01T00:00:00Z')", {"params", "now"}),
        ("// a comment\ncontext.goal_id.startsWith('g-') // trailing", {"context"}),
        ("params.x == r'\\d' || params.x == '''a \"quoted\" x'''", {"params"}),
        ("[1, 2].all(x, [3].exists(y, x < y))", set()),
        ("{'a': 1}.a == 1", set()),
    ],
)
def test_valid_sources_compile_and_report_their_roots(source: str, roots: set[str]) -> None:
    program = compile_expression(source)
    assert program.source == source
    assert program.roots == roots


def test_length_limit_is_checked_first_and_located_at_the_first_extra_character() -> None:
    limits = Limits(max_expression_length=20)
    compile_expression("params.amount > 5000", limits)  # exactly 20
    with pytest.raises(CelCompileError, match="21 characters long; the limit is 20") as info:
        compile_expression("params.amount > 50000", limits)
    assert (info.value.line, info.value.column) == (1, 21)
    with pytest.raises(CelCompileError) as info:
        compile_expression("params.a > 1 &&\nparams.b > 22", limits)
    assert (info.value.line, info.value.column) == (2, 5)


def test_default_length_limit() -> None:
    source = " || ".join(["params.a == 1"] * 400)
    assert len(source) > DEFAULT_LIMITS.max_expression_length
    with pytest.raises(CelCompileError, match="the limit is 4096"):
        compile_expression(source)


def test_bracket_nesting_is_refused_at_the_offending_bracket_before_parsing() -> None:
    limits = Limits(max_nesting_depth=3)
    compile_expression("((params.a[0]))", limits)
    with pytest.raises(CelCompileError, match="nested more than 3 deep") as info:
        compile_expression("(params.a[({'k': 1}).k])", limits)
    assert (info.value.line, info.value.column) == (1, 12)
    # far past what the engine's recursive parser could take, and still a clean error
    with pytest.raises(CelCompileError, match="nested more than 24 deep"):
        compile_expression("(" * 2000 + "1" + ")" * 2000)


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    limits = Limits(max_nesting_depth=1)
    compile_expression("params.a == '(((([[[' // ((((\n", limits)


def test_comprehension_nesting_is_refused_at_the_macro_name() -> None:
    two = "params.a.all(x, params.b.exists(y, x == y))"
    compile_expression(two)
    three = "params.a.all(x, params.b.exists(y,\n  params.c.filter(z, z == x + y).size() > 0))"
    with pytest.raises(CelCompileError, match="nested more than 2 deep") as info:
        compile_expression(three)
    assert (info.value.line, info.value.column) == (2, 12)
    with pytest.raises(CelCompileError, match="nested more than 0 deep"):
        compile_expression("params.a.map(x, x).size() > 0", Limits(max_comprehension_nesting=0))
    # siblings are not nesting
    compile_expression("params.a.all(x, x > 0) && params.b.all(y, y > 0)", Limits(max_comprehension_nesting=1))


@pytest.mark.parametrize(
    "field", ["max_expression_length", "max_nesting_depth", "max_data_depth", "max_data_bytes"]
)
@pytest.mark.parametrize("bad", [0, -1, 10**10, 1.5, "10", True])
def test_limits_refuse_values_outside_their_range(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"Limits.{field} must be an integer"):
        Limits(**{field: bad})  # type: ignore[arg-type]


def test_source_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        compile_expression(b"true")  # type: ignore[arg-type]


# One call per function the allowlist admits: each must really exist in the engine.
FUNCTION_SAMPLES = {
    "size": "size('ab') == 2",
    "contains": "'abc'.contains('b')",
    "startsWith": "'abc'.startsWith('a')",
    "endsWith": "'abc'.endsWith('c')",
    "matches": "'abc'.matches('^a.c$')",
    "int": "int('7') == 7",
    "uint": "uint(7) == 7u",
    "double": "double(7) == 7.0",
    "string": "string(7) == '7'",
    "bytes": "bytes('a') == b'a'",
    "dyn": "dyn(1) == 1",
    "type": "type(1) == int",
    "timestamp": "timestamp('2024-01-01T00:00:00Z') < now",
    "duration": "duration('1h') > duration('1m')",
    "getFullYear": "now.getFullYear() == 2024",
    "getMonth": "now.getMonth() == 1",
    "getDayOfYear": "now.getDayOfYear() == 59",
    "getDayOfMonth": "now.getDayOfMonth() == 28",
    "getDate": "now.getDate() == 29",
    "getDayOfWeek": "now.getDayOfWeek() == 4",
    "getHours": "now.getHours() == 13",
    "getMinutes": "now.getMinutes() == 14",
    "getSeconds": "now.getSeconds() == 15",
    "getMilliseconds": "now.getMilliseconds() == 16",
}


def test_every_allowed_function_exists_in_the_engine() -> None:
    assert set(FUNCTION_SAMPLES) == set(FUNCTIONS)
    now = dt.datetime(2024, 2, 29, 13, 14, 15, 16000, tzinfo=dt.timezone.utc)
    for name, source in FUNCTION_SAMPLES.items():
        program = compile_expression(source)
        assert cel.compile(source).execute({"now": now}) is True, name
        assert name in cel.compile(source).functions()
        del program
