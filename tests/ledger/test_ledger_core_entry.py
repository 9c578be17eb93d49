"""Canonical entries: RFC 8785 bytes in, the same bytes out; the fast path never disagrees."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import FAST_DEPTH, Canonical, fast_canonical
from ledger.canonical import UNKNOWN as _UNKNOWN
from ledger.canonical import encode_sorted as _encode
from ledger.entry import (
    GENESIS_PREV,
    EntryData,
    EntryError,
    canonical_object,
    decode_entry,
    encode_entry,
    encode_with_data,
    format_time,
    parse_time,
    quick_decode,
)

TIME = "2025-03-04T05:06:07.123456Z"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
datas = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def _jcs_loads(raw: bytes) -> Any:
    """The oracle's reading: every JSON number is a double, as RFC 8785 says."""
    return json.loads(raw, parse_int=lambda t: int(t) if abs(int(t)) < 2**53 else float(t))


def _fields(raw: bytes) -> tuple[int, str, str, dict[str, Any]]:
    e = decode_entry(raw)
    return e.seq, e.kind, e.prev, e.data


@settings(max_examples=300, deadline=None)
@given(
    data=datas,
    seq=st.integers(0, 2**53 - 1),
    kind=st.text(min_size=1, max_size=12),
    actor=st.text(max_size=12),
    subject=st.text(max_size=12),
)
def test_encoded_entries_decode_to_themselves(
    data: dict[str, Any], seq: int, kind: str, actor: str, subject: str
) -> None:
    raw = encode_entry(seq, TIME, kind, actor, subject, data, GENESIS_PREV)
    assert raw == rfc8785.dumps(_jcs_loads(raw))
    entry = decode_entry(raw)
    assert (entry.seq, entry.kind, entry.actor, entry.subject, entry.prev) == (
        seq, kind, actor, subject, GENESIS_PREV,
    )
    assert entry.raw == raw
    fast = quick_decode(raw)
    assert fast is None or fast == _fields(raw)


@settings(max_examples=500, deadline=None)
@given(data=datas, pos=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_fast_path_never_accepts_what_decode_entry_refuses(
    data: dict[str, Any], pos: int, byte: int
) -> None:
    raw = bytearray(encode_entry(7, TIME, "decision", "a", "s", data, GENESIS_PREV))
    raw[pos % len(raw)] = byte
    mutated = bytes(raw)
    try:
        expected: Any = _fields(mutated)
    except EntryError:
        expected = None
    fast = quick_decode(mutated)
    if fast is not None:
        assert fast == expected
        # and the oracle agrees that these bytes are canonical
        assert rfc8785.dumps(_jcs_loads(mutated)) == mutated


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"\xff", "not valid UTF-8"),
        (b"[1]", "not a JSON object"),
        (b'{"a":1} ', "trailing data"),
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a":1.0}', "canonical"),
        (b'{"a":1e2}', "canonical"),
        (b'{"a":"\\u0041"}', "canonical"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":1,"a":1}', "canonical"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":123456789012345678}', "canonical"),  # as a double it is ...680
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_or_non_canonical_bytes_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        decode_entry(raw)
    assert quick_decode(raw) is None


def _obj(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "seq": 1, "time": TIME, "kind": "decision", "actor": "a", "subject": "s", "data": {},
        "prev": GENESIS_PREV,
    }
    base.update(changes)
    for k in [k for k, v in changes.items() if v is KeyError]:
        del base[k]
    return rfc8785.dumps(base)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_obj(seq=-1), "seq must be a non-negative integer"),
        (_obj(seq=True), "seq must be a non-negative integer"),
        (_obj(seq="1"), "seq must be a non-negative integer"),
        (_obj(time="2025-02-30T00:00:00.000000Z"), "real"),
        (_obj(time="2025-01-01T00:00:00Z"), "real"),
        (_obj(time="2025-01-01T24:00:00.000000Z"), "real"),
        (_obj(kind=""), "kind must not be empty"),
        (_obj(actor=1), "actor must be a string"),
        (_obj(data=[]), "data must be a JSON object"),
        (_obj(prev="ABC" + GENESIS_PREV[3:]), "prev must be 64 lowercase hex"),
        (_obj(prev=GENESIS_PREV[1:]), "prev must be 64 lowercase hex"),
        (_obj(extra=1), "unexpected \\['extra'\\]"),
        (_obj(subject=KeyError), "missing \\['subject'\\]"),
    ],
)
def test_ill_typed_entries_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        decode_entry(raw)
    assert quick_decode(raw) is None


