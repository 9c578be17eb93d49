"""Known mistakes in policy files, and the messages a policy author understands for them.

Like Lark's `GRAMMAR_ERRORS`: each syntax mistake is listed with its message and malformed
examples. The table is plain data and knows nothing of the grammar: `dsl.syntax_errors` parses
the examples to learn where each mistake happens (the parser state and the unexpected token), so
the table keeps working when the grammar changes. A few mistakes are recognised by what went
wrong rather than where (an unterminated string, a missing `}`).

Mistakes in values (a tier `L5`, a `count 0`, ...) are not syntax errors: the compiler finds them
after parsing; their messages live here too (`VALUE_MESSAGES`) so that all of them can be read
and tested in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

_P = 'policy p {\n  applies to tool "t"\n'


@dataclass(frozen=True, slots=True)
class Mistake:
    """One known mistake: its stable code, its message and inputs that make it."""

    code: str
    message: str  # may use {token}: the unexpected word or character
    examples: tuple[str, ...]
    #: Something is missing: point just after the last word written, not at the next one
    #: (which may be lines further down).
    missing: bool = False


#: Recognised by what went wrong (checked first): see `dsl.syntax_errors`.
UNTERMINATED_STRING = Mistake(
    "unterminated_string",
    'this string is never closed: add the closing " on the same line',
    (_P + '  deny when params.x > 1 because "too big\n}\n', 'policy p "Refunds {\n}\n'),
)
MISSING_CLOSING_BRACE = Mistake(
    "missing_closing_brace",
    "missing `}`: the policy block before this point is never closed",
    (_P + '  risk L1\n', _P + 'policy q {\n  applies to tool "u"\n}\n', 'policy p {\n'),
)
OUTSIDE_POLICY = Mistake(
    "statement_outside_policy",
    "{token} must be inside a policy block: policy NAME { ... }",
    (
        'deny when params.x > 1 because "no"\n',
        'role finance\nrisk L1\n',
        _P + '}\nescalate L2 when params.x > 1 because "big"\n',
    ),
)
UNMATCHED_CLOSING_BRACE = Mistake(
    "unmatched_closing_brace",
    "this `}` closes nothing: is there one `}` too many?",
    (_P + "}\n}\n",),
)
RESERVED_WORD = Mistake(
    "reserved_word",
    "{token} is a reserved word and cannot be used as a name",
    ('policy deny {\n}\n', _P + "  invariant risk : params.x > 1\n}\n", "role policy\n"),
)
BAD_NAME_CHARACTER = Mistake(
    "bad_name_character",
    "names may only contain letters, digits and `_` (found {token})",
    ("policy margin-floor {\n}\n", _P + "  invariant ok-now : true\n}\n"),
)

#: Recognised by the parser state and the unexpected token, from the examples. Order matters:
#: when only the state matches, the first mistake listed for that state wins.
SYNTAX_MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "missing_because",
        'expected `because "reason"` after the condition: deny and escalate rules say why',
        (
            _P + "  deny when params.x > 1\n}\n",
            _P + "  deny cap when params.x > 1\n}\n",
            _P + "  escalate L2 when params.x > 1\n}\n",
            _P + "  escalate big L2 when params.x > 1\n}\n",
        ),
        missing=True,
    ),
    Mistake(
        "reason_not_quoted",
        'the reason after `because` is a quoted string: because "..."',
        (
            _P + "  deny when params.x > 1 because too big\n}\n",
            _P + "  deny cap when params.x > 1 because too big\n}\n",
            _P + "  escalate L2 when params.x > 1 because too big\n}\n",
            _P + "  escalate big L2 when params.x > 1 because too big\n}\n",
            _P + "  min_autonomy A3 because too risky\n}\n",
        ),
    ),
    Mistake(
        "missing_condition",
        "expected a condition (a CEL expression) after `when`",
        (
            _P + '  deny when because "no"\n}\n',
            _P + '  deny cap when because "no"\n}\n',
            _P + '  escalate L2 when because "no"\n}\n',
            _P + '  escalate big L2 when because "no"\n}\n',
            _P + '  require approval from role "approver" when expires in 4h\n}\n',
            _P + "  min_autonomy A3 when\n}\n",
        ),
        missing=True,
    ),
    Mistake(
        "missing_invariant_condition",
        "expected a condition (a CEL expression) after the invariant's `:`",
        (_P + "  invariant ok :\n}\n", _P + '  invariant ok "fine" :\n}\n'),
        missing=True,
    ),
    Mistake(
        "deny_missing_when",
        'expected `when`: a deny rule is written deny [NAME] when CONDITION because "reason"',
        (
            _P + '  deny params.x > 1 because "no"\n}\n',
            _P + '  deny because "no"\n}\n',
        ),
    ),
    Mistake(
        "escalate_missing_when",
        "expected `when`: an escalation is written "
        'escalate [NAME] TIER when CONDITION because "reason"',
        (
            _P + '  escalate L2 params.x > 1 because "big"\n}\n',
            _P + '  escalate big L2 params.x > 1 because "big"\n}\n',
            _P + '  escalate L2 because "big"\n}\n',
        ),
    ),
    Mistake(
        "escalate_missing_tier",
        "an escalation needs the risk tier it raises to (L0 to L3): "
        'escalate [NAME] L2 when CONDITION because "reason"',
        (_P + '  escalate when params.x > 1 because "big"\n}\n',),
    ),
    Mistake(
        "applies_missing_tool",
        'expected `tool`: write applies to tool "name", applies to tool in ["a", "b"] '
        'or applies to tool matching "glob"',
        (
            _P + '  applies to "stripe.refund"\n}\n',
            'policy p {\n  applies "stripe.refund"\n}\n',
            'policy p {\n  applies to tools "stripe.refund"\n}\n',
        ),
    ),
    Mistake(
        "tool_not_quoted",
        'tool names and globs are quoted: applies to tool "stripe.refund"',
        (
            "policy p {\n  applies to tool stripe.refund\n}\n",
            "policy p {\n  applies to tool matching stripe\n}\n",
            "policy p {\n  applies to tool in [stripe.refund]\n}\n",
        ),
    ),
    Mistake(
        "tool_list_syntax",
        'a tool list is written in ["a", "b"]: names quoted, separated by commas, closed by `]`',
        (
            'policy p {\n  applies to tool in ["a" "b"]\n}\n',
            'policy p {\n  applies to tool in ["a", "b"\n  risk L1\n}\n',
        ),
    ),
    Mistake(
        "bad_duration",
        "a duration is a whole number and a unit with no space: 30s, 15m, 4h or 7d "
        "(expires in 4h)",
        (
            _P + '  require approval from role "approver" expires in 4 hours\n}\n',
            _P + '  require approval from role "approver" expires in four hours\n}\n',
            _P + '  require approval from role "approver" expires 4h\n}\n',
        ),
    ),
    Mistake(
        "count_not_number",
        "count is a whole number of approvers from 1 to 10, e.g. count 2",
        (_P + '  require approval from role "approver" count two\n}\n',),
    ),
    Mistake(
        "approval_syntax",
        'an approval is written require approval [NAME] from role "ROLE" '
        "[count N] [when CONDITION] [expires in DURATION]",
        (
            _P + '  require from role "approver"\n}\n',
            _P + "  require approval when params.x > 1\n}\n",
            _P + '  require approval big role "approver"\n}\n',
            _P + '  require approval from role "approver" if params.x > 1\n}\n',
        ),
    ),
    Mistake(
        "role_keyword_missing",
        'expected `role`: write from role "approver"',
        (_P + '  require approval from "approver"\n}\n',),
    ),
    Mistake(
        "role_not_quoted",
        'role names are quoted: from role "approver"',
        (_P + "  require approval from role approver\n}\n",),
    ),
    Mistake(
        "min_autonomy_missing_level",
        "min_autonomy needs a level (A0 to A4): "
        'min_autonomy [NAME] A3 [when CONDITION] [because "reason"]',
        (_P + "  min_autonomy when params.x > 1\n}\n",),
    ),
    Mistake(
        "invariant_syntax",
        'an invariant is written invariant NAME ["description"] : CONDITION',
        (
            _P + "  invariant ok params.x > 1\n}\n",
            _P + '  invariant ok "fine" params.x > 1\n}\n',
            _P + '  invariant : params.x > 1\n}\n',
        ),
    ),
    Mistake(
        "missing_policy_name",
        'a policy needs a name: policy NAME "description" { ... }',
        ('policy {\n  applies to tool "t"\n}\n', 'policy "Refunds" {\n}\n'),
    ),
    Mistake(
        "missing_open_brace",
        "expected `{` to open the policy block",
        (
            'policy p\n  applies to tool "t"\n}\n',
            'policy p "Refunds"\n  applies to tool "t"\n}\n',
            'policy p mode shadow\n  applies to tool "t"\n}\n',
        ),
    ),
    Mistake(
        "header_mode_syntax",
        "to set the mode in the header write policy NAME mode shadow {",
        ('policy p shadow {\n  applies to tool "t"\n}\n',),
    ),
    Mistake(
        "missing_mode",
        "expected the mode: `enforce` (the default) or `shadow`",
        (_P + "  mode\n}\n", 'policy p mode {\n}\n'),
        missing=True,
    ),
    Mistake(
        "opa_missing_path",
        'an opa statement names the OPA path it asks, quoted: '
        'opa [NAME] "package/rule" [reads params, evidence.FIELD, ...]',
        (_P + "  opa\n}\n", _P + "  opa finance\n}\n", _P + "  opa warden/refunds/allow\n}\n"),
    ),
    Mistake(
        "opa_reads_syntax",
        "after `reads` list the fields OPA may read, separated by commas: reads params, evidence.risk_score",
        (_P + '  opa "a/b" reads\n}\n', _P + '  opa "a/b" reads params,\n}\n',
         _P + '  opa "a/b" params\n}\n', _P + '  opa n "a/b" params\n}\n'),
    ),
    Mistake(
        "missing_risk",
        "expected the risk tier: L0, L1, L2 or L3",
        (_P + "  risk\n}\n",),
        missing=True,
    ),
)


#: Messages for mistakes in values, found after parsing (see `dsl.resolve`).
VALUE_MESSAGES: dict[str, str] = {
    "unknown_risk_tier": "unknown risk tier `{value}`: the tiers are L0, L1, L2 and L3",
    "unknown_autonomy": "unknown autonomy level `{value}`: the levels are A0, A1, A2, A3 and A4",
    "unknown_mode": "unknown mode `{value}`: a policy's mode is `enforce` (the default) "
    "or `shadow`",
    "bad_duration": "bad duration `{value}`: write a whole number and a unit, "
    "30s, 15m, 4h or 7d",
    "bad_count": "count must be a whole number from 1 to 10, not {value}",
    "bad_escape": "unknown escape `{value}` in a string: only \\\" and \\\\ are allowed",
}


def value_message(code: str, value: str) -> str:
    return VALUE_MESSAGES[code].format(value=value)
