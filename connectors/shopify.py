"""Shopify: prices, listings, discount codes and stock levels, and the two tools that undo a
listing or a discount code (`shopify.unpublish_listing`, `shopify.delete_discount`).

Sandbox answers follow the Admin REST API's bodies: `{"variant": ...}` with the price as a
decimal string ("29.99"), `{"product": ...}` with numeric ids, a price rule with its discount
code, and `{"inventory_level": ...}` after an adjustment (stock starts at 100 per variant in the
sandbox and follows every recorded adjustment). Shopify's ids are numbers; an id sent as a name
(`v_88_1`) is answered with a stable number derived from it. Magic values (see
`connectors.sandbox`) are looked for in `variant_id`, `product_id`, `code` and `discount_id`.

Summaries carry what undoing an action needs, in both modes (`connectors.live.shopify` writes
the same keys): the price before a change (`old_price`, a decimal string), whether a listing was
`created` by the action, and the discount's GraphQL id (`discount_id`). The compensators below
read them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from connectors.base import Compensation, NotReversible, ToolSpec
from connectors.call_ledger import Answer, LedgerView
from connectors.fields import (
    MAX_SAFE_INTEGER,
    Currency,
    GenericId,
    Number,
    Params,
    Price,
    decimal_string,
    minor_unit_exponent,
    whole_number,
)
from connectors.sandbox import SandboxConnector, new_number, stable_number
from dsl.model import Risk

_PRICE = "in the currency's minor unit (cents for usd): 2999 is $29.99"
_CURRENCY = "ISO 4217 currency code of the shop, lower case (usd, eur)"
SANDBOX_LOCATION_ID = 65_000_000_001
SANDBOX_INITIAL_STOCK = 100


class UpdatePriceParams(Params):
    """Change what customers pay for one variant of a product."""

    product_id: GenericId = Field(description="the product whose variant is repriced")
    variant_id: GenericId = Field(description="the variant repriced")
    old_price: Price = Field(description=f"the price now, {_PRICE}; 0 if it has none")
    new_price: Price = Field(description=f"the price after the change, {_PRICE}")
    currency: Currency = Field(description=_CURRENCY)


class PublishListingParams(Params):
    """Publish a product listing in the store (create it, or update `product_id`)."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="the product title customers see")
    body_html: Annotated[str, StringConstraints(max_length=60_000)] = Field(
        description="the product description, as HTML (policies read it: it is required)")
    price: Price = Field(description=f"the price of the default variant, {_PRICE}")
    currency: Currency = Field(description=_CURRENCY)
    product_id: GenericId | None = Field(
        None, description="an existing product to update and publish; absent: a new product")


class CreateDiscountParams(Params):
    """Create a percentage discount code on the whole order."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=255,
                                           pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")] = Field(
        description="the code customers type at checkout (letters, digits, - and _)")
    percent_off: Annotated[Number, Field(ge=0, le=100)] = Field(
        description="the discount in percent, 0 to 100 (15 is 15% off)")
    starts_at: AwareDatetime | None = Field(
        None, description="when the code starts working (ISO 8601 with a time zone); "
                          "absent: now")
    ends_at: AwareDatetime | None = Field(
        None, description="when the code stops working (ISO 8601 with a time zone); "
                          "absent: never")

    @model_validator(mode="after")
    def _ends_after_start(self) -> CreateDiscountParams:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be later than starts_at")
        return self


class AdjustInventoryParams(Params):
    """Change the stock of a variant: a reorder (positive) or a write-off (negative)."""

    variant_id: GenericId = Field(description="the variant whose stock changes")
    delta: whole_number(-1_000_000_000, 1_000_000_000) = Field(  # type: ignore[valid-type]
        description="units to add (positive: a reorder) or remove (negative); not 0")
    unit_cost: Price = Field(description=f"what one unit costs us, {_PRICE}")
    currency: Currency = Field(description=_CURRENCY)

    @model_validator(mode="after")
    def _delta_not_zero(self) -> AdjustInventoryParams:
        if self.delta == 0:
            raise ValueError("delta must not be 0: there is nothing to adjust")
        return self


class UnpublishListingParams(Params):
    """Take a listing off the store: the product goes back to draft, on every channel."""

    product_id: GenericId = Field(description="the product to take off sale (its number or gid)")


class DeleteDiscountParams(Params):
    """Delete a discount code: customers can no longer use it."""

    discount_id: GenericId = Field(
        description="the code discount to delete (gid://shopify/DiscountCodeNode/..., or its "
                    "number)")


def minor_units(amount: str, currency: str) -> int:
    """A decimal string in the currency's unit as minor units: "40.00" usd → 4000."""
    try:
        value = Decimal(amount).scaleb(minor_unit_exponent(currency))
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if value != value.to_integral_value():
        raise ValueError(f"{amount!r} has more decimals than {currency} has")
    return int(value)


