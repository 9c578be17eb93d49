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
from datetime import UTC, datetime
from typing import Any

import rfc8785

from ledger.merkle import leaf_hash

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_PREV",
    "Entry",
    "EntryError",
    "decode_entry",
    "encode_entry",
    "format_time",
    "parse_time",
]

GENESIS_PREV = "0" * 64
ENTRY_FIELDS = frozenset({"seq", "time", "kind", "actor", "subject", "data", "prev"})

_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_PREV = re.compile(r"[0-9a-f]{64}")
# Where Python's json output may differ from RFC 8785: long integers (outside +-2**53, which
# RFC 8785 refuses) and astral-plane characters (RFC 8785 sorts keys by UTF-16 code units).
_RISKY = re.compile(rb"[0-9]{16}|[\xf0-\xf4]")


class EntryError(ValueError):
    """An entry is not valid JSON, not canonical, or not well-typed. ``str()`` says which."""


class _Float(Exception):
    """Raised by the fast decoder on the first float literal: use the slow path."""


def _float_found(_: str) -> float:
    raise _Float


def _no_constants(name: str) -> Any:
    raise EntryError(f"{name} is not allowed in canonical JSON")


_FAST = json.JSONDecoder(parse_float=_float_found, parse_constant=_no_constants)
_SLOW = json.JSONDecoder(parse_constant=_no_constants)
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


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
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise EntryError(f"entry time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise EntryError(f"entry time {text!r} is not a real date and time") from exc


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
    parse_time(obj["time"])
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


def canonical_object(raw: bytes) -> dict[str, Any]:
    """Parse ``raw`` as JSON and insist it is exactly its RFC 8785 form; return the object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryError("entry is not valid UTF-8") from exc
    try:
        try:
            obj = _FAST.decode(text)
            slow = _RISKY.search(raw) is not None
        except _Float:
            obj = _SLOW.decode(text)
            slow = True
    except json.JSONDecodeError as exc:
        raise EntryError(f"entry is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise EntryError("entry JSON is nested too deeply") from exc
    try:
        if slow:
            canon = rfc8785.dumps(obj)
        else:
            canon = _ENCODER.encode(obj).encode("utf-8")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, RecursionError) as exc:
        raise EntryError(f"entry cannot be canonicalised: {exc}") from exc
    if canon != raw:
        raise EntryError("entry is not in RFC 8785 canonical form")
    return obj  # type: ignore[no-any-return]


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
