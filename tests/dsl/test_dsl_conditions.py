"""Where a condition starts and ends: the scanner that cuts CEL out of a policy file."""

from __future__ import annotations

import pytest

from dsl import compile_sources
from dsl.cel_regions import CEL_MARK, scan


def _conditions(text: str) -> list[str]:
    return [r.text for r in scan(text).regions.values()]


def _deny_source(body: str) -> str:
    text = 'policy p {\n  applies to tool "a.b"\n' + body + "\n}\n"
    return compile_sources({"p.policy": text}).policies[0].denies[0].when.source


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # ends at the reserved word
        ('deny when params.x > 1 because "no"', "params.x > 1"),
        # a reserved word inside a CEL string literal does not end it, in either quote style
        ('deny when params.note == "because count expires" because "no"',
         'params.note == "because count expires"'),
        ("deny when params.note == 'because' because \"no\"", "params.note == 'because'"),
        ('deny when params.s == "a \\" because" because "no"', 'params.s == "a \\" because"'),
        ('deny when params.s == r"\\" because "no"', 'params.s == r"\\"'),
        ('deny when params.s == """x " because""" because "no"', 'params.s == """x " because"""'),
        # a word after `.` is a field name
        ('deny when params.count > 2 because "no"', "params.count > 2"),
        ('deny when params. because > 2 because "no"', "params. because > 2"),
        # continues while a bracket is open
        ('deny when size([\n    1,\n    2]) > 1 because "no"', "size([\n    1,\n    2]) > 1"),
        # continues after a trailing operator, and before a leading one
        ('deny when params.x > 1 &&\n    params.y > 2 because "no"',
         "params.x > 1 &&\n    params.y > 2"),
        ('deny when params.x > 1\n    || params.y > 2\n    because "no"',
         "params.x > 1\n    || params.y > 2"),
        ('deny when params.x in\n  [1, 2] because "no"', "params.x in\n  [1, 2]"),
        # the condition may start on the next line
        ('deny when\n    params.x > 1 because "no"', "params.x > 1"),
        # comments inside a multi-line condition are blanked, keeping columns
        ('deny when params.x > 1 && # first\n    params.y > 2 because "no"',
         "params.x > 1 &&        \n    params.y > 2"),
        # `#` inside a CEL string is not a comment
        ('deny when params.tag == "#1" because "no"', 'params.tag == "#1"'),
    ],
)
def test_condition_boundaries(body: str, expected: str) -> None:
    assert _deny_source(body) == expected


def test_condition_ends_at_end_of_line() -> None:
    text = 'invariant a : params.x > 1\n  invariant b : params.y > 2\n'
    assert _conditions(text) == ["params.x > 1", "params.y > 2"]


def test_condition_never_runs_into_a_statement_even_with_an_open_bracket() -> None:
    text = "deny when (params.x > 1\n  risk L1\n"
    scanned = scan(text)
    assert [r.text for r in scanned.regions.values()] == ["(params.x > 1"]
    assert [p.code for p in scanned.problems] == ["unclosed_bracket"]


def test_condition_stops_at_the_block_brace() -> None:
    assert _conditions("{ invariant a : params.x > 1 }") == ["params.x > 1"]
    assert _conditions('{ invariant a : params.m == {"k": 1} }') == ['params.m == {"k": 1}']


def test_masking_keeps_every_offset_and_line() -> None:
    text = 'policy p {\n  deny when params.x > 1 &&\n    params.y because "r"\n}\n'
    scanned = scan(text)
    assert len(scanned.masked) == len(text)
    assert scanned.masked.count("\n") == text.count("\n")
    (region,) = scanned.regions.values()
    assert set(scanned.masked[region.start:region.end]) == {CEL_MARK, "\n"}
    assert (region.line, region.column) == (2, 13)
    assert text[region.start:region.end] == region.text


def test_when_inside_a_policy_string_starts_nothing() -> None:
    assert _conditions('policy p "when it rains: pour" {\n}') == []


def test_a_backslash_at_the_end_of_a_line_does_not_swallow_the_next_line() -> None:
    text = 'deny x because "ab\\\ndeny when params.x > 1 because "y"'
    assert _conditions(text) == ["params.x > 1"]
    text = 'deny when params.s == "ab\\\n  deny when params.y > 1 because "y"'
    assert _conditions(text) == ['params.s == "ab\\', "params.y > 1"]
