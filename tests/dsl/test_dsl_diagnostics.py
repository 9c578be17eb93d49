"""Errors are reported all at once (up to the cap), at the right place, CEL errors included."""

from __future__ import annotations

import pytest

from dsl import MAX_ERRORS, PolicyCompileError, compile_sources
from dsl.expressions import file_position
from dsl.model import Span

HEAD = 'policy p {\n  applies to tool "a.b"\n'


def _errors(sources: dict[str, str]) -> list[tuple[str, str, int, int]]:
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources(sources)
    return [(d.code, d.span.file, d.span.line, d.span.column) for d in caught.value.diagnostics]


# -- CEL errors, mapped from the expression to the file ---------------------------------------

def test_cel_error_on_the_first_line_of_a_condition() -> None:
    errors = _errors({"c.policy": HEAD + '  deny when params.x >= = 1 because "no"\n}\n'})
    assert errors == [("cel_syntax", "c.policy", 3, 25)]


def test_cel_error_in_an_invariant_on_its_own_line() -> None:
    errors = _errors({"c.policy": HEAD + '  invariant ok "fine"\n      : params.x ++ 1\n}\n'})
    assert errors == [("cel_syntax", "c.policy", 4, 19)]


def test_cel_error_on_a_later_line_of_a_multi_line_condition() -> None:
    text = HEAD + (
        "  escalate L2 when (\n"
        "      params.a > 1 ||\n"
        "      params.b >< 2\n"
        '    ) because "big"\n}\n'
    )
    assert _errors({"c.policy": text}) == [("cel_syntax", "c.policy", 5, 17)]


def test_cel_error_after_a_comment_line_inside_a_condition() -> None:
    text = HEAD + (
        "  deny when params.a > 1 &&\n"
        "    # the second half\n"
        '    nothing.b > 2 because "no"\n}\n'
    )
    assert _errors({"c.policy": text}) == [("cel_syntax", "c.policy", 5, 5)]


def test_cel_error_in_approval_and_min_autonomy_conditions() -> None:
    text = HEAD + (
        '  require approval from role "approver" when params.x > expires in 4h\n'
        "  min_autonomy A3 when size(params.x) >\n}\n"
    )
    assert _errors({"c.policy": text}) == [
        ("cel_syntax", "c.policy", 3, 56),
        ("cel_syntax", "c.policy", 4, 40),
    ]


def test_the_caret_sits_under_the_cel_error() -> None:
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"c.policy": HEAD + '  deny when params.x > because "no"\n}\n'})
    rendered = caught.value.diagnostics[0].render().splitlines()
    assert rendered[1] == '      deny when params.x > because "no"'
    # the expression ends too early: the caret is just after it
    assert rendered[2].index("^") == rendered[1].index("> because") + 1


@pytest.mark.parametrize(
    ("line", "column", "expected"),
    [(1, 1, Span("f", 10, 7)), (1, 5, Span("f", 10, 11)), (2, 1, Span("f", 11, 1)),
     (3, 9, Span("f", 12, 9))],
)
def test_file_position(line: int, column: int, expected: Span) -> None:
    assert file_position(Span("f", 10, 7), line, column) == expected


# -- all at once -------------------------------------------------------------------------------

def test_syntax_errors_of_every_statement_and_every_file_at_once() -> None:
    broken = HEAD + (
        "  deny when params.x > 1\n"
        '  escalate L2 params.x because "y"\n'
        '  require approval from role "approver" expires in 4 hours\n'
        "  risk L1\n}\n"
    )
    errors = _errors({"a.policy": broken, "b.policy": 'deny when true because "x"\n'})
    assert errors == [
        ("missing_because", "a.policy", 3, 25),
        ("escalate_missing_when", "a.policy", 4, 21),
        ("bad_duration", "a.policy", 5, 54),
        ("statement_outside_policy", "b.policy", 1, 1),
    ]


def test_name_errors_across_files_at_once() -> None:
    errors = _errors({
        "a.policy": HEAD + "  risk L7\n  min_autonomy A5\n}\n",
        "b.policy": 'policy p {\n  applies to tool "c.d"\n  require approval from role "x"\n}\n',
    })
    assert errors == [
        ("unknown_risk_tier", "a.policy", 3, 8),
        ("unknown_autonomy", "a.policy", 4, 16),
        ("duplicate_policy", "b.policy", 1, 8),
        ("unknown_role", "b.policy", 3, 30),
    ]


def test_stops_after_the_first_failing_stage() -> None:
    # a.policy has a syntax error; b.policy a name error that is not reported (later stage).
    errors = _errors({
        "a.policy": HEAD + "  deny when params.x > 1\n}\n",
        "b.policy": 'policy q {\n  applies to tool "c.d"\n  risk L9\n}\n',
    })
    assert [e[0] for e in errors] == ["missing_because"]


def test_errors_are_capped() -> None:
    body = "".join(f"  risk L{9 + i}\n" for i in range(MAX_ERRORS + 30))
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"many.policy": HEAD + body + "}\n"})
    diagnostics = caught.value.diagnostics
    assert len(diagnostics) == MAX_ERRORS + 1
    assert diagnostics[-1].code == "too_many_errors"
    assert f"stopped after {MAX_ERRORS}" in diagnostics[-1].message


def test_cel_errors_are_capped_too() -> None:
    body = "".join(f'  deny when params.x{i} > because "no"\n' for i in range(MAX_ERRORS + 5))
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"many.policy": HEAD + body + "}\n"})
    codes = [d.code for d in caught.value.diagnostics]
    assert codes.count("cel_syntax") == MAX_ERRORS and codes[-1] == "too_many_errors"


def test_exception_message_and_render() -> None:
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"a.policy": HEAD + "  risk L7\n  risk L8\n}\n"})
    err = caught.value
    assert str(err).startswith("a.policy:3:8: error: unknown risk tier `L7`")
    assert str(err).endswith("(and 1 more)")  # the second `risk` line is a duplicate
    assert [d.code for d in err.diagnostics] == ["unknown_risk_tier", "duplicate_statement"]
    assert err.render().count("^") == 2


def test_not_utf8_is_located() -> None:
    data = b'policy p {\n  applies to tool "a\xff"\n}\n'
    with pytest.raises(PolicyCompileError, match=r"bad.policy:2:21: error: the file is not UTF-8"):
        compile_sources({"bad.policy": data})


@pytest.mark.parametrize("path", ["/abs.policy", "../up.policy", "a\\b.policy", "./a.policy", ""])
def test_paths_must_be_plain_relative(path: str) -> None:
    with pytest.raises(PolicyCompileError, match="not a plain relative path"):
        compile_sources({path: HEAD + "}\n"})


def test_file_too_large() -> None:
    with pytest.raises(PolicyCompileError, match="the limit is"):
        compile_sources({"big.policy": "#" * (1024 * 1024 + 1)})
