"""A small CEL tokenizer: just enough to locate names and brackets in a source.

The engine compiles the expression; this module exists because the engine does not say *where*
a name is, nor which names a comprehension macro binds (`Program.variables()` lists the `x` of
`list.all(x, x > 0)` next to `params`). With tokens we can point the author at the exact
character of an unknown variable, an unknown function or an over-deep nesting, and bound the
work before the engine's recursive parser ever sees the source.

It never rejects anything by itself: on text the engine would refuse, it still yields tokens
(an unknown character becomes an `other` token, an unterminated string runs to the end of its
line), because the engine's own parse error is the one reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["ident", "number", "string", "open", "close", "dot", "comma", "op", "other"]

_OPEN = "([{"
_CLOSE = ")]}"

_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?"
    r"|(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?"
    r"|\d+[eE][+-]?\d+"
    r"|\d+[uU]?"
)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATOR = re.compile(r"&&|\|\||==|!=|<=|>=|[-+*/%<>!?:]")
_STRING_START = re.compile(r"(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"|'''|\"|')")
#: Tried in order at each character that does not start a string.
_PATTERNS: tuple[tuple[TokenKind, re.Pattern[str]], ...] = (
    ("number", _NUMBER), ("ident", _IDENT), ("op", _OPERATOR),
)


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme: its kind, text and 1-based position (line, column in characters)."""

    kind: TokenKind
    text: str
    offset: int
    line: int
    column: int
    closed: bool = True  # False for a string literal that runs off the end of its line/source


def tokenize(source: str) -> list[Token]:
    """Split `source` into tokens, skipping whitespace and `//` comments."""
    tokens: list[Token] = []
    line, line_start = 1, 0
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
            i += 1
            continue
        if ch in " \t\r\f":
            i += 1
            continue
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        column = i - line_start + 1
        string = _STRING_START.match(source, i)
        if string:
            end, closed = _string_end(source, i, string.group())
            text = source[i:end]
            tokens.append(Token("string", text, i, line, column, closed))
            newlines = text.count("\n")
            if newlines:
                line += newlines
                line_start = i + text.rfind("\n") + 1
            i = end
            continue
        for kind, pattern in _PATTERNS:
            match = pattern.match(source, i)
            if match:
                tokens.append(Token(kind, match.group(), i, line, column))
                i = match.end()
                break
        else:
            kind = (
                "open" if ch in _OPEN
                else "close" if ch in _CLOSE
                else "dot" if ch == "."
                else "comma" if ch == ","
                else "other"
            )
            tokens.append(Token(kind, ch, i, line, column))
            i += 1
    return tokens


def _string_end(source: str, start: int, opener: str) -> tuple[int, bool]:
    """Index just past the string literal opened at `start`, and whether it was closed."""
    quote = opener.lstrip("rRbB")
    raw = "r" in opener[: len(opener) - len(quote)].lower()
    i, n = start + len(opener), len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and not raw:
            i += 2
            continue
        if len(quote) == 1 and ch == "\n":
            return i, False
        if source.startswith(quote, i):
            return i + len(quote), True
        i += 1
    return n, False


def position_at(source: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of character `offset` in `source`."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column
