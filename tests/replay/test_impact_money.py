"""What impact analysis counts as the money and the objects of an action, from its params."""

from __future__ import annotations

import pytest

from gateway.replay.impact import money_of, objects_of


@pytest.mark.parametrize(("params", "money"), [
    ({"charge": "ch_1", "amount": 5000, "currency": "USD"}, (5000, "usd")),
    ({"variant_id": "v", "delta": -3, "unit_cost": 250, "currency": "eur"}, (750, "eur")),
    ({"product_id": "p", "old_price": 2000, "new_price": 2600, "currency": "usd"}, (2600, "usd")),
    ({"title": "t", "price": 1999, "currency": "gbp"}, (1999, "gbp")),
    ({"record_id": "r", "body": "hello"}, None),
    ({"amount": 5000}, None),
    ({"amount": True, "currency": "usd"}, None),
    ({"amount": float("nan"), "currency": "usd"}, None),
    ({"delta": 1e308, "unit_cost": 1e308, "currency": "usd"}, None),
])
def test_money_comes_from_amounts_reorders_and_prices(params: dict, money: tuple | None) -> None:
    assert money_of(params) == money


def test_objects_are_named_by_the_first_id_param_or_each_contact() -> None:
    assert objects_of({"charge": "ch_1", "amount": 1}) == ["charge:ch_1"]
    assert objects_of({"contact_ids": ["a", "b"]}) == ["contact_ids:a", "contact_ids:b"]
    assert objects_of({"body": "x"}) == []
