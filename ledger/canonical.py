"""RFC 8785 canonical JSON (the JSON Canonicalization Scheme): Warden's one way to write JSON
that is hashed, and to check that bytes are exactly that form.

Audit entries and packet hashes depend on it: two byte strings for one value would give two
hashes for one fact. ``rfc8785`` is the authority; the common case is settled faster with
``msgspec`` (C): decode against a schema, re-encode with sorted keys and compare with the input.
The schema admits only values on which that encoder's output is byte-identical to RFC 8785, and
everything else goes to ``rfc8785``:

- no doubles (RFC 8785 writes ECMAScript's ``Number.prototype.toString``, other encoders write
  ``1.0`` or ``1e+16``): a JSON number with a fraction or exponent fails the schema;
- integers only within +-(2**53 - 1): RFC 8785 numbers are doubles, so a bigger integer literal
  stands for a double with another canonical spelling;
- nesting at most :data:`FAST_DEPTH` deep (the schema is a fixed-depth union, not recursive);
- no characters outside the Basic Multilingual Plane (any 4-byte UTF-8 sequence): RFC 8785
  orders object keys by UTF-16 code units, the encoder by code points, and the two orders
  differ only around those characters.

Strings agree everywhere else (the same escapes for ``"``, ``\\`` and control characters, the
short forms ``\\b \\t \\n \\f \\r``, lowercase ``\\u00XX`` for the rest, ``/``, DEL and
U+2028/2029 written as is; lone surrogates are not JSON text to either), as do ``true``,
``false``, ``null``, ``-0`` (read as the integer 0, written ``0``) and duplicate keys (the
re-encoding has one, the input two: never equal). tests/ledger/test_ledger_core_entry.py checks
the fast decision against ``rfc8785`` on arbitrary JSON, and the string table exhaustively;
tests/ledger/test_ledger_canonical_bytes.py checks :func:`canonical_bytes` against it.

Errors (both ``ValueError``)::

    NotCanonical            bytes that are not canonical JSON (:func:`canonical_value`)
    CanonicalizationError   a value with no canonical form: NaN, an infinity, an integer
                            beyond 2**53 (``rfc8785``'s, raised by :func:`canonical_bytes`)
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Union

import msgspec
import rfc8785

__all__ = [
    "ASTRAL",
    "FAST_DEPTH",
    "FAST_ERRORS",
    "MAX_SAFE_INTEGER",
    "UNKNOWN",
    "Canonical",
    "CanonicalizationError",
    "FastValue",
    "NotCanonical",
    "SafeInteger",
    "canonical_bytes",
    "canonical_value",
    "encode_sorted",
    "fast_canonical",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""RFC 8785 numbers are IEEE doubles: larger integers have no exact canonical form."""

FAST_DEPTH = 10
"""Containers nested deeper than this take the exact ``rfc8785`` path.

The schema is a fixed-depth union whose decoder cost more than doubles with each level when it is
built (10 levels: well under 0.1 s at import; 16 levels: over 3 s), and audit entries rarely nest
deeper than a packet's params inside a decision."""

ASTRAL = re.compile(rb"[\xf0-\xf4]")
"""A lead byte of a 4-byte UTF-8 sequence: a character outside the Basic Multilingual Plane.
Only worth searching for in bytes that are not ASCII."""

UNKNOWN: Any = object()
"""What :func:`fast_canonical` returns when it cannot decide; never a verdict."""

FAST_ERRORS = (ValueError, RecursionError)
"""What the fast decoders raise for input outside their schema: ``msgspec.DecodeError`` (and its
``ValidationError``) is a ``ValueError``, as is the ``UnicodeDecodeError`` it lets through for
invalid UTF-8."""

CanonicalizationError = rfc8785.CanonicalizationError

# FastValue: the JSON values on which encode_sorted writes RFC 8785 (see the module docstring),
# as a schema msgspec checks while decoding.
SafeInteger = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
FastValue: Any = Union[None, bool, SafeInteger, str]  # noqa: UP007 (msgspec reads the typing form)
for _ in range(FAST_DEPTH):
    FastValue = Union[None, bool, SafeInteger, str, list[FastValue], dict[str, FastValue]]  # noqa: UP007