def test_integral_doubles_beyond_2_53_round_trip() -> None:
    raw = encode_entry(1, TIME, "decision", "a", "s", {"big": 2.0**60}, GENESIS_PREV)
    assert b'"big":1152921504606847000' in raw  # ECMAScript's shortest form
    assert decode_entry(raw).data == {"big": 2.0**60}


def test_time_formatting() -> None:
    moment = datetime(2025, 3, 4, 6, 6, 7, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == TIME
    assert parse_time(TIME) == moment.astimezone(UTC)
    with pytest.raises(EntryError, match="timezone-aware"):
        format_time(datetime(2025, 1, 1))
    raw = encode_entry(0, moment, "decision", "a", "s", {}, bytes(32))
    assert decode_entry(raw).time == TIME and decode_entry(raw).prev == GENESIS_PREV


def test_escapes_and_astral_characters_take_the_exact_path() -> None:
    data = {"\ue000": 1, "\U0001f600": 2, "ctl": "\x01\n\t\"\\", "f": 0.5}
    raw = encode_entry(3, TIME, "decision", "\u00e9", "s\n", data, GENESIS_PREV)
    entry = decode_entry(raw)
    assert entry.data == data and entry.actor == "\u00e9" and entry.subject == "s\n"
    assert list(json.loads(raw)["data"]) == ["ctl", "f", "\U0001f600", "\ue000"]  # UTF-16 order


# -- the fast canonical check against rfc8785 ------------------------------------------------

wild_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # well past 2**53 and 2**64 too
    | st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 2**64 - 1, 2**64, 0])
    | st.floats(allow_nan=False, allow_infinity=False)  # includes -0.0
    | st.text(),  # control characters, U+2028/2029, astral characters
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=16,
)


def _as_doubles(value: Any) -> Any:
    """What RFC 8785 makes of a value: integers past 2**53 are doubles."""
    if type(value) is int and abs(value) > 2**53 - 1:
        return float(value)
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    return value


def _oracle(raw: bytes) -> bool:
    """The definition: ``raw`` is canonical iff rfc8785 re-encodes its reading to itself."""
    try:
        return rfc8785.dumps(_jcs_loads(raw)) == raw
    except (ValueError, TypeError, rfc8785.CanonicalizationError, RecursionError):
        return False


def _spellings(value: Any) -> list[bytes]:
    """The canonical bytes of ``value`` and other ways to write it (escapes, spacing, order)."""
    out = [
        json.dumps(value, ensure_ascii=True).encode(),  # \\uXXXX escapes, spaces
        json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(),
    ]
    try:
        canonical = rfc8785.dumps(_as_doubles(value))
    except rfc8785.CanonicalizationError:
        return out
    out.append(canonical)
    # the same text with every \u00XX escape in upper case, and with "/" escaped
    out.append(re.sub(rb"\\u00([0-9a-f]{2})", lambda m: b"\\u00" + m.group(1).upper(), canonical))
    out.append(canonical.replace(b"/", b"\\/"))
    return out


@settings(max_examples=1000, deadline=None)
@given(value=wild_values)
def test_fast_check_agrees_with_rfc8785(value: Any) -> None:
    for raw in _spellings(value):
        expected = _oracle(raw)
        fast = fast_canonical(raw)
        if fast is not _UNKNOWN:  # the fast check only ever accepts canonical bytes ...
            assert expected, raw
            assert fast == _jcs_loads(raw)
        try:  # ... and with the exact fallback, canonical_object decides exactly like rfc8785
            canonical_object(raw)
            accepted = True
        except EntryError:
            accepted = False
        assert accepted == expected, raw


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=6), wild_values, max_size=5))
def test_fast_entry_check_agrees_with_rfc8785(data: dict[str, Any]) -> None:
    obj = {"seq": 1, "time": TIME, "kind": "k", "actor": "a", "subject": "s", "data": data,
           "prev": GENESIS_PREV}
    for raw in _spellings(obj):
        fast = quick_decode(raw)
        if fast is not None:
            assert _oracle(raw)
            assert fast == _fields(raw)


