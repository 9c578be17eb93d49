"""Audit log entries: RFC 8785 canonical JSON, hashed exactly as stored.

An entry is ``{"seq", "time", "kind", "actor", "subject", "data", "prev"}`` serialised with the
JSON Canonicalization Scheme (RFC 8785, package ``rfc8785``). ``prev`` is the lowercase hex
RFC 6962 leaf hash of the previous entry (64 zeros for seq 0), so the entries form a hash
chain as well as the leaves of the Merkle tree.

Decoding insists the bytes are *the* canonical form: two byte strings for one entry would give
two leaf hashes for one fact. ``rfc8785`` is the authority; the common case is settled faster
with ``msgspec`` (C): decode against a schema, re-encode with sorted keys and compare with the
input. The schema admits only values on which that encoder's output is byte-identical to RFC
8785, and everything else goes to ``rfc8785``:

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
the fast decision against ``rfc8785`` on arbitrary JSON, and the string table exhaustively.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Union

import msgspec
import rfc8785

from ledger.merkle import leaf_hash

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_PREV",
    "Entry",
    "EntryError",
    "canonical_object",
    "chain_fields",
    "decode_entry",
    "encode_entry",
    "FAST_DEPTH",
    "fast_canonical",
    "format_time",
    "is_valid_time",
    "parse_time",
    "quick_decode",
]

GENESIS_PREV = "0" * 64
ENTRY_FIELDS = frozenset({"seq", "time", "kind", "actor", "subject", "data", "prev"})

_TIME = re.compile(
    r"([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
_CLOCK = re.compile(r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z")
_PREV = re.compile(r"[0-9a-f]{64}")
# A lead byte of a 4-byte UTF-8 sequence: a character outside the Basic Multilingual Plane.
_ASTRAL = re.compile(rb"[\xf0-\xf4]")
_MAX_INT = 2**53 - 1  # RFC 8785 numbers are IEEE doubles: larger integers have no exact form
_valid_days: set[str] = set()
_UNKNOWN: Any = object()

FAST_DEPTH = 10
"""Containers nested deeper than this inside an entry take the exact ``rfc8785`` path.

The schema is a fixed-depth union whose decoder cost more than doubles with each level when it is
built (10 levels: well under 0.1 s at import; 16 levels: over 3 s), and audit entries rarely nest
deeper than a packet's params inside a decision."""

_SafeInt = Annotated[int, msgspec.Meta(ge=-_MAX_INT, le=_MAX_INT)]
_Scalar = Union[None, bool, _SafeInt, str]  # noqa: UP007 (msgspec reads the typing form)
_Value: Any = _Scalar
for _ in range(FAST_DEPTH):
    _Value = Union[None, bool, _SafeInt, str, list[_Value], dict[str, _Value]]  # noqa: UP007


class _Fields(msgspec.Struct, forbid_unknown_fields=True):
    """An entry's schema for the fast check; fields in canonical (sorted) order."""

    actor: str
    data: dict[str, _Value]
    kind: Annotated[str, msgspec.Meta(min_length=1)]
    prev: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT)]
    subject: str
    time: str


_decode_value = msgspec.json.Decoder(_Value).decode
_decode_fields = msgspec.json.Decoder(_Fields).decode
_encode = msgspec.json.Encoder(order="sorted").encode
# msgspec.DecodeError (and its ValidationError for schema violations) is a ValueError, as is
# the UnicodeDecodeError it lets through for invalid UTF-8.
_Invalid = (ValueError, RecursionError)


class EntryError(ValueError):
    """An entry is not valid JSON, not canonical, or not well-typed. ``str()`` says which."""


def _jcs_number(text: str) -> int | float:
    """RFC 8785 numbers are IEEE doubles, so a big integer literal is a double."""
    value = int(text)
    return value if -_MAX_INT <= value <= _MAX_INT else float(value)


def _no_constants(name: str) -> Any:
    raise EntryError(f"{name} is not allowed in canonical JSON")


_SLOW = json.JSONDecoder(parse_int=_jcs_number, parse_constant=_no_constants)


def fast_canonical(raw: bytes) -> Any:
    """The JSON value of ``raw`` if the schema-checked round trip proves it canonical, else
    :data:`_UNKNOWN` (which is never a verdict: ask ``rfc8785``). See the module docstring."""
    try:
        value = _decode_value(raw)
    except _Invalid:
        return _UNKNOWN
    if _encode(value) != raw or (not raw.isascii() and _ASTRAL.search(raw) is not None):
        return _UNKNOWN
    return value


def is_valid_time(text: str) -> bool:
    """True for ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` naming a real instant (cheap; dates cached)."""
    match = _TIME.fullmatch(text)
    if match is None:
        return False
    day = match.group(1)
    if day in _valid_days:
        return True
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    if len(_valid_days) > 100_000:
        _valid_days.clear()
    _valid_days.add(day)
    return True


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded log entry; ``raw`` holds the exact canonical bytes that were hashed."""

    seq: int
    time: str
    kind: str
    actor: str
    subject: str
    data: dict[str, Any]
    prev: str
    raw: bytes

    @property
    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash of :attr:`raw`; the next entry's ``prev`` is its hex."""
        return leaf_hash(self.raw)


