"""activation(): what packet data is refused, with which message and path, and what is built."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import pytest

from invariants import Limits, PacketLimitError, activation, compile_expression

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Colour(enum.IntEnum):
    RED = 1


# (params, message fragment, path)
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"amount": 2**63}, "integer out of the signed 64-bit range", "params.amount"),
    ({"amount": -(2**63) - 1}, "integer out of the signed 64-bit range", "params.amount"),
    ({"ratio": float("nan")}, "nan is not a JSON number", "params.ratio"),
    ({"ratio": float("inf")}, "inf is not a JSON number", "params.ratio"),
    ({"ratio": float("-inf")}, "-inf is not a JSON number", "params.ratio"),
    ({"items": [1, (2, 3)]}, "tuple is not a JSON value", "params.items[1]"),
    ({"tags": {"a", "b"}}, "set is not a JSON value", "params.tags"),
    ({"raw": b"x"}, "bytes is not a JSON value", "params.raw"),
    ({"when": NOW}, "datetime is not a JSON value", "params.when"),
    ({"colour": Colour.RED}, "Colour is not a JSON value", "params.colour"),
    ({"m": {1: "x"}}, "object key 1 is not a string", "params.m"),
    ({"odd key": {"x": object()}}, "object is not a JSON value", 'params["odd key"].x'),
    ({"note": "a\ud800b"}, "lone surrogate", "params.note"),
]


@pytest.mark.parametrize(("params", "fragment", "path"), REFUSED)
def test_values_that_are_not_json_like_are_refused_with_their_path(
    params: dict[str, Any], fragment: str, path: str
) -> None:
    with pytest.raises(PacketLimitError) as info:
        activation(params=params, now=NOW)
    assert fragment in info.value.message
    assert info.value.path == path
    assert str(info.value) == f"{path}: {info.value.message}"


def test_int64_bounds_are_accepted() -> None:
    act = activation(params={"hi": 2**63 - 1, "lo": -(2**63)}, now=NOW)
    assert compile_expression("params.hi == 9223372036854775807 && params.lo < 0").evaluate(act).holds


@pytest.mark.parametrize("root", ["params", "evidence", "agent", "context"])
@pytest.mark.parametrize("value", [[], "x", 1, True])
def test_each_root_must_be_an_object(root: str, value: Any) -> None:
    with pytest.raises(PacketLimitError, match="must be an object") as info:
        activation(**{root: value}, now=NOW)
    assert info.value.path == root


def test_a_missing_root_is_an_empty_object() -> None:
    act = activation(now=NOW)
    assert compile_expression("size(params) == 0 && !has(evidence.x)").evaluate(act).holds
    outcome = compile_expression("evidence.reconciled == true").evaluate(act)
    assert outcome.verdict == "ERROR" and outcome.error == "no such field 'reconciled'"


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep counting itself: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_depth_limit_counts_the_root_as_one() -> None:
    activation(evidence=nested(16), now=NOW)
    with pytest.raises(PacketLimitError, match="nested more than 16 levels deep") as info:
        activation(evidence=nested(17), now=NOW)
    assert info.value.path == "evidence" + ".a" * 16
    with pytest.raises(PacketLimitError, match="nested more than 2 levels deep") as info:
        activation(params={"l": [[1]]}, now=NOW, limits=Limits(max_data_depth=2))
    assert info.value.path == "params.l[0]"


def test_a_self_referencing_structure_is_refused_not_looped() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(PacketLimitError, match="nested more than"):
        activation(context=loop, now=NOW)


def test_size_limit_counts_every_root_and_names_where_it_was_crossed() -> None:
    limits = Limits(max_data_bytes=100)
    activation(params={"s": "x" * 40}, evidence={"s": "y" * 40}, now=NOW, limits=limits)
    with pytest.raises(PacketLimitError, match="larger than 100 bytes") as info:
        activation(params={"s": "x" * 40}, evidence={"t": "y" * 60}, now=NOW, limits=limits)
    assert info.value.path == "evidence.t"


def test_size_counts_utf8_bytes() -> None:
    limits = Limits(max_data_bytes=40)  # 8 of them for the four empty-or-not roots
    activation(params={"s": "x" * 20}, now=NOW, limits=limits)
    with pytest.raises(PacketLimitError, match="larger than 40 bytes"):
        activation(params={"s": "é" * 20}, now=NOW, limits=limits)


def test_default_size_limit_is_64_kib() -> None:
    activation(evidence={"notes": "x" * 60_000}, now=NOW)
    with pytest.raises(PacketLimitError, match="larger than 65536 bytes") as info:
        activation(evidence={"notes": "x" * 70_000}, now=NOW)
    assert info.value.path == "evidence.notes"


def test_collection_item_limit_applies_to_lists_and_objects() -> None:
    limits = Limits(max_collection_items=3)
    activation(params={"ids": [1, 2, 3]}, now=NOW, limits=limits)
    with pytest.raises(PacketLimitError, match="has 4 entries; the limit is 3") as info:
        activation(params={"ids": [1, 2, 3, 4]}, now=NOW, limits=limits)
    assert info.value.path == "params.ids"
    with pytest.raises(PacketLimitError, match="has 4 entries"):
        activation(context={str(i): i for i in range(4)}, now=NOW, limits=limits)


@pytest.mark.parametrize("now", [dt.datetime(2024, 1, 1), "2024-01-01T00:00:00Z", 1700000000])
def test_now_must_be_an_aware_datetime(now: Any) -> None:
    with pytest.raises(TypeError, match="timezone-aware datetime"):
        activation(now=now)


def test_now_is_evaluated_in_utc_whatever_its_offset() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    act = activation(now=dt.datetime(2024, 5, 1, 14, 30, tzinfo=paris))
    assert compile_expression("now.getHours() == 12").evaluate(act).holds
    assert compile_expression("now == timestamp('2024-05-01T12:30:00Z')").evaluate(act).holds


def test_now_defaults_to_the_current_time() -> None:
    act = activation()
    assert compile_expression("now > timestamp('2024-01-01T00:00:00Z')").evaluate(act).holds


def test_activation_keeps_the_checked_values() -> None:
    act = activation(params={"a": 1}, agent={"name": "bot"}, now=NOW)
    assert act.variables["params"] == {"a": 1}
    assert act.variables["evidence"] == {}
    assert act.variables["now"] == NOW
    assert set(act.variables) == {"params", "evidence", "agent", "context", "now"}
