"""Syntax errors as a policy author reads them: which known mistake a Lark error is.

Like Lark's `UnexpectedInput.match_examples`: the examples of every mistake in `dsl.mistakes`
are parsed once per process with the parser that files are parsed with (`dsl.grammar`); the LALR
state and the unexpected token each one fails with identify the mistake, so a real error in the
same situation gets the same message. A few mistakes are recognised by what went wrong rather
than where (an unterminated string, a missing `}`), and those are checked first. An error that
is no known mistake is described plainly: what was found, what the parser could have taken
there, and a keyword close to a misspelt one.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dsl.cel_regions import STATEMENT_WORDS, scan
from dsl.grammar import parse_masked, policy_parser
from dsl.mistakes import (
    BAD_NAME_CHARACTER, MISSING_CLOSING_BRACE, OUTSIDE_POLICY, RESERVED_WORD, SYNTAX_MISTAKES,
    UNMATCHED_CLOSING_BRACE, UNTERMINATED_STRING, Mistake,
)


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


def expected_terminals(err: UnexpectedInput) -> frozenset[str]:
    """The terminals the parser could have taken where it failed, from the LALR table."""
    # Lark documents the state as opaque: a parser state object, a number or None.
    state: Any = getattr(err, "state", None)
    try:
        actions = state.parse_conf.states[state.position]
    except (AttributeError, KeyError, TypeError):
        found = getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
        return frozenset(found)
    return frozenset(name for name in actions if name.isupper() or name == "$END")


# -- recognised by what went wrong ---------------------------------------------------------------

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


# -- recognised by where it happens, learnt from the examples ------------------------------------

@dataclass(frozen=True, slots=True)
class _Example:
    state: object
    token_type: str


def _failure(example: str) -> _Example | None:
    """Where `example` fails when parsed the way files are parsed; None if it parses."""
    try:
        parse_masked(scan(example).masked)
    except UnexpectedToken as err:
        return _Example(_state_key(err), _token_key(err))
    except UnexpectedCharacters as err:
        return _Example(_state_key(err), "<char>")
    except UnexpectedInput as err:
        return _Example(_state_key(err), "$END")
    return None


def _token_key(err: UnexpectedToken) -> str:
    return str(err.token.type)


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


# -- described plainly ---------------------------------------------------------------------------

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
