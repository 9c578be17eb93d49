"""Program.evaluate: the semantics policies rely on, and every way an evaluation becomes ERROR."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from invariants import FAIL, PASS, Activation, Outcome, PacketLimitError, activation, compile_expression

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def act() -> Activation:
    return activation(
        params={
            "amount": 60000,
            "amount_f": 60000.0,
            "currency": "usd",
            "tool": "stripe.refund",
            "contact_ids": ["c1", "c2", "c3"],
            "numbers": [1, 2, 3],
            "reason": None,
            "note": "é",
        },
        evidence={
            "reconciled": True,
            "reconciliation": {"status": "matched"},
            "risk_score": 0.12,
            "cash_runway_days": 45,
            "issued_at": "2024-04-30T12:00:00Z",
        },
        agent={"name": "refund-bot", "autonomy": "A2", "owner": "ops@example.com"},
        context={"goal_id": "g-42"},
        now=NOW,
    )


def run(source: str, act: Activation) -> Outcome:
    return compile_expression(source).evaluate(act)


HOLDS = [
    # int vs double: compared by value, in both directions
    "params.amount > 50000",
    "params.amount_f > 50000",
    "params.amount > 50000.0",
    "params.amount == 60000.0",
    "params.amount_f == 60000",
    "evidence.risk_score < 0.3",
    "evidence.cash_runway_days >= 30.0",
    "1 in [1.0, 2.0]",
    "[1, 2] == [1.0, 2.0]",
    # lists, maps, has()
    "'c2' in params.contact_ids",
    "!('c9' in params.contact_ids)",
    "'status' in evidence.reconciliation",
    "size(params.contact_ids) == 3 && params.contact_ids.size() == 3",
    "has(params.amount) && !has(params.missing)",
    "has(params.reason) && params.reason == null",
    "has(evidence.reconciliation.status)",
    "evidence.reconciliation.status == 'matched'",
    "evidence['reconciliation']['status'] == 'matched'",
    "params.numbers.all(n, n > 0) && params.numbers.exists(n, n == 2)",
    "params.numbers.exists_one(n, n > 2)",
    "params.numbers.filter(n, n > 1) == [2, 3]",
    "params.numbers.map(n, n * 2) == [2, 4, 6]",
    "params.numbers.map(n, n > 1, n * 10) == [20, 30]",
    # strings
    "params.tool.startsWith('stripe.') && params.tool.endsWith('refund')",
    "params.tool.contains('.ref')",
    "params.tool.matches('^stripe\\\\.[a-z]+$')",
    "params.currency + '!' == 'usd!'",
    "size(params.note) == 2",  # UTF-8 bytes, not code points
    # time
    "now == timestamp('2024-05-01T12:00:00Z')",
    "now - timestamp(evidence.issued_at) == duration('24h')",
    "now - timestamp(evidence.issued_at) < duration('7d') == false || true",
    "timestamp(evidence.issued_at) + duration('1h') < now",
    "now.getDayOfWeek() == 3 && now.getHours() == 12",
    # agent and context
    "agent.autonomy in ['A2', 'A3', 'A4'] && context.goal_id.startsWith('g-')",
    # cross-type equality is false, not an error
    "!(params.amount == '60000') && params.reason != 0",
    # errors absorbed by short-circuit, either operand order
    "true || params.missing",
    "params.missing || true",
    "!(false && params.missing) && !(params.missing && false)",
    # int/double overflow behaviour
    "1.0 / 0.0 > 1e308",
    "-(-9223372036854775807 - 1) == -9223372036854775807 - 1",  # unary minus wraps
    "type(params.amount) == int && type(params.amount_f) == double",
]


@pytest.mark.parametrize("source", HOLDS)
def test_holds(source: str, act: Activation) -> None:
    outcome = run(source, act)
    assert (outcome.verdict, outcome.holds, outcome.error) == ("PASS", True, None), outcome


def test_a_false_condition_fails(act: Activation) -> None:
    outcome = run("params.amount > 500000", act)
    assert outcome is FAIL
    assert (outcome.verdict, outcome.holds, outcome.value, outcome.error) == ("FAIL", False, False, None)
    assert run("params.amount > 1", act) is PASS


# (source, the exact error message)
ERRORS = [
    ("params.missing > 1", "no such field 'missing'"),
    ("evidence.reconciliation.state == 'matched'", "no such field 'state'"),
    ("params.contact_ids[7] == 'c'", "index out of bounds: 7"),
    ("params.contact_ids[-1] == 'c'", "index out of bounds: -1"),
    ("params.contact_ids[1.0] == 'c'", "wrong type: got double, want int or uint"),
    ("params.amount / 0 > 1", "division by zero"),
    ("params.amount % 0 > 1", "modulo by zero"),
    ("9223372036854775807 + params.amount > 0", "overflow in addition"),
    ("-9223372036854775807 - params.amount < 0", "overflow in subtraction"),
    ("9223372036854775807 * params.amount > 0", "overflow in multiplication"),
    ("(-9223372036854775807 - 1) / -1 > 0", "overflow in division"),
    ("(-9223372036854775807 - 1) % -1 == 0", "overflow in remainder"),
    ("int(1e300) > 0", "value out of range in int()"),
    ("uint(-1) > 0u", "value out of range in uint()"),
    ("1u - 2u > 0u", "overflow in subtraction"),
    ("timestamp('0001-01-01T00:00:00Z') - duration('1s') < now", "overflow in subtraction"),
    ("params.amount + 0.5 > 1.0", "no such overload: the operand types do not fit"),
    ("params.currency + 1 == 'x'", "no such overload: string + int"),
    ("params.currency > 1", "no such overload: the operand types do not fit (CEL does not convert types)"),
    ("params.reason < 1", "no such overload: the operand types do not fit (CEL does not convert types)"),
    ("'a' in params.currency", "no such overload: the operand types do not fit (CEL does not convert types)"),
    ("params.amount.currency == 'usd'", "no such overload: the operand types do not fit (CEL does not convert types)"),
    ("params.numbers.all(n, n)", "no such overload: the operand types do not fit (CEL does not convert types)"),
    ("size(params.amount) > 0", "no such overload: size() does not accept these argument types"),
    ("params.amount.startsWith('6')", "no such overload: startsWith() does not accept these argument types"),
    ("timestamp(params.amount) < now", "no such overload: timestamp() does not accept these argument types"),
    ("int('12x') > 0", "int(): string parse error: invalid digit found in string"),
    ("params.tool.matches('(')", "matches(): '(' not a valid regex: regex parse error: ( ^ error: unclosed group"),
    ("'a'.matches('((a{1000}){1000}){1000}')", "matches(): '((a{1000}){1000}){1000}' not a valid regex: Compiled regex exceeds size limit of 10485760 bytes."),
    ("duration('1 hour') > duration('1h')", "duration(): "),
    ("timestamp('yesterday') < now", "timestamp(): "),
]


@pytest.mark.parametrize(("source", "message"), ERRORS)
def test_data_problems_give_error_not_exceptions(source: str, message: str, act: Activation) -> None:
    outcome = run(source, act)
    assert outcome.verdict == "ERROR"
    assert outcome.holds is None and outcome.value is None
    assert outcome.error is not None and outcome.error.startswith(message), outcome.error
    assert "Traceback" not in outcome.error and "\n" not in outcome.error


# (source, expected value in the outcome, message)
NON_BOOLEAN = [
    ("params.amount", 60000, "expected true or false, got int 60000"),
    ("evidence.risk_score", 0.12, "expected true or false, got double 0.12"),
    ("params.currency", "usd", "expected true or false, got string 'usd'"),
    ("params.reason", None, "expected true or false, got null None"),
    ("params.numbers", [1, 2, 3], "expected true or false, got list [1, 2, 3]"),
    ("evidence.reconciliation", {"status": "matched"}, "expected true or false, got map"),
    ("now", "2024-05-01T12:00:00+00:00", "expected true or false, got timestamp"),
    ("duration('90s')", "90s", "expected true or false, got duration '90s'"),
    ("b'ab'", "b64:YWI=", "expected true or false, got bytes"),
    ("1.0 / 0.0", "inf", "expected true or false, got double 'inf'"),
    ("params.numbers.map(n, n * 1000000000000)", [10**12, 2 * 10**12, 3 * 10**12], "got list"),
    ("params.contact_ids.map(c, c + c + c + c + c + c + c + c + c + c + c + c + c + c + c)", None, "..."),
]


@pytest.mark.parametrize(("source", "value", "message"), NON_BOOLEAN)
def test_non_boolean_results_are_errors_with_a_json_safe_value(
    source: str, value: object, message: str, act: Activation
) -> None:
    outcome = run(source, act)
    assert outcome.verdict == "ERROR" and outcome.holds is None
    assert outcome.error is not None and message in outcome.error
    if value is not None:
        assert outcome.value == value
    json.dumps(outcome.value)  # reports can always serialise it
    assert len(outcome.error) < 120


def test_regex_is_linear_time_so_a_classic_redos_pattern_just_answers() -> None:
    act = activation(params={"s": "a" * 30_000 + "!"}, now=NOW)
    assert run("params.s.matches('^(a+)+$')", act) is FAIL
    assert run("params.s.matches('(a|aa)+!')", act) is PASS


def test_outcomes_are_immutable_and_compare_by_value(act: Activation) -> None:
    outcome = run("params.missing", act)
    with pytest.raises(AttributeError):
        outcome.error = None  # type: ignore[misc]
    assert outcome == run("params.missing == 1", act)
    assert outcome != PASS and PASS != FAIL
    assert repr(outcome) == "Outcome(ERROR, \"no such field 'missing'\")"
    assert repr(PASS) == "Outcome(PASS)"


def test_one_program_serves_many_activations() -> None:
    program = compile_expression("params.amount > 50000")
    verdicts = [program.evaluate(activation(params={"amount": a}, now=NOW)).verdict for a in (1, 60000, "x")]
    assert verdicts == ["FAIL", "PASS", "ERROR"]


def test_evaluate_wants_an_activation() -> None:
    with pytest.raises(AttributeError):
        compile_expression("true").evaluate({"params": {}})  # type: ignore[arg-type]


def test_the_worst_case_the_default_limits_allow_still_answers() -> None:
    """Two nested comprehensions over the largest list a packet may hold: a million steps."""
    ids = list(range(1000))
    act = activation(params={"ids": ids}, now=NOW)
    pairs = compile_expression("params.ids.all(a, params.ids.exists(b, b == a))")
    assert pairs.evaluate(act) is PASS
    with pytest.raises(PacketLimitError, match="has 1001 entries"):
        activation(params={"ids": ids + [1000]}, now=NOW)