def format_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; naive datetimes are refused (ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EntryError("entry time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; anything but that exact shape is an error."""
    if not isinstance(text, str) or not is_valid_time(text):
        raise EntryError(f"entry time {text!r} is not a real YYYY-MM-DDTHH:MM:SS.ffffffZ time")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _check_fields(obj: Any) -> None:
    """Well-typedness of a decoded entry; raises EntryError naming the first bad field."""
    if type(obj) is not dict:
        raise EntryError("entry is not a JSON object")
    if obj.keys() != ENTRY_FIELDS:
        missing = sorted(ENTRY_FIELDS - obj.keys())
        extra = sorted(obj.keys() - ENTRY_FIELDS)
        raise EntryError(f"entry fields wrong (missing {missing}, unexpected {extra})")
    seq = obj["seq"]
    if type(seq) is not int or seq < 0:
        raise EntryError("entry seq must be a non-negative integer")
    if type(obj["time"]) is not str or not is_valid_time(obj["time"]):
        raise EntryError(f"entry time {obj['time']!r} is not a real YYYY-MM-DDTHH:MM:SS.ffffffZ time")
    for name in ("kind", "actor", "subject"):
        if type(obj[name]) is not str:
            raise EntryError(f"entry {name} must be a string")
    if not obj["kind"]:
        raise EntryError("entry kind must not be empty")
    if type(obj["data"]) is not dict:
        raise EntryError("entry data must be a JSON object")
    prev = obj["prev"]
    if type(prev) is not str or not _PREV.fullmatch(prev):
        raise EntryError("entry prev must be 64 lowercase hex digits")


def canonical_object(raw: bytes) -> Any:
    """Parse ``raw`` as JSON and insist it is exactly its RFC 8785 form; return the value."""
    value = fast_canonical(raw)
    if value is not _UNKNOWN:
        return value
    # rfc8785 decides, and the standard library's parser explains malformed input.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryError("entry is not valid UTF-8") from exc
    try:
        value, end = _SLOW.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise EntryError(f"entry is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise EntryError("entry JSON is nested too deeply") from exc
    if end != len(text):
        raise EntryError(f"entry has trailing data after column {end}")
    try:
        same = rfc8785.dumps(value) == raw
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise EntryError(f"entry cannot be canonicalised: {exc}") from exc
    if not same:
        raise EntryError("entry is not in RFC 8785 canonical form")
    return value


def decode_entry(raw: bytes) -> Entry:
    """Decode stored entry bytes, checking they are canonical JSON and well-typed."""
    obj = canonical_object(raw)
    _check_fields(obj)
    return Entry(
        obj["seq"], obj["time"], obj["kind"], obj["actor"], obj["subject"], obj["data"],
        obj["prev"], raw,
    )


def encode_entry(
    seq: int,
    time: datetime | str,
    kind: str,
    actor: str,
    subject: str,
    data: dict[str, Any],
    prev: str | bytes,
) -> bytes:
    """The canonical bytes of an entry (the bytes to store, hash and export)."""
    if isinstance(time, datetime):
        time = format_time(time)
    if isinstance(prev, bytes):
        prev = prev.hex()
    obj = {
        "seq": seq, "time": time, "kind": kind, "actor": actor, "subject": subject,
        "data": data, "prev": prev,
    }
    _check_fields(obj)
    try:
        return canonical_bytes(obj)
    except rfc8785.CanonicalizationError as exc:
        raise EntryError(f"entry data cannot be canonicalised: {exc}") from exc


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value.

    Fast path: msgspec's sorted encoding, kept only when the schema round trip of
    :func:`fast_canonical` proves it canonical (no doubles, safe integers, bounded depth, BMP
    only), which is the common case for audit entries and packets and costs a few microseconds
    instead of ``rfc8785``'s 50–150. Anything else (a float, a deep value, an astral character)
    takes ``rfc8785.dumps``."""
    try:
        fast = _encode(value)
    except (TypeError, ValueError, OverflowError):
        fast = None
    # The round trip must give the value back: msgspec writes NaN as null, which RFC 8785 refuses.
    if fast is not None and fast_canonical(fast) == value:
        return fast
    return rfc8785.dumps(value)


def chain_fields(raw: bytes) -> tuple[int, str, str, dict[str, Any]] | None:
    """``(seq, kind, prev, data)`` of a canonical entry that is well-typed except that ``prev``
    is only known to be a string, or None to mean "ask :func:`decode_entry`".

    The verifier's hot path: it compares ``prev`` with the previous entry's leaf hash, which is
    64 lowercase hex digits, so equality proves the format and a mismatch goes to
    :func:`decode_entry` before it is reported. Returning None is never a verdict by itself.
    """
    try:
        e = _decode_fields(raw)
    except _Invalid:
        return None
    time = e.time
    if (
        _encode(e) != raw
        or not (time[:10] in _valid_days and _CLOCK.fullmatch(time, 10) or is_valid_time(time))
        or (not raw.isascii() and _ASTRAL.search(raw) is not None)
    ):
        return None
    return e.seq, e.kind, e.prev, e.data


def quick_decode(raw: bytes) -> tuple[int, str, str, dict[str, Any]] | None:
    """``(seq, kind, prev, data)`` of a canonical, well-typed entry, or None to mean "ask
    :func:`decode_entry`" (which either accepts it or says what is wrong). Never a verdict
    by itself; cheaper than :func:`decode_entry` (no :class:`Entry`, the schema check only)."""
    fields = chain_fields(raw)
    if fields is None or not _PREV.fullmatch(fields[2]):
        return None
    return fields
