"""Known mistakes in policy files, and the messages a policy author understands for them.

Like Lark's `GRAMMAR_ERRORS` and `UnexpectedInput.match_examples`: each syntax mistake is listed
with malformed examples. The examples are parsed once per process; the parser state and the
unexpected token they fail with identify the mistake, so a real error in the same situation gets
the same message, and the table keeps working when the grammar changes. A few mistakes are
recognised by what went wrong rather than where (an unterminated string, a missing `}`).

Mistakes in values (a tier `L5`, a `count 0`, ...) are not syntax errors: the compiler finds them
after parsing; their messages live here too (`VALUE_MESSAGES`) so that all of them can be read
and tested in one place.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dsl.cel_regions import STATEMENT_WORDS
from dsl.parser import parse_example, policy_parser

_P = 'policy p {\n  applies to tool "t"\n'


@dataclass(frozen=True, slots=True)
class Mistake:
    code: str
    message: str  # may use {token}: the unexpected word or character
    examples: tuple[str, ...]
    #: Something is missing: point just after the last word written, not at the next one
    #: (which may be lines further down).
    missing: bool = False


#: Recognised by what went wrong (checked first): see `_by_kind`.
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
        "missing_risk",
        "expected the risk tier: L0, L1, L2 or L3",
        (_P + "  risk\n}\n",),
        missing=True,
    ),
)


@dataclass(frozen=True, slots=True)
class _Example:
    state: object
    token_type: str


def _failure(example: str) -> _Example | None:
    try:
        parse_example(example)
    except UnexpectedToken as err:
        return _Example(_state_key(err), _token_key(err))
    except UnexpectedCharacters as err:
        return _Example(_state_key(err), "<char>")
    except UnexpectedInput as err:
        return _Example(_state_key(err), "$END")
    return None


def _token_key(err: UnexpectedToken) -> str:
    return str(err.token.type)


def expected_terminals(err: UnexpectedInput) -> frozenset[str]:
    """The terminals the parser could have taken where it failed, from the LALR table."""
    state = getattr(err, "state", None)
    try:
        actions = state.parse_conf.states[state.position]  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError):
        found = getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
        return frozenset(found)
    return frozenset(name for name in actions if name.isupper() or name == "$END")


def _state_key(err: UnexpectedInput) -> object:
    """The LALR state number the parser was in (Lark gives a state object or a number)."""
    state = getattr(err, "state", None)
    return getattr(state, "position", state)


@functools.cache
def _index() -> tuple[dict[tuple[object, str], Mistake], dict[object, Mistake]]:
    """(state, token type) -> mistake and state -> mistake, learnt from the examples."""
    exact: dict[tuple[object, str], Mistake] = {}
    by_state: dict[object, Mistake] = {}
    for mistake in SYNTAX_MISTAKES:
        for example in mistake.examples:
            failure = _failure(example)
            if failure is None:
                continue
            exact.setdefault((failure.state, failure.token_type), mistake)
            by_state.setdefault(failure.state, mistake)
    return exact, by_state


def _by_kind(err: UnexpectedInput, text: str, offset: int) -> Mistake | None:
    """Mistakes recognised by what went wrong, wherever it happens."""
    if isinstance(err, UnexpectedCharacters):
        char = text[offset] if offset < len(text) else ""
        if char == '"':
            return UNTERMINATED_STRING
        if char == "-" and offset > 0 and (text[offset - 1].isalnum() or text[offset - 1] == "_"):
            return BAD_NAME_CHARACTER
        return None
    if not isinstance(err, UnexpectedToken):
        return MISSING_CLOSING_BRACE
    expected = expected_terminals(err)
    value = str(err.token) if err.token.type != "$END" else ""
    if "RBRACE" in expected and (err.token.type == "$END" or value in ("policy", "role")):
        return MISSING_CLOSING_BRACE
    if "POLICY" in expected and "RBRACE" not in expected:
        if value in STATEMENT_WORDS - {"policy", "role"}:
            return OUTSIDE_POLICY
        if value == "}":
            return UNMATCHED_CLOSING_BRACE
    return None


def _is_reserved_word_for_name(err: UnexpectedInput) -> bool:
    """A keyword where the parser wanted a name (`policy deny {`)."""
    if not isinstance(err, UnexpectedToken) or err.token.type in ("$END", "NAME"):
        return False
    return str(err.token).isidentifier() and "NAME" in expected_terminals(err)


def explain(err: UnexpectedInput, text: str, offset: int) -> tuple[str, str, bool]:
    """(code, message, missing) for a syntax error, from the known mistakes or else a plain
    description; `missing` says the error is about something left out before `offset`."""
    token = _describe_unexpected(err, text, offset)
    mistake = _by_kind(err, text, offset)
    if mistake is None:
        exact, by_state = _index()
        token_type = _token_key(err) if isinstance(err, UnexpectedToken) else "<char>"
        state = _state_key(err)
        mistake = exact.get((state, token_type))
        if mistake is None and _is_reserved_word_for_name(err):
            mistake = RESERVED_WORD
        mistake = mistake or by_state.get(state)
    if mistake is not None:
        return mistake.code, mistake.message.replace("{token}", token), mistake.missing
    return "syntax_error", f"unexpected {token}{_did_you_mean(err)}; expected {_expected(err)}", \
        False


def _did_you_mean(err: UnexpectedInput) -> str:
    """` (did you mean `escalate`?)` for a word close to a keyword the parser could take."""
    if not isinstance(err, UnexpectedToken) or err.token.type != "NAME":
        return ""
    words = [w.strip("`") for w in _expected_words(err)]
    close = difflib.get_close_matches(str(err.token), words, n=1, cutoff=0.75)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _expected_words(err: UnexpectedInput) -> list[str]:
    terminals = policy_parser().get_terminal
    words = []
    for name in expected_terminals(err):
        try:
            value = str(terminals(name).pattern.value)
        except KeyError:
            continue
        if value.isidentifier():
            words.append(value)
    return words


def _describe_unexpected(err: UnexpectedInput, text: str, offset: int) -> str:
    if isinstance(err, UnexpectedCharacters):
        return f"`{text[offset]}`" if offset < len(text) else "end of file"
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        if err.token.type == "CEL":
            return "a condition"
        return f"`{err.token}`"
    return "end of file"


_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "INT": "a number",
    "DURATION": "a duration such as 4h",
    "CEL": "a condition",
    "$END": "the end of the file",
}


def _expected(err: UnexpectedInput) -> str:
    names = expected_terminals(err)
    terminals = policy_parser().get_terminal
    described = []
    for name in sorted(names):
        if name in _TERMINAL_NAMES:
            described.append(_TERMINAL_NAMES[name])
            continue
        try:
            described.append(f"`{terminals(name).pattern.value}`")
        except KeyError:
            described.append(name)
    return ", ".join(described) if described else "something else"


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
