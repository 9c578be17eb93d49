"""Audit log entries: RFC 8785 canonical JSON, hashed exactly as stored.

An entry is ``{"seq", "time", "kind", "actor", "subject", "data", "prev"}`` serialised with the
JSON Canonicalization Scheme (:mod:`ledger.canonical`). ``prev`` is the lowercase hex RFC 6962
leaf hash of the previous entry (64 zeros for seq 0), so the entries form a hash chain as well as
the leaves of the Merkle tree.

Decoding insists the bytes are *the* canonical form: two byte strings for one entry would give
two leaf hashes for one fact. The verifier's hot path (:func:`chain_fields`) settles the common
case with the same schema-checked round trip as :func:`ledger.canonical.fast_canonical`, typed
for an entry's fields; anything it cannot decide goes to :func:`decode_entry`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec

from ledger.canonical import (
    ASTRAL,
    Canonical,
    FAST_ERRORS,
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    FastValue,
    NotCanonical,
    canonical_bytes,
    canonical_value,
    encode_sorted,
)
from ledger.merkle import leaf_hash

__all__ = [
    "ENTRY_FIELDS",
    "GENESIS_PREV",
    "Entry",
    "EntryData",
    "EntryError",
    "canonical_object",
    "chain_fields",
    "decode_entry",
    "encode_entry",
    "encode_with_data",
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
_valid_days: set[str] = set()


class _Fields(msgspec.Struct, forbid_unknown_fields=True):
    """An entry's schema for the fast check; fields in canonical (sorted) order."""

    actor: str
    data: dict[str, FastValue]
    kind: Annotated[str, msgspec.Meta(min_length=1)]
    prev: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
    subject: str
    time: str


_decode_fields = msgspec.json.Decoder(_Fields).decode


class EntryError(ValueError):
    """An entry is not valid JSON, not canonical, or not well-typed. ``str()`` says which."""


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
        return canonical_value(raw, "entry")
    except NotCanonical as exc:
        raise EntryError(str(exc)) from exc


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
    except CanonicalizationError as exc:
        raise EntryError(f"entry data cannot be canonicalised: {exc}") from exc


class EntryData:
    """An entry's ``data``, already in its canonical bytes: serialised once, wherever that is
    cheapest (a request's own thread), and spliced into the entry by :func:`encode_with_data`
    when its seq and ``prev`` are known. Made only by :meth:`of` and :meth:`compose`, so the
    bytes are always the RFC 8785 form of a JSON object."""

    __slots__ = ("raw",)

    def __init__(self, value: Canonical) -> None:
        if not value.raw.startswith(b"{"):
            raise EntryError("entry data must be a JSON object")
        self.raw = value.raw

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> EntryData:
        if not isinstance(data, Mapping):
            raise EntryError("entry data must be a JSON object")
        try:
            return cls(Canonical.of(dict(data)))
        except (CanonicalizationError, TypeError, ValueError) as exc:
            raise EntryError(f"entry data cannot be canonicalised: {exc}") from exc

    @classmethod
    def compose(cls, members: dict[str, Canonical]) -> EntryData:
        """The object of members serialised beforehand (a packet hashed already, say)."""
        return cls(Canonical.object(members))


def _string(value: str, name: str) -> bytes:
    if type(value) is not str:
        raise EntryError(f"entry {name} must be a string")
    try:
        return canonical_bytes(value)
    except (CanonicalizationError, TypeError, ValueError) as exc:
        raise EntryError(f"entry {name} cannot be canonicalised: {exc}") from exc


def encode_with_data(
    seq: int, time: str, kind: str, actor: str, subject: str, data: EntryData, prev: bytes
) -> bytes:
    """:func:`encode_entry` with ``data`` serialised beforehand: the same bytes, built by
    concatenation in the canonical (sorted) order of the fields, so that the one writer of the
    log spends microseconds per entry. ``time`` is :func:`format_time`'s text, ``prev`` the raw
    previous leaf hash."""
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise EntryError("entry seq must be a non-negative integer")
    if not kind:
        raise EntryError("entry kind must not be empty")
    if not is_valid_time(time):
        raise EntryError(f"entry time {time!r} is not a real YYYY-MM-DDTHH:MM:SS.ffffffZ time")
    if len(prev) != 32:
        raise EntryError("entry prev must be a 32-byte hash")
    return b"".join((
        b'{"actor":', _string(actor, "actor"), b',"data":', data.raw, b',"kind":', _string(kind, "kind"),
        b',"prev":"', prev.hex().encode(), b'","seq":', str(seq).encode(), b',"subject":',
        _string(subject, "subject"), b',"time":"', time.encode(), b'"}',
    ))


def chain_fields(raw: bytes) -> tuple[int, str, str, dict[str, Any]] | None:
    """``(seq, kind, prev, data)`` of a canonical entry that is well-typed except that ``prev``
    is only known to be a string, or None to mean "ask :func:`decode_entry`".

    The verifier's hot path: it compares ``prev`` with the previous entry's leaf hash, which is
    64 lowercase hex digits, so equality proves the format and a mismatch goes to
    :func:`decode_entry` before it is reported. Returning None is never a verdict by itself.
    """
    try:
        e = _decode_fields(raw)
    except FAST_ERRORS:
        return None
    time = e.time
    if (
        encode_sorted(e) != raw
        or not (time[:10] in _valid_days and _CLOCK.fullmatch(time, 10) or is_valid_time(time))
        or (not raw.isascii() and ASTRAL.search(raw) is not None)
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
