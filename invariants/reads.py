"""What an expression can read from a packet, so an activation converts only that.

Converting a packet into the engine's values costs a few microseconds per value (strings the
most: the engine tries each as a timestamp and a duration first), while the policies for one
tool read a handful of fields. So each Program records, at load, the top-level fields it reads
under each root, and an activation built for a set of programs (`Needs`) hands the engine only
those fields, each with its whole value underneath.

The analysis is conservative: a root counts as read field by field only when every use of it is
`root.field...` (which covers `has(root.field...)`). Any other use reads the *whole* root (None):
a bare `root` (`"x" in params`, `size(params)`, `params[key]`, a map key), a method call on the
root (`params.all(k, ...)`, `params.a()`), a comprehension binding a variable named like the
root, and `now`, which is one value. A root the engine says the source reads but the tokens do
not show is whole too, and so is every root when a string literal the tokenizer found is not one
the engine agrees on: the tokens would not then be the engine's.

Why the pruned activation answers exactly as the full one: a `root.field` selection sees the
same value (the whole value under `field`) or the same "no such field" error when the packet
lacks it, and no other use of a pruned root exists in the programs it was built for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import cel

from invariants.lexer import Token
from invariants.references import ROOT_VARIABLES, macro_binding

#: Per root an expression reads: the top-level fields it selects, or None for the whole root.
Reads = Mapping[str, frozenset[str] | None]

#: Roots whose value is not an object of fields.
_SCALAR_ROOTS = frozenset({"now"})


def field_reads(tokens: list[Token], variables: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """The fields each root is read by in an expression the engine has parsed.

    `tokens` are the source's tokens, `variables` the engine's own list of the names it reads.
    """
    if not _strings_agree(tokens):
        return {name: None for name in variables if name in ROOT_VARIABLES}
    rebound = {bound for i in range(len(tokens)) if (bound := macro_binding(tokens, i))}
    found: dict[str, set[str] | None] = {}
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        name = token.text
        if token.kind != "ident" or name not in ROOT_VARIABLES:
            continue
        if i > 0 and tokens[i - 1].kind == "dot":
            continue  # a field or a method named like a root: `context.agent`
        field = _selected_field(tokens, i, last)
        if field is None or name in rebound or name in _SCALAR_ROOTS:
            found[name] = None
            continue
        fields = found.setdefault(name, set())
        if fields is not None:
            fields.add(field)
    for name in variables:
        if name in ROOT_VARIABLES and name not in found:
            found[name] = None  # the engine reads it where the tokens do not show how
    return {name: None if fields is None else frozenset(fields) for name, fields in found.items()}


def _selected_field(tokens: list[Token], i: int, last: int) -> str | None:
    """`field` when `tokens[i]` starts `root.field` not followed by a call; else None."""
    if i + 2 > last or tokens[i + 1].kind != "dot" or tokens[i + 2].kind != "ident":
        return None
    if i + 3 <= last and tokens[i + 3].text == "(":
        return None  # `root.name(...)`: a method called on the root itself
    return tokens[i + 2].text


def _strings_agree(tokens: list[Token]) -> bool:
    """Whether the engine reads each string literal the tokenizer found as one constant.

    A literal the tokenizer ended too early or too late could hide a field selection from the
    analysis; compiled alone, such a fragment either fails or reads a variable.
    """
    for token in tokens:
        if token.kind != "string":
            continue
        try:
            compiled = cel.compile(token.text)
        except Exception:
            return False
        if compiled.variables() or compiled.functions():
            return False
    return True


def union(reads: Iterable[Reads]) -> dict[str, frozenset[str] | None]:
    """What a set of expressions reads together."""
    merged: dict[str, frozenset[str] | None] = {}
    for one in reads:
        for root, fields in one.items():
            if root in merged:
                known = merged[root]
                merged[root] = None if known is None or fields is None else known | fields
            else:
                merged[root] = fields
    return merged


def covers(outer: Reads, inner: Reads) -> bool:
    """Whether everything `inner` reads is inside what `outer` reads."""
    for root, fields in inner.items():
        if root not in outer:
            return False
        held = outer[root]
        if held is not None and (fields is None or not fields <= held):
            return False
    return True


class _Reader(Protocol):
    @property
    def reads(self) -> Reads: ...


class Needs:
    """What the programs evaluated against one kind of packet read (say, one tool's policies).

    Built once (`Needs.of(programs)`) and passed to `activation(..., needs=...)` for every packet;
    `select` picks the values to convert, `covers` answers whether a program may use the pruned
    context (remembered per program, so the check costs one dictionary lookup).
    """

    __slots__ = ("reads", "_plan", "_covered")

    reads: dict[str, frozenset[str] | None]

    def __init__(self, reads: Reads) -> None:
        unknown = set(reads) - ROOT_VARIABLES
        if unknown:
            raise ValueError(f"unknown roots {sorted(unknown)}")
        self.reads = dict(reads)
        self._plan = tuple(
            (root, None if fields is None else tuple(sorted(fields)))
            for root, fields in sorted(reads.items())
        )
        self._covered: dict[object, bool] = {}

    @classmethod
    def of(cls, programs: Iterable[_Reader]) -> Needs:
        """The needs of every program in `programs` together."""
        return cls(union(p.reads for p in programs))

    def select(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a packet's checked `variables` the programs can read."""
        selected: dict[str, Any] = {}
        for root, fields in self._plan:
            value = variables[root]
            if fields is None:
                selected[root] = value
            else:
                selected[root] = {f: value[f] for f in fields if f in value}
        return selected

    def covers(self, program: _Reader) -> bool:
        """Whether `program` reads nothing the pruned context lacks."""
        known = self._covered.get(program)
        if known is None:
            known = self._covered[program] = covers(self.reads, program.reads)
        return known

    def __repr__(self) -> str:
        shown = {r: "*" if f is None else sorted(f) for r, f in sorted(self.reads.items())}
        return f"Needs({shown})"