_decode_value = msgspec.json.Decoder(FastValue).decode
# msgspec's compact encoding with sorted keys: RFC 8785 for FastValue values inside the BMP.
encode_sorted = msgspec.json.Encoder(order="sorted").encode


class NotCanonical(ValueError):
    """Bytes that are not RFC 8785 canonical JSON. ``str()`` says why."""


def _jcs_number(text: str) -> int | float:
    """RFC 8785 numbers are IEEE doubles, so a big integer literal is a double."""
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(value)


def _no_constants(name: str) -> Any:
    raise NotCanonical(f"{name} is not allowed in canonical JSON")


_SLOW = json.JSONDecoder(parse_int=_jcs_number, parse_constant=_no_constants)


def fast_canonical(raw: bytes) -> Any:
    """The JSON value of ``raw`` if the schema-checked round trip proves it canonical, else
    :data:`UNKNOWN` (which is never a verdict: ask :func:`canonical_value`)."""
    try:
        value = _decode_value(raw)
    except FAST_ERRORS:
        return UNKNOWN
    if encode_sorted(value) != raw or (not raw.isascii() and ASTRAL.search(raw) is not None):
        return UNKNOWN
    return value


def canonical_value(raw: bytes, what: str = "input") -> Any:
    """Parse ``raw`` as JSON and insist it is exactly its RFC 8785 form; return the value.

    Raises :class:`NotCanonical`; ``what`` names the bytes in its message ("entry is not valid
    UTF-8"), so a caller can pass the message on as its own.
    """
    value = fast_canonical(raw)
    if value is not UNKNOWN:
        return value
    # rfc8785 decides, and the standard library's parser explains malformed input.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotCanonical(f"{what} is not valid UTF-8") from exc
    try:
        value, end = _SLOW.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise NotCanonical(f"{what} is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise NotCanonical(f"{what} JSON is nested too deeply") from exc
    if end != len(text):
        raise NotCanonical(f"{what} has trailing data after column {end}")
    try:
        same = rfc8785.dumps(value) == raw
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise NotCanonical(f"{what} cannot be canonicalised: {exc}") from exc
    if not same:
        raise NotCanonical(f"{what} is not in RFC 8785 canonical form")
    return value


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; :class:`CanonicalizationError` if it has none.

    Fast path: msgspec's sorted encoding, kept only when the schema round trip of
    :func:`fast_canonical` proves it canonical (no doubles, safe integers, bounded depth, BMP
    only), which is the common case for audit entries and packets and costs a few microseconds
    instead of ``rfc8785``'s 50–150. Anything else (a float, a deep value, an astral character)
    takes ``rfc8785.dumps``."""
    try:
        fast = encode_sorted(value)
    except (TypeError, ValueError, OverflowError):
        fast = None
    # The round trip must give the value back: msgspec writes NaN as null, which RFC 8785 refuses.
    if fast is not None and fast_canonical(fast) == value:
        return fast
    return rfc8785.dumps(value)


class Canonical:
    """Bytes known to be the RFC 8785 form of a JSON value: made by :meth:`of`, or by
    :meth:`object` from members that are. Serialise a value once and splice it wherever it is
    needed (a packet's hash and the entry that records it), rather than encode it again."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes, _token: object) -> None:
        if _token is not _MADE_HERE:
            raise TypeError("use Canonical.of(value) or Canonical.object(members)")
        self.raw = raw

    @classmethod
    def of(cls, value: Any) -> Canonical:
        """:func:`canonical_bytes` of ``value``."""
        return cls(canonical_bytes(value), _MADE_HERE)

    @classmethod
    def object(cls, members: dict[str, Canonical]) -> Canonical:
        """The object of ``members``, keys in RFC 8785 order (UTF-16 code units)."""
        parts = [canonical_bytes(key) + b":" + members[key].raw
                 for key in sorted(members, key=lambda k: k.encode("utf-16-be"))]
        return cls(b"{" + b",".join(parts) + b"}", _MADE_HERE)


_MADE_HERE = object()
