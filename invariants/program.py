"""Compile a CEL expression once at load; evaluate it per packet without raising.

`compile_expression` runs a short table of stages, each of which may refuse the source with a
`CelCompileError` at an exact position:

    1. bound the length        (before anything else reads the text)
    2. tokenize and bound the bracket nesting (before the engine's recursive parser)
    3. parse with the engine   (its syntax errors reworded, see `invariants.messages`)
    4. resolve references      (only params, evidence, agent, context, now; known functions;
                                comprehension nesting)
    5. note what it reads      (per root, the top-level fields; `invariants.reads`)

`Program.evaluate` is the hot path: one engine call on a prebuilt `cel.Context`, and for a
boolean result no allocation at all (PASS and FAIL outcomes are shared constants).
"""

from __future__ import annotations

import base64
import math
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

import cel

from invariants.activation import Activation
from invariants.errors import CelCompileError, PacketLimitError
from invariants.lexer import position_at, tokenize
from invariants.limits import DEFAULT_LIMITS, Limits
from invariants.messages import describe_parse_error, describe_runtime_error
from invariants.reads import Reads, field_reads
from invariants.references import ROOT_VARIABLES, check_nesting, check_references

Verdict = Literal["PASS", "FAIL", "ERROR"]


class Outcome:
    """The result of one evaluation: a boolean verdict, or an error said in words.

    `value` is the expression's value (None on error; for a non-boolean result, a JSON-safe
    rendering of it), `error` the reason it is not a verdict (None for PASS and FAIL).
    """

    __slots__ = ("value", "error")

    value: Any
    error: str | None

    def __init__(self, value: Any, error: str | None) -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "error", error)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Outcome is immutable")

    @property
    def verdict(self) -> Verdict:
        if self.error is None:
            return "PASS" if self.value is True else "FAIL"
        return "ERROR"

    @property
    def holds(self) -> bool | None:
        """True/False for a boolean result, None for an error or a non-boolean value."""
        return None if self.error is not None else self.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return (self.value, self.error) == (other.value, other.error)

    def __hash__(self) -> int:
        return hash((self.verdict, self.error))

    def __repr__(self) -> str:
        if self.error is None:
            return f"Outcome({self.verdict})"
        return f"Outcome(ERROR, {self.error!r})"


PASS: Final = Outcome(True, None)
FAIL: Final = Outcome(False, None)


class Program:
    """A compiled expression: immutable, compiled once, evaluated for any number of packets."""

    __slots__ = ("source", "roots", "reads", "_execute")

    source: str
    roots: frozenset[str]  # the top-level variables the expression reads
    reads: Reads  # per root read, its top-level fields, or None for the whole root

    def __init__(
        self, source: str, compiled: cel.Program, roots: frozenset[str], reads: Reads | None = None
    ) -> None:
        self.source = source
        self.roots = roots
        self.reads = MappingProxyType(
            dict.fromkeys(roots | set(compiled.variables()) & ROOT_VARIABLES)
            if reads is None
            else dict(reads)
        )
        self._execute = compiled.execute

    def evaluate(self, act: Activation) -> Outcome:
        """Evaluate against one packet's activation; data problems give an ERROR outcome.

        An activation pruned for other programs (`needs` that do not cover this one) is read
        through its whole context instead, so the answer never depends on the pruning.
        """
        context = act.context  # outside the try: a wrong argument is a bug, not a data error
        needs = act.needs
        if needs is not None and not needs.covers(self):
            try:
                context = act.whole_context()
            except PacketLimitError as exc:
                return Outcome(None, str(exc))
        try:
            value = self._execute(context)
        except Exception as exc:  # every engine error is about the data
            return Outcome(None, describe_runtime_error(exc))
        except BaseException as exc:  # a Rust panic surfaces as pyo3's PanicException
            if type(exc).__name__ != "PanicException":
                raise
            return Outcome(None, f"the CEL engine failed: {str(exc)[:200]}")
        if value is True:
            return PASS
        if value is False:
            return FAIL
        return _non_boolean(value)

    def __repr__(self) -> str:
        return f"Program({self.source!r})"


def compile_expression(source: str, limits: Limits = DEFAULT_LIMITS) -> Program:
    """Compile `source` into a Program, or raise CelCompileError saying where and why."""
    if not isinstance(source, str):
        raise TypeError(f"a CEL source must be a str, not {type(source).__name__}")
    # (1) length, before any other pass reads the text
    if len(source) > limits.max_expression_length:
        line, column = position_at(source, limits.max_expression_length)
        raise CelCompileError(
            f"expression is {len(source)} characters long; "
            f"the limit is {limits.max_expression_length}",
            line,
            column,
        )
    if not source.strip():
        raise CelCompileError("empty expression", 1, 1)
    # (2) tokens, and bracket nesting before the recursive parser sees it
    tokens = tokenize(source)
    check_nesting(tokens, limits)
    # (3) the engine's parser
    try:
        compiled = cel.compile(source)
    except Exception as exc:
        message, line, column = describe_parse_error(str(exc), source, tokens)
        raise CelCompileError(message, line, column) from None
    # (4) names, functions and comprehension nesting
    roots = check_references(tokens, compiled.variables(), compiled.functions(), limits)
    # (5) what it reads, so activations convert only that (see `invariants.reads`)
    return Program(source, compiled, roots, field_reads(tokens, compiled.variables()))


def _non_boolean(value: Any) -> Outcome:
    shown = _json_safe(value)
    preview = repr(shown)
    if len(preview) > 60:
        preview = preview[:57] + "..."
    return Outcome(shown, f"expected true or false, got {_type_name(value)} {preview}")


def _type_name(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "double", str: "string", bytes: "bytes",
             list: "list", dict: "map", datetime: "timestamp", timedelta: "duration"}  # fmt: skip
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _json_safe(value: Any) -> Any:
    """A rendering of an engine value that `json.dumps` accepts, for reports.

    The same value always renders the same way (maps by sorted key), so a decision's message
    does not change from one evaluation to the next.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bytes):
        return "b64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):  # sorted: the engine hands maps over in a random order
        return dict(sorted((str(k), _json_safe(v)) for k, v in value.items()))
    return repr(value)
