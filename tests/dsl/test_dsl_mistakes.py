"""The table of known mistakes: every entry, every example, gives its own message."""

from __future__ import annotations

import re

import pytest

from dsl import PolicyCompileError, compile_sources
from dsl.mistakes import (
    BAD_NAME_CHARACTER, MISSING_CLOSING_BRACE, OUTSIDE_POLICY, RESERVED_WORD, SYNTAX_MISTAKES,
    UNMATCHED_CLOSING_BRACE, UNTERMINATED_STRING, VALUE_MESSAGES, Mistake,
)

ALL = (UNTERMINATED_STRING, MISSING_CLOSING_BRACE, OUTSIDE_POLICY, UNMATCHED_CLOSING_BRACE,
       RESERVED_WORD, BAD_NAME_CHARACTER, *SYNTAX_MISTAKES)
CASES = [(m, i, ex) for m in ALL for i, ex in enumerate(m.examples)]


def _pattern(mistake: Mistake) -> str:
    """The message with `{token}` standing for any text."""
    return ".+".join(re.escape(part) for part in mistake.message.split("{token}"))


@pytest.mark.parametrize(("mistake", "index", "example"), CASES,
                         ids=[f"{m.code}-{i}" for m, i, _ in CASES])
def test_each_example_gives_its_message(mistake: Mistake, index: int, example: str) -> None:
    with pytest.raises(PolicyCompileError, match=_pattern(mistake)) as caught:
        compile_sources({"m.policy": example})
    assert caught.value.diagnostics[0].code == mistake.code


def test_codes_are_unique() -> None:
    codes = [m.code for m in ALL]
    assert len(codes) == len(set(codes))


def _compile(body: str) -> None:
    compile_sources({"v.policy": 'policy p {\n  applies to tool "a.b"\n' + body + "\n}\n"})


# -- the mistakes the task names, one by one, with their exact wording ------------------------

def test_missing_because() -> None:
    with pytest.raises(PolicyCompileError,
                       match=r'v.policy:3:25: error: expected `because "reason"` after the '
                       r"condition"):
        _compile("  deny when params.x > 1")


def test_missing_when() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:14: error: expected `when`: a deny rule is "
                       r"written deny \[NAME\] when CONDITION"):
        _compile('  deny params.x > 1 because "no"')


def test_unknown_risk_tier() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:8: error: unknown risk tier `L5`: the tiers "
                       r"are L0, L1, L2 and L3 \[unknown_risk_tier\]"):
        _compile("  risk L5")


def test_unknown_escalation_tier() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:12: error: unknown risk tier `L4`"):
        _compile('  escalate L4 when params.x > 1 because "big"')


def test_unknown_autonomy_level() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:16: error: unknown autonomy level `A9`: the "
                       r"levels are A0, A1, A2, A3 and A4"):
        _compile("  min_autonomy A9")


def test_unterminated_string() -> None:
    with pytest.raises(PolicyCompileError, match=r'3:34: error: this string is never closed: add '
                       r'the closing " on the same line'):
        _compile('  deny when params.x > 1 because "never closed')


def test_missing_closing_brace() -> None:
    with pytest.raises(PolicyCompileError, match=r"2:24: error: missing `}`"):
        compile_sources({"v.policy": 'policy p {\n  applies to tool "a.b"\n\n# end\n'})


def test_applies_without_tool() -> None:
    with pytest.raises(PolicyCompileError, match=r"2:14: error: expected `tool`: write applies to "
                       r'tool "name"'):
        compile_sources({"v.policy": 'policy p {\n  applies to "stripe.refund"\n}\n'})


def test_expires_in_hours_spelled_out() -> None:
    with pytest.raises(PolicyCompileError, match=r"a duration is a whole number and a unit with "
                       r"no space: 30s, 15m, 4h or 7d"):
        _compile('  require approval from role "approver" expires in 4 hours')


def test_bad_duration_unit() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:52: error: bad duration `4hours`: write a "
                       r"whole number and a unit"):
        _compile('  require approval from role "approver" expires in 4hours')


def test_zero_duration() -> None:
    with pytest.raises(PolicyCompileError, match=r"bad duration `0h`"):
        _compile('  require approval from role "approver" expires in 0h')


@pytest.mark.parametrize("count", ["0", "11", "0000"])
def test_count_out_of_range(count: str) -> None:
    with pytest.raises(PolicyCompileError, match=rf"3:47: error: count must be a whole number "
                       rf"from 1 to 10, not {count}"):
        _compile(f'  require approval from role "approver" count {count}')


def test_statement_outside_policy() -> None:
    with pytest.raises(PolicyCompileError, match=r"1:1: error: `deny` must be inside a policy "
                       r"block: policy NAME \{ ... \}"):
        compile_sources({"v.policy": 'deny when params.x > 1 because "no"\n'})


def test_mode_other_than_enforce_or_shadow() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:8: error: unknown mode `audit`: a policy's "
                       r"mode is `enforce` \(the default\) or `shadow`"):
        _compile("  mode audit")


def test_header_mode_other_than_enforce_or_shadow() -> None:
    with pytest.raises(PolicyCompileError, match=r"1:15: error: unknown mode `dry`"):
        compile_sources({"v.policy": 'policy p mode dry {\n  applies to tool "a.b"\n}\n'})


def test_bad_escape() -> None:
    with pytest.raises(PolicyCompileError, match=r"unknown escape `\\t` in a string"):
        _compile('  deny when params.x > 1 because "tab\\there"')


def test_reserved_word_as_a_name() -> None:
    with pytest.raises(PolicyCompileError, match=r"`deny` is a reserved word"):
        compile_sources({"v.policy": 'policy deny {\n  applies to tool "a.b"\n}\n'})


def test_every_value_message_is_used_by_a_test_above() -> None:
    # Keeps this file honest: a new value message needs a test here.
    tested = {"unknown_risk_tier", "unknown_autonomy", "unknown_mode", "bad_duration",
              "bad_count", "bad_escape"}
    assert set(VALUE_MESSAGES) == tested


def test_a_misspelt_keyword_gets_a_suggestion() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:3: error: unexpected `escalte` \(did you "
                       r"mean `escalate`\?\)"):
        _compile('  escalte L2 when params.x > 1 because "big"')


def test_a_colon_outside_an_invariant_starts_no_condition() -> None:
    with pytest.raises(PolicyCompileError, match=r"1:9: error: expected `{` to open the policy "
                       r"block") as caught:
        compile_sources({"v.policy": 'policy p: {\n  applies to tool "a.b"\n}\n'})
    assert len(caught.value.diagnostics) == 1


def test_what_is_missing_is_pointed_at_the_end_of_the_line_before() -> None:
    with pytest.raises(PolicyCompileError, match=r"3:26: error: the reason after `because` is a "
                       r"quoted string"):
        _compile("  min_autonomy A3 because\n  # note\n")