def restore_price(params: Mapping[str, Any], external_id: str,
                  summary: Mapping[str, Any]) -> Compensation:
    """A price change is undone by setting the price it replaced: the price Shopify showed just
    before the change (the summary's `old_price`), else the one the packet declared."""
    old = params["old_price"]
    if isinstance(summary.get("old_price"), str):
        try:
            old = minor_units(summary["old_price"], params["currency"])
        except ValueError as exc:
            raise NotReversible(f"shopify.update_price: the recorded old price is unreadable "
                                f"({exc})") from None
    return Compensation("shopify.update_price", {
        "product_id": params["product_id"], "variant_id": params["variant_id"],
        "old_price": params["new_price"], "new_price": old, "currency": params["currency"]})


def unpublish_created_listing(params: Mapping[str, Any], external_id: str,
                              summary: Mapping[str, Any]) -> Compensation:
    """A listing the action created is undone by taking the product off sale (draft); one it
    updated in place cannot be: its earlier title, text and price were not recorded."""
    if not summary.get("created"):
        raise NotReversible(
            "shopify.publish_listing updated an existing product in place; its previous title, "
            "description and price were not recorded, so Warden cannot put them back (publish "
            "the earlier text again with shopify.publish_listing, or edit it in Shopify)")
    product = summary.get("product_id") or external_id
    return Compensation("shopify.unpublish_listing", {"product_id": str(product)})


def delete_created_discount(params: Mapping[str, Any], external_id: str,
                            summary: Mapping[str, Any]) -> Compensation:
    """A discount code is undone by deleting it (orders already placed keep their discount)."""
    discount = summary.get("discount_id") or summary.get("price_rule_id") or external_id
    return Compensation("shopify.delete_discount", {"discount_id": str(discount)})


def reverse_adjustment(params: Mapping[str, Any], external_id: str,
                       summary: Mapping[str, Any]) -> Compensation:
    """A stock adjustment is undone by the opposite adjustment of the same variant."""
    return Compensation("shopify.adjust_inventory", {
        "variant_id": params["variant_id"], "delta": -params["delta"],
        "unit_cost": params["unit_cost"], "currency": params["currency"]})


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("shopify.update_price", UpdatePriceParams, Risk.L1,
             "Change the price of a product variant.", reversible=True,
             compensation="set the price back: shopify.update_price with old_price and "
                          "new_price swapped",
             compensator=restore_price),
    ToolSpec("shopify.publish_listing", PublishListingParams, Risk.L1,
             "Publish a product listing (title, description, price).", reversible=True,
             compensation="shopify.unpublish_listing of a product the action created (status "
                          "draft); a listing updated in place needs its previous text published "
                          "again",
             compensator=unpublish_created_listing),
    ToolSpec("shopify.create_discount", CreateDiscountParams, Risk.L1,
             "Create a percentage discount code.", reversible=True,
             compensation="shopify.delete_discount of the code (discountCodeDelete); orders "
                          "already placed keep their discount",
             compensator=delete_created_discount),
    ToolSpec("shopify.adjust_inventory", AdjustInventoryParams, Risk.L1,
             "Adjust a variant's stock level (reorder or write-off).", reversible=True,
             compensation="adjust by the opposite delta (shopify.adjust_inventory with -delta); "
                          "a supplier order behind a reorder is cancelled outside Warden",
             compensator=reverse_adjustment),
    ToolSpec("shopify.unpublish_listing", UnpublishListingParams, Risk.L1,
             "Take a product listing off sale (status draft on every channel).",
             reversible=False,
             compensation="none through this tool: publish the listing again with "
                          "shopify.publish_listing"),
    ToolSpec("shopify.delete_discount", DeleteDiscountParams, Risk.L1,
             "Delete a discount code so customers can no longer use it.", reversible=False,
             compensation="none: a deleted code is gone; create it again with "
                          "shopify.create_discount"),
)


