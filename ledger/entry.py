"""Audit log entries: RFC 8785 canonical JSON, hashed exactly as stored.

An entry is ``{"seq", "time", "kind", "actor", "subject", "data", "prev"}`` serialised with the
JSON Canonicalization Scheme (RFC 8785, package ``rfc8785``). ``prev`` is the lowercase hex
RFC 6962 leaf hash of the previous entry (64 zeros for seq 0), so the entries form a hash
chain as well as the leaves of the Merkle tree.

Decoding insists the bytes are *the* canonical form: two byte strings for one entry would give
two leaf hashes for one fact. The common case is checked cheaply: for JSON without floats,
integers of 16+ digits or characters outside the Basic Multilingual Plane, Python's compact
sorted ``json`` output is byte-identical to RFC 8785, so re-encoding with the C encoder and
comparing suffices; anything else goes through ``rfc8785`` itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import rfc8785

from ledger.merkle import leaf_hash

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_PREV",
    "Entry",
    "EntryError",
    "canonical_object",
    "decode_entry",
    "encode_entry",
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
_PREV = re.compile(r"[0-9a-f]{64}")
# Characters outside the Basic Multilingual Plane (4-byte UTF-8): RFC 8785 sorts object keys by
# UTF-16 code units, Python by code points; the two orders differ only around these.
_ASTRAL = re.compile(rb"[\xf0-\xf4]")
# A canonical JSON string's body: no raw control characters, only the escapes RFC 8785 emits
# (written as an unrolled loop so the regex engine never backtracks inside a string).
_STR = rb'[^"\\\x00-\x1f]*(?:\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))[^"\\\x00-\x1f]*)*'
_LAYOUT = re.compile(
    rb'\{"actor":"(' + _STR + rb')","data":(\{.*\}),"kind":"(' + _STR + rb')",'
    rb'"prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,14}),"subject":"(' + _STR + rb')",'
    rb'"time":"([0-9]{4}-[0-9]{2}-[0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'
    rb'\.[0-9]{6}Z"\}',
    re.DOTALL,
)
_TIME_TAIL = "T00:00:00.000000Z"
_MAX_INT = 2**53 - 1  # RFC 8785 numbers are IEEE doubles: larger integers have no exact form
_valid_days: set[str] = set()


class EntryError(ValueError):
    """An entry is not valid JSON, not canonical, or not well-typed. ``str()`` says which."""


class _Float(Exception):
    """Raised by the fast decoder on a float or huge integer literal: use the slow path."""


def _float_found(_: str) -> float:
    raise _Float


def _checked_int(text: str) -> int:
    """Fast path: integers outside +-(2**53 - 1) are really doubles; send them the slow way."""
    value = int(text)
    if len(text) > 15 and not -_MAX_INT <= value <= _MAX_INT:
        raise _Float
    return value


def _jcs_number(text: str) -> int | float:
    """Slow path: RFC 8785 numbers are IEEE doubles, so a big integer literal is a double."""
    value = int(text)
    return value if -_MAX_INT <= value <= _MAX_INT else float(value)


def _no_constants(name: str) -> Any:
    raise EntryError(f"{name} is not allowed in canonical JSON")


def _refuse(value: Any) -> Any:
    raise TypeError(f"cannot encode {type(value).__name__}")


_FAST = json.JSONDecoder(
    parse_float=_float_found, parse_int=_checked_int, parse_constant=_no_constants
)
_SLOW = json.JSONDecoder(parse_int=_jcs_number, parse_constant=_no_constants)
_scan = _FAST.scan_once
# The C encoder itself (what json.dumps uses underneath), built once: compact, sorted keys,
# UTF-8 kept as is. For JSON free of floats and astral characters its output is RFC 8785's.
_encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _refuse, json.encoder.c_encode_basestring, None, ":", ",", True, False, False  # type: ignore[attr-defined]
)


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
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryError("entry is not valid UTF-8") from exc
    try:
        try:
            value, end = _scan(text, 0)
            exact = not _ASTRAL.search(raw) if not raw.isascii() else True
        except _Float:
            value, end = _SLOW.raw_decode(text)
            exact = False
    except StopIteration as exc:
        raise EntryError("entry is not valid JSON (nothing to parse at column 1)") from exc
    except json.JSONDecodeError as exc:
        raise EntryError(f"entry is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise EntryError("entry JSON is nested too deeply") from exc
    if end != len(text):
        raise EntryError(f"entry has trailing data after column {end}")
    try:
        if exact:
            same = "".join(_encode(value, 0)) == text
        else:
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
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise EntryError(f"entry data cannot be canonicalised: {exc}") from exc


def quick_decode(raw: bytes) -> tuple[int, str, str, dict[str, Any]] | None:
    """``(seq, kind, prev, data)`` of a canonical, well-typed entry, or None to mean "ask
    :func:`decode_entry`" (which either accepts it or says what is wrong).

    The verifier's hot path. A canonical entry is the fixed key order actor, data, kind, prev,
    seq, subject, time; :data:`_LAYOUT` checks that frame and its canonical strings and
    numbers, so only ``data`` needs parsing and re-encoding. Sound because any split of the
    line that passes both checks is a canonical encoding of one well-typed entry. Returning
    None is never a verdict by itself.
    """
    m = _LAYOUT.fullmatch(raw)
    if m is None:
        return None
    body, kind, prev, seq, day = m.group(2, 3, 4, 5, 7)
    if not kind:
        return None
    day_text = day.decode("ascii")
    if day_text not in _valid_days and not is_valid_time(day_text + _TIME_TAIL):
        return None
    try:
        text = body.decode("utf-8")
        data, end = _scan(text, 0)
        if type(data) is not dict or "".join(_encode(data, 0)) != text:
            return None
        if not raw.isascii():
            raw.decode("utf-8")  # the strings outside data must be UTF-8 too
            if _ASTRAL.search(body):
                return None
    except Exception:  # any parse problem: decode_entry explains it  # noqa: BLE001
        return None
    kind_text = kind.decode() if b"\\" not in kind else _SLOW.decode('"' + kind.decode() + '"')
    return int(seq), kind_text, prev.decode("ascii"), data