def test_encoder_strings_match_rfc8785_for_every_character() -> None:
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert _encode(everything) == rfc8785.dumps(everything)


def test_key_order_matches_rfc8785_inside_the_basic_multilingual_plane() -> None:
    keys = {chr(c): 0 for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF}
    assert _encode(keys) == rfc8785.dumps(keys)
    astral = {"\ue000": 1, "\U0001f600": 2}  # why astral characters take the exact path
    assert _encode(astral) != rfc8785.dumps(astral)
    raw = rfc8785.dumps(astral)
    assert fast_canonical(raw) is _UNKNOWN and canonical_object(raw) == astral


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (b'{"a":9007199254740991}', True),
        (b'{"a":9007199254740992}', True),  # 2**53 is a double with this exact spelling
        (b'{"a":9007199254740993}', False),  # the double is ...992
        (b'{"a":18446744073709551616}', False),  # 2**64: ECMAScript writes ...552000
        (b'{"a":18446744073709552000}', True),
        (b'{"a":-0}', False),
        (b'{"a":0.5}', True),
        (b'{"a":1.0}', False),
        (b'{"a":1e+21}', True),
        (b'{"a":1e21}', False),
        (b'{"a":"\\u001f"}', True),
        (b'{"a":"\\u001F"}', False),
        (b'{"a":"\\/"}', False),
        (b'{"a":"\xe2\x80\xa8"}', True),  # U+2028 as is
        (b'{"a":"\\u2028"}', False),
        (b'{"a":' + b"[" * (FAST_DEPTH + 2) + b"1" + b"]" * (FAST_DEPTH + 2) + b"}", True),
    ],
)
def test_number_and_escape_edge_cases(raw: bytes, canonical: bool) -> None:
    assert _oracle(raw) is canonical
    try:
        canonical_object(raw)
        accepted = True
    except EntryError:
        accepted = False
    assert accepted is canonical
    if fast_canonical(raw) is not _UNKNOWN:
        assert canonical


@settings(max_examples=300, deadline=None)
@given(
    data=datas,
    seq=st.integers(0, 2**53 - 1),
    kind=st.text(min_size=1, max_size=12),
    actor=st.text(max_size=12),
    subject=st.text(max_size=12),
    prev=st.binary(min_size=32, max_size=32),
)
def test_an_entry_from_data_serialised_beforehand_is_the_same_bytes(
    data: dict[str, Any], seq: int, kind: str, actor: str, subject: str, prev: bytes
) -> None:
    """The log writer's splice (`encode_with_data`) and the one-off path (`encode_entry`) write
    one entry the same way, to the byte: one fact, one leaf hash."""
    try:
        expected = encode_entry(seq, TIME, kind, actor, subject, data, prev)
    except EntryError:
        with pytest.raises(EntryError):
            encode_with_data(seq, TIME, kind, actor, subject, EntryData.of(data), prev)
        return
    assert encode_with_data(seq, TIME, kind, actor, subject, EntryData.of(data), prev) == expected


@settings(max_examples=300, deadline=None)
@given(members=st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_an_object_composed_of_canonical_members_is_the_canonical_object(members: dict[str, Any]) -> None:
    """`EntryData.compose` (a packet hashed once, then spliced into its entry) gives the bytes of
    serialising the whole object at once, keys in RFC 8785 order included."""
    try:
        parts = {key: Canonical.of(value) for key, value in members.items()}
    except (ValueError, TypeError):
        return  # a value with no canonical form: nothing to compose
    assert EntryData.compose(parts).raw == rfc8785.dumps(members)


def test_entry_data_is_an_object_and_canonical() -> None:
    with pytest.raises(EntryError):
        EntryData.of([1, 2])  # type: ignore[arg-type]
    with pytest.raises(EntryError):
        EntryData.of({"x": float("nan")})
    with pytest.raises(TypeError):
        Canonical(b"{}", object())