def numeric_id(value: str | None, kind: str) -> int:
    """Shopify's number for an id: `123` and `gid://shopify/Product/123` are 123; a name
    (`p_88`) gets a stable 13-digit number; None a fresh one."""
    if value is None:
        return new_number()
    match = re.fullmatch(r"(?:gid://shopify/\w+/)?([0-9]{1,15})", value)
    if match and 0 < int(match[1]) <= MAX_SAFE_INTEGER:
        return int(match[1])
    return stable_number(kind, value)


def inventory_item_id(variant_id: int) -> int:
    """The sandbox's inventory item of a variant (Shopify keeps stock per inventory item)."""
    return stable_number("InventoryItem", variant_id)


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="seconds")


def _variant(variant_id: int, product_id: int, price: str, now: str) -> dict[str, Any]:
    return {"id": variant_id, "product_id": product_id, "title": "Default Title",
            "price": price, "compare_at_price": None, "sku": None, "position": 1,
            "inventory_item_id": inventory_item_id(variant_id),
            "inventory_management": "shopify", "created_at": now, "updated_at": now,
            "admin_graphql_api_id": _gid("ProductVariant", variant_id)}


class ShopifySandbox(SandboxConnector):
    """Shopify without the network: the Admin REST API's bodies, recorded per key."""

    name = "shopify"
    tools = TOOLS
    magic_fields = {"shopify.update_price": ("variant_id", "product_id"),
                    "shopify.publish_listing": ("product_id",),
                    "shopify.create_discount": ("code",),
                    "shopify.adjust_inventory": ("variant_id",),
                    "shopify.unpublish_listing": ("product_id",),
                    "shopify.delete_discount": ("discount_id",)}
    #: a refusal is Shopify's userError: the input could not be processed (REST's 422)
    declined_codes = {spec.name: "unprocessable_entity" for spec in TOOLS}

    def answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        now = _iso()
        if tool == "shopify.update_price":
            variant_id = numeric_id(params["variant_id"], "ProductVariant")
            price = decimal_string(params["new_price"], params["currency"])
            variant = _variant(variant_id, numeric_id(params["product_id"], "Product"),
                               price, now)
            return str(variant_id), {"variant": variant}, {
                "variant_id": params["variant_id"], "product_id": params["product_id"],
                "shopify_variant_id": variant_id, "price": price,
                "old_price": decimal_string(params["old_price"], params["currency"]),
                "old_price_source": "declared", "currency": params["currency"]}
        if tool == "shopify.publish_listing":
            return self._listing(params, now)
        if tool == "shopify.create_discount":
            return self._discount(params, now)
        if tool == "shopify.unpublish_listing":
            return self._unpublish(params, now)
        if tool == "shopify.delete_discount":
            return self._delete_discount(params)
        return self._inventory(params, view, now)

    def _listing(self, params: Mapping[str, Any], now: str) -> Answer:
        product_id = numeric_id(params.get("product_id"), "Product")
        price = decimal_string(params["price"], params["currency"])
        handle = re.sub(r"[^a-z0-9]+", "-", params["title"].lower()).strip("-") or "product"
        body = params["body_html"]
        product = {"id": product_id, "title": params["title"], "body_html": body,
                   "vendor": "Sandbox store", "product_type": "", "handle": handle,
                   "status": "active", "published_at": now, "published_scope": "web",
                   "created_at": now, "updated_at": now, "tags": "",
                   "variants": [_variant(numeric_id(None, "ProductVariant"), product_id,
                                         price, now)],
                   "admin_graphql_api_id": _gid("Product", product_id)}
        return str(product_id), {"product": product}, {
            "product_id": product_id, "handle": handle, "title": params["title"][:120],
            "price": price, "currency": params["currency"], "status": "active",
            "body_html_sha256": hashlib.sha256(body.encode()).hexdigest(),
            "created": params.get("product_id") is None}

    def _unpublish(self, params: Mapping[str, Any], now: str) -> Answer:
        product_id = numeric_id(params["product_id"], "Product")
        product = {"id": product_id, "status": "draft", "published_at": None,
                   "updated_at": now, "admin_graphql_api_id": _gid("Product", product_id)}
        return str(product_id), {"product": product}, {
            "product_id": product_id, "status": "draft"}

    def _delete_discount(self, params: Mapping[str, Any]) -> Answer:
        rule_id = numeric_id(params["discount_id"], "DiscountCodeNode")
        # DELETE /price_rules/{id}.json answers 204 No Content: an empty body
        return str(rule_id), {}, {"discount_id": _gid("DiscountCodeNode", rule_id),
                                  "price_rule_id": rule_id, "deleted": True}

    def _discount(self, params: Mapping[str, Any], now: str) -> Answer:
        rule_id, code_id = numeric_id(None, "PriceRule"), numeric_id(None, "DiscountCode")
        starts_at = params.get("starts_at") or now
        rule = {"id": rule_id, "title": params["code"], "value_type": "percentage",
                "value": f"-{float(params['percent_off'])}", "target_type": "line_item",
                "target_selection": "all", "allocation_method": "across",
                "customer_selection": "all", "once_per_customer": False, "usage_limit": None,
                "starts_at": starts_at, "ends_at": params.get("ends_at"), "created_at": now,
                "updated_at": now, "admin_graphql_api_id": _gid("PriceRule", rule_id)}
        code = {"id": code_id, "price_rule_id": rule_id, "code": params["code"],
                "usage_count": 0, "created_at": now, "updated_at": now}
        return str(rule_id), {"price_rule": rule, "discount_code": code}, {
            "price_rule_id": rule_id, "discount_code_id": code_id,
            "discount_id": _gid("DiscountCodeNode", rule_id), "code": params["code"],
            "percent_off": params["percent_off"], "starts_at": starts_at,
            "ends_at": params.get("ends_at")}

    def _inventory(self, params: Mapping[str, Any], view: LedgerView, now: str) -> Answer:
        item_id = inventory_item_id(numeric_id(params["variant_id"], "ProductVariant"))
        available = SANDBOX_INITIAL_STOCK
        for earlier in view.responses("shopify.adjust_inventory",
                                      {"$.inventory_level.inventory_item_id": item_id}):
            available = earlier["inventory_level"]["available"]
        available += params["delta"]
        level = {"inventory_item_id": item_id, "location_id": SANDBOX_LOCATION_ID,
                 "available": available, "updated_at": now,
                 "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{SANDBOX_LOCATION_ID}"
                                         f"?inventory_item_id={item_id}"}
        return str(item_id), {"inventory_level": level}, {
            "variant_id": params["variant_id"], "inventory_item_id": item_id,
            "location_id": SANDBOX_LOCATION_ID, "delta": params["delta"],
            "available": available, "unit_cost": params["unit_cost"],
            "currency": params["currency"]}
