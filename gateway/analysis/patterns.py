"""A string param's schema pattern as a Z3 regular expression, when it is a simple one.

The catalog's patterns are anchored (`^...$`) and use literals, classes (`[a-z]`, `[^@\\s]`,
`\\d`, `\\s`, `\\w`), groups with `|` and the quantifiers `* + ? {n} {n,} {n,m}`. Those are
translated, so a string the solver picks for a field a policy reads fits its schema (and a
policy comparing `currency` with `"USD"` is seen never to match). Anything else gives None: the
field is left unconstrained and the packet is checked against the params model afterwards.
"""

from __future__ import annotations

from typing import Any

import z3

_SORT = z3.ReSort(z3.StringSort())
_WHITESPACE = " \t\n\r\f\v"
_ESCAPES = {"d": [("0", "9")], "w": [("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")],
            "s": [(c, c) for c in _WHITESPACE]}


class _Unsupported(Exception):
    """A pattern construct outside the translated subset."""


def regex(pattern: str) -> Any | None:
    """The Z3 regex for an anchored `pattern`, or None when it is not a simple one."""
    if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
        return None
    try:
        reader = _Reader(pattern[1:-1])
        result = reader.alternation()
        if reader.at < len(reader.text):
            return None
    except (_Unsupported, IndexError):
        return None
    return result


def _char_set(ranges: list[tuple[str, str]]) -> Any:
    parts = [z3.Range(low, high) for low, high in ranges]
    return parts[0] if len(parts) == 1 else z3.Union(*parts)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def _peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def _take(self) -> str:
        char = self.text[self.at]
        self.at += 1
        return char

    def alternation(self) -> Any:
        options = [self.sequence()]
        while self._peek() == "|":
            self._take()
            options.append(self.sequence())
        return options[0] if len(options) == 1 else z3.Union(*options)

    def sequence(self) -> Any:
        parts = []
        while self._peek() not in (None, "|", ")"):
            parts.append(self.quantified(self.atom()))
        if not parts:
            return z3.Re(z3.StringVal(""))
        return parts[0] if len(parts) == 1 else z3.Concat(*parts)

    def atom(self) -> Any:
        char = self._take()
        if char == "(":
            if self._peek() == "?":
                raise _Unsupported("group flags")
            inner = self.alternation()
            if self._take() != ")":
                raise _Unsupported("unbalanced group")
            return inner
        if char == "[":
            return self.char_class()
        if char == "\\":
            return self.escape(in_class=False)
        if char == ".":
            return z3.AllChar(_SORT)
        if char in "^$*+?{":
            raise _Unsupported(char)
        return z3.Re(z3.StringVal(char))

    def escape(self, in_class: bool) -> Any:
        char = self._take()
        if char in _ESCAPES:
            return _char_set(_ESCAPES[char])
        if char.isalnum():
            raise _Unsupported(f"\\{char}")
        return char if in_class else z3.Re(z3.StringVal(char))

    def char_class(self) -> Any:
        negated = self._peek() == "^"
        if negated:
            self._take()
        ranges: list[tuple[str, str]] = []
        sets: list[Any] = []
        while self._peek() != "]":
            char = self._take()
            if char == "\\":
                escaped = self.escape(in_class=True)
                if not isinstance(escaped, str):
                    sets.append(escaped)
                    continue
                char = escaped
            if self._peek() == "-" and self.at + 1 < len(self.text) and self.text[self.at + 1] != "]":
                self._take()
                high = self._take()
                if high == "\\":
                    high = self.escape(in_class=True)
                    if not isinstance(high, str):
                        raise _Unsupported("a range to a class")
                ranges.append((char, high))
            else:
                ranges.append((char, char))
        self._take()
        parts = ([_char_set(ranges)] if ranges else []) + sets
        if not parts:
            raise _Unsupported("an empty class")
        union = parts[0] if len(parts) == 1 else z3.Union(*parts)
        if negated:
            return z3.Intersect(z3.AllChar(_SORT), z3.Complement(union))
        return union

    def quantified(self, atom: Any) -> Any:
        char = self._peek()
        if char == "*":
            self._take()
            return z3.Star(atom)
        if char == "+":
            self._take()
            return z3.Plus(atom)
        if char == "?":
            self._take()
            return z3.Option(atom)
        if char == "{":
            end = self.text.index("}", self.at)
            low, _, high = self.text[self.at + 1:end].partition(",")
            self.at = end + 1
            if not low.isdigit() or (high and not high.isdigit()):
                raise _Unsupported("a quantifier")
            if _ == "," and not high:
                return z3.Concat(z3.Loop(atom, int(low), int(low)), z3.Star(atom))
            return z3.Loop(atom, int(low), int(high or low))
        return atom
