"""One packet's data, checked and converted once, shared by every expression that reads it.

Building the engine's `cel.Context` converts the Python values into CEL values; doing that once
per packet instead of once per expression is what makes evaluation cost about a microsecond
(a plain dict costs the conversion on every call).

The check walks the data once and refuses, with the path of the offending value:

- anything not JSON-like: only dict (str keys), list, str, int, float, bool and None;
  tuples, sets, bytes, datetimes and subclasses such as enums are refused, because the engine
  would convert them into CEL values a JSON packet can never hold;
- ints outside the signed 64-bit range (the engine silently turns 2**63..2**64-1 into uint and
  anything larger into a lossy double), NaN and infinities, strings with lone surrogates;
- nesting deeper than `max_data_depth`, any list or object with more than
  `max_collection_items` entries (this bounds comprehension loops), and more than
  `max_data_bytes` in total, measured about as compact JSON would be: UTF-8 strings plus
  quotes, separators, 5 bytes for small numbers, booleans and null, 20 for larger ints and 24
  for doubles (escapes are not counted).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any

import cel

from invariants.errors import PacketLimitError
from invariants.limits import DEFAULT_LIMITS, Limits
from invariants.reads import Needs

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_isfinite = math.isfinite
_PLAIN_KEY = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
_ROOTS = ("params", "evidence", "agent", "context")


class Activation:
    """A packet's evaluation context: build with `activation(...)`, pass to `evaluate`.

    `context` is what the engine reads: the whole packet, or with `needs` only the fields those
    programs read. `variables` are the checked Python values of the whole packet, by root name.
    """

    __slots__ = ("context", "variables", "needs", "_whole")

    context: cel.Context
    variables: dict[str, Any]
    needs: Needs | None

    def __init__(
        self, context: cel.Context, variables: dict[str, Any], needs: Needs | None = None
    ) -> None:
        self.context = context
        self.variables = variables
        self.needs = needs
        self._whole: cel.Context | None = context if needs is None else None

    def whole_context(self) -> cel.Context:
        """The engine's context for the whole packet (built on first use when pruned)."""
        if self._whole is None:
            self._whole = _context(self.variables)
        return self._whole

    def __repr__(self) -> str:
        return f"Activation(roots={sorted(self.variables)}, needs={self.needs!r})"


def activation(
    params: Any = None,
    evidence: Any = None,
    agent: Any = None,
    context: Any = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
    needs: Needs | None = None,
) -> Activation:
    """Check one packet's data against `limits` and build its evaluation context.

    A root given as None is an empty object (a field read from it is then an ERROR, as for any
    missing field). `now` must be timezone-aware; it is converted to UTC, because the engine's
    `getHours()` and friends otherwise answer in the datetime's own offset.

    With `needs` (`Needs.of(programs)`), the engine gets only what those programs read; the
    limits still apply to the whole packet. Any program gives the same outcome either way.
    """
    if now is None:
        now = datetime.now(timezone.utc)
    elif not isinstance(now, datetime) or now.utcoffset() is None:
        raise TypeError("now must be a timezone-aware datetime")
    else:
        now = now.astimezone(timezone.utc)
    budget = _Budget(limits)
    variables: dict[str, Any] = {}
    for name, value in zip(_ROOTS, (params, evidence, agent, context)):
        if value is None:
            value = {}
        if type(value) is not dict:
            raise PacketLimitError(f"must be an object, not {_kind(value)}", name)
        try:
            budget.walk(value, 1)
        except _Refusal as refusal:
            refusal.path.append(name)
            raise PacketLimitError(refusal.message, _path(refusal.path)) from None
        variables[name] = value
    variables["now"] = now
    if needs is None:
        return Activation(_context(variables), variables)
    return Activation(_context(needs.select(variables)), variables, needs)


def _context(variables: dict[str, Any]) -> cel.Context:
    try:
        return cel.Context(variables=variables)
    except Exception as exc:  # fail closed on anything the engine still cannot convert
        raise PacketLimitError(f"the CEL engine cannot hold this data: {exc}") from None


class _Refusal(Exception):
    """Raised deep in the walk; each level on the way out adds its key to `path`."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.path: list[str | int] = []


class _Budget:
    """One walk's running totals against the limits.

    The walk is the only per-packet cost on our side of the engine, so scalars are handled
    inline in the container loops (a method call per value would double its cost).
    """

    __slots__ = ("remaining", "max_depth", "max_items", "limit")

    def __init__(self, limits: Limits) -> None:
        self.remaining = limits.max_data_bytes
        self.limit = limits.max_data_bytes
        self.max_depth = limits.max_data_depth
        self.max_items = limits.max_collection_items

    def walk(self, value: dict[Any, Any] | list[Any], depth: int) -> None:
        """Check one container and everything in it; `depth` counts the container itself."""
        if depth > self.max_depth:
            raise _Refusal(f"nested more than {self.max_depth} levels deep")
        count = len(value)
        if count > self.max_items:
            raise _Refusal(f"has {count} entries; the limit is {self.max_items}")
        is_list = type(value) is list
        items = value.items() if type(value) is dict else enumerate(value)
        key: Any  # a list index, or an object key that is checked to be a string before use
        remaining = self.remaining - 1 - count  # brackets and separators
        for key, item in items:
            if not is_list and type(key) is not str:
                raise _Refusal(f"object key {key!r} is not a string")
            try:
                if not is_list:
                    remaining -= len(key) + 3 if key.isascii() else _string_size(key) + 1
                kind = type(item)
                if kind is str:
                    remaining -= len(item) + 2 if item.isascii() else _string_size(item)
                elif kind is int:
                    if not _INT64_MIN <= item <= _INT64_MAX:
                        raise _Refusal("integer out of the signed 64-bit range")
                    remaining -= 20 if item > 99999 or item < -9999 else 5
                elif kind is bool or item is None:
                    remaining -= 5
                elif kind is float:
                    if not _isfinite(item):
                        raise _Refusal(f"{item!r} is not a JSON number")
                    remaining -= 24
                elif kind is dict or kind is list:
                    self.remaining = remaining
                    self.walk(item, depth + 1)
                    remaining = self.remaining
                else:
                    raise _Refusal(f"{_kind(item)} is not a JSON value")
                if remaining < 0:
                    raise _Refusal(f"packet data is larger than {self.limit} bytes")
            except _Refusal as refusal:
                refusal.path.append(key)
                raise
        self.remaining = remaining


def _string_size(text: str) -> int:
    if text.isascii():
        return len(text) + 2
    try:
        return len(text.encode("utf-8")) + 2
    except UnicodeEncodeError:
        raise _Refusal("string is not valid Unicode (lone surrogate)") from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _path(parts: list[str | int]) -> str:
    """`evidence.items[3]["odd key"]` from the reversed parts collected on the way out."""
    out = ""
    for part in reversed(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]" if out else part
    return out
