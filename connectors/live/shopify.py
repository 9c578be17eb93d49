"""Shopify's Admin GraphQL API: prices, listings, discount codes, stock levels, and the two
tools that undo a listing or a discount. The endpoint, its pinned version, the cost-based rate
limit and the error mapping are `connectors.live.shopify_graphql`'s.

Ids. Packets carry Shopify's numbers (`44012345678901`), GraphQL ids
(`gid://shopify/ProductVariant/44012345678901`) or names. Numbers and gids of the right kind map
directly; a gid of another kind is refused (`invalid_id`). A name is looked up the way a merchant
names things: a variant by its SKU (`productVariants(query: "sku:...")`, exactly one variant must
carry it, else `not_found` / `ambiguous_id`), a product by its handle (`productByIdentifier`), a
discount by its code (`codeDiscountNodeByCode`).

Prices are in the shop's currency: a packet in another currency is refused
(`currency_mismatch`), the shop's currency being read once per process.

Idempotency: the decision id is the key wherever Shopify takes one, and where it does not, a
re-drive after a crash finds its own effect instead of acting twice:

    update_price       sets an absolute price (`productVariantsBulkUpdate`): safe twice. The
                       variant is read first, so the summary's `old_price` is the price Shopify
                       showed just before the change (`old_price_source: "seen"`); on a re-drive
                       that finds the new price already set, it is the packet's declared
                       old price (`"declared"`).
    publish_listing    a new product is created with the tag `warden:<decision id>` and looked
                       up by that tag before any create; an update in place writes absolute
                       values (title, text, status, price) and adds the tag. Shopify's product
                       search is updated asynchronously (seconds), so a product created moments
                       ago may not show yet: within `search_settle_seconds` of an attempt that
                       may have created one (this process's last attempt, or reconciliation's
                       `first_attempt_at`), not finding it is a TransientError
                       (`search_settling`), never a second create.
    create_discount    a code is unique per shop. It is looked up by code first
                       (`codeDiscountNodeByCode`); the discount's title carries
                       `warden:<decision id>`, so a code that exists with our mark is our
                       effect (replayed), and one without it is `code_taken`.
    adjust_inventory   `inventoryAdjustQuantities @idempotent(key: <decision id>)` (required
                       from 2026-04): Shopify answers the same key with the original result.
                       The adjustment's `referenceDocumentUri` is `warden://decisions/<id>`;
                       the stock location is `location_id` from the config, else the shop's
                       first location (read once per process).
    unpublish_listing  sets status DRAFT (absolute): safe twice.
    delete_discount    a discount already gone counts as deleted (`already_absent`): its id
                       comes from our own record of the create.

Reconciliation (`find`): update_price: the variant's price equals the new price; publish_listing:
the product carries our tag, is active, priced and published (an incomplete one is None: the
call completes it, finding the product by its tag); create_discount: the code exists with our
mark; adjust_inventory: the adjustment is sent again with the same key, which Shopify answers
with the original result (or carries out once). Shopify keeps keys for 24 hours, so after 23
hours this refuses (`reconciliation_window_passed`): the stock must be checked by hand.
unpublish_listing: status is DRAFT; delete_discount: the discount is gone.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import ExecutionResult, PermanentError, TransientError
from connectors.fields import decimal_string
from connectors.live.base import LiveConnector
from connectors.live.config import ShopifyConfig
from connectors.live.runner import CallRunner
from connectors.live.shopify_graphql import (
    ADJUST_INVENTORY,
    CREATE_DISCOUNT,
    CREATE_PRODUCT,
    DELETE_DISCOUNT,
    DISCOUNT,
    DISCOUNT_BY_CODE,
    LISTING,
    LISTING_BY_HANDLE,
    LISTING_BY_TAG,
    LOCATIONS,
    PRODUCT,
    PRODUCT_BY_HANDLE,
    PUBLICATIONS,
    PUBLISH,
    SHOP,
    UPDATE_PRICE,
    UPDATE_PRODUCT,
    VARIANT,
    VARIANT_BY_SKU,
    ShopifyGraphql,
)
from connectors.live.throttle import OnWait
from connectors.shopify import TOOLS, minor_units

#: how long Shopify's product search may take to show a product just created
SEARCH_SETTLE_SECONDS = 30.0
#: Shopify keeps an @idempotent key for 24 hours; reconciliation re-sends within 23
IDEMPOTENCY_WINDOW_SECONDS = 23 * 3600.0
TAG_PREFIX = "warden:"


_GID = re.compile(r"gid://shopify/(?P<kind>[A-Za-z]+)/(?P<number>[0-9]{1,19})")
_ONLINE_STORE = "Online Store"


class ShopifyLive(LiveConnector):
    """Shopify for real: one shop, its Admin GraphQL API at the pinned version."""

    name = "shopify"
    tools = TOOLS
    #: how long a product just created may stay out of the search (tests shorten it)
    search_settle_seconds = SEARCH_SETTLE_SECONDS

    def __init__(self, config: ShopifyConfig, *, runner: CallRunner, timeout: float,
                 on_wait: OnWait | None = None) -> None:
        super().__init__(runner=runner, timeout=timeout, on_wait=on_wait)
        self.config = config
        self.graphql = ShopifyGraphql(config, timeout=timeout, on_wait=on_wait, name=self.name)
        # per process: the shop's currency, location and Online Store publication
        self._currency: str | None = None
        self._location: str | None = None
        self._publication: str | None = None
        # listings this process may have created, by decision id: when, and the product
        self._creating: dict[str, float] = {}
        self._created: dict[str, str] = {}

    # ---------------------------------------------------------------------- the connector

    async def call(self, tool: str, params: Mapping[str, Any], *,
                   idempotency_key: str) -> ExecutionResult:
        return await self._handler(tool)(params, idempotency_key)

    async def find(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                   first_attempt_at: float) -> ExecutionResult | None:
        if tool == "shopify.update_price":
            return await self._find_price(params)
        if tool == "shopify.publish_listing":
            return await self._find_listing(params, idempotency_key, first_attempt_at)
        if tool == "shopify.create_discount":
            return await self._find_discount(params, idempotency_key)
        if tool == "shopify.adjust_inventory":
            if time.time() - first_attempt_at > IDEMPOTENCY_WINDOW_SECONDS:
                raise PermanentError(
                    f"{tool}: the first attempt was more than 23 hours ago, and Shopify keeps an "
                    "idempotency key for 24: whether the stock changed cannot be told safely "
                    "through the API; check the variant's stock in Shopify by hand",
                    code="reconciliation_window_passed")
            return await self._adjust(params, idempotency_key)
        if tool == "shopify.unpublish_listing":
            product = await self._product(params["product_id"], tool)
            return self._unpublished(product, {}) if product["status"] == "DRAFT" else None
        return await self._find_deleted_discount(params)

    async def read_only(self) -> str:
        shop = (await self.graphql.request(SHOP, {}, what="shopify check"))["shop"]
        self._currency = shop["currencyCode"]
        plan = (shop.get("plan") or {}).get("displayName") or "unknown plan"
        return f"shop {shop['name']} readable ({shop['myshopifyDomain']}, {plan})"

    async def aclose(self) -> None:
        await self.graphql.aclose()

    def _handler(self, tool: str) -> Callable[[Mapping[str, Any], str],
                                              Awaitable[ExecutionResult]]:
        return {"shopify.update_price": self._update_price,
                "shopify.publish_listing": self._publish_listing,
                "shopify.create_discount": self._create_discount,
                "shopify.adjust_inventory": self._adjust,
                "shopify.unpublish_listing": self._unpublish_listing,
                "shopify.delete_discount": self._delete_discount}[tool]

    # ---------------------------------------------------------------------- update_price

    async def _update_price(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.update_price"
        await self._check_currency(params["currency"], what)
        variant = await self._variant(params["variant_id"], what)
        # the packet's product when it names one by number (Shopify refuses a variant that is
        # not that product's), else the variant's own
        product = _gid(params["product_id"], "Product", what) or variant["product"]["id"]
        price = decimal_string(params["new_price"], params["currency"])
        data = await self.graphql.request(UPDATE_PRICE, {
            "productId": product, "variants": [{"id": variant["id"], "price": price}]}, what=what)
        payload = data["productVariantsBulkUpdate"]
        self.graphql.user_errors(payload, what)
        return self._priced(params, variant["id"], product, seen=variant["price"], response=data)

    async def _find_price(self, params: Mapping[str, Any]) -> ExecutionResult | None:
        variant = await self._variant(params["variant_id"], "shopify.update_price")
        if _minor(variant["price"], params["currency"]) != params["new_price"]:
            return None
        return self._priced(params, variant["id"], variant["product"]["id"], seen=None,
                            response={"productVariant": variant})

    def _priced(self, params: Mapping[str, Any], variant: str, product: str, *,
                seen: str | None, response: Mapping[str, Any]) -> ExecutionResult:
        currency = params["currency"]
        before = _minor(seen, currency) if seen is not None else None
        if before is not None and before != params["new_price"]:
            old, source = decimal_string(before, currency), "seen"
        else:
            old, source = decimal_string(params["old_price"], currency), "declared"
        number = _number(variant)
        return ExecutionResult(str(number), {
            "variant_id": params["variant_id"], "product_id": params["product_id"],
            "shopify_variant_id": number, "shopify_product_id": _number(product),
            "price": decimal_string(params["new_price"], currency), "old_price": old,
            "old_price_source": source, "currency": currency}, response=dict(response))

    # ---------------------------------------------------------------------- listings

    async def _publish_listing(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.publish_listing"
        await self._check_currency(params["currency"], what)
        publication = await self._online_store(what)
        tag = TAG_PREFIX + key
        replayed = False
        if params.get("product_id"):
            found = await self._listing(params["product_id"], publication, what)
            data = await self.graphql.request(UPDATE_PRODUCT, {"product": {
                "id": found["id"], "title": params["title"], "descriptionHtml": params["body_html"],
                "status": "ACTIVE", "tags": sorted({*found.get("tags", []), tag})}}, what=what)
            self.graphql.user_errors(data["productUpdate"], what)
            product = data["productUpdate"]["product"]
        else:
            product = await self._own_listing(key, publication, what)
            replayed = product is not None
            if product is None:
                self._creating[key] = time.time()
                data = await self.graphql.request(CREATE_PRODUCT, {"product": {
                    "title": params["title"], "descriptionHtml": params["body_html"],
                    "status": "ACTIVE", "tags": [tag]}}, what=what)
                self.graphql.user_errors(data["productCreate"], what)
                product = data["productCreate"]["product"]
                self._created[key] = product["id"]
        variant = _first_variant(product, what)
        price = decimal_string(params["price"], params["currency"])
        if _minor(variant["price"], params["currency"]) != params["price"]:
            priced = await self.graphql.request(UPDATE_PRICE, {
                "productId": product["id"], "variants": [{"id": variant["id"], "price": price}]},
                what=what)
            self.graphql.user_errors(priced["productVariantsBulkUpdate"], what)
        if not product.get("publishedOnPublication"):
            published = await self.graphql.request(PUBLISH, {
                "id": product["id"], "input": [{"publicationId": publication}]}, what=what)
            self.graphql.user_errors(published["publishablePublish"], what)
        return self._listed(params, product, replayed=replayed)

    async def _own_listing(self, key: str, publication: str,
                           what: str) -> dict[str, Any] | None:
        """The product this decision created, if any: remembered by this process, else found by
        its tag; not finding it shortly after an attempt that may have created it is transient."""
        if key in self._created:
            return await self._listing(self._created[key], publication, what)
        found = await self._tagged(key, publication, what)
        if found is None:
            self._settling(what, self._creating.get(key))
        return found

    async def _tagged(self, key: str, publication: str, what: str) -> dict[str, Any] | None:
        data = await self.graphql.request(LISTING_BY_TAG, {
            "query": f'tag:"{TAG_PREFIX}{key}"', "publication": publication}, what=what)
        nodes = [n for n in data["products"]["nodes"] if TAG_PREFIX + key in n.get("tags", [])]
        return nodes[0] if nodes else None

    def _settling(self, what: str, attempted_at: float | None) -> None:
        now = time.time()
        for key, at in list(self._creating.items()):  # forget attempts long settled
            if now - at > self.search_settle_seconds:
                del self._creating[key]
        if attempted_at is not None and now - attempted_at < self.search_settle_seconds:
            wait = self.search_settle_seconds - (now - attempted_at)
            raise TransientError(
                f"{what}: an earlier attempt may have created the product, and Shopify's product "
                f"search can take up to {self.search_settle_seconds:g} s to show it: looked up "
                "again later rather than created twice", code="search_settling",
                retry_after=round(wait, 3))

    async def _find_listing(self, params: Mapping[str, Any], key: str,
                            first_attempt_at: float) -> ExecutionResult | None:
        what = "shopify.publish_listing"
        publication = await self._online_store(what)
        if params.get("product_id"):
            product: dict[str, Any] | None = await self._listing(params["product_id"],
                                                                 publication, what)
        else:
            product = await self._tagged(key, publication, what)
            if product is None:
                self._settling(what, first_attempt_at)
        done = (product is not None and TAG_PREFIX + key in product.get("tags", [])
                and product["status"] == "ACTIVE" and product.get("publishedOnPublication")
                and _minor(_first_variant(product, what)["price"], params["currency"])
                == params["price"])
        if not done or product is None:
            return None  # not done, or half done: the call completes it (found by its tag)
        return self._listed(params, product, replayed=True)

    def _listed(self, params: Mapping[str, Any], product: Mapping[str, Any], *,
                replayed: bool) -> ExecutionResult:
        number = _number(product["id"])
        body = params["body_html"]
        return ExecutionResult(str(number), {
            "product_id": number, "handle": product["handle"], "title": params["title"][:120],
            "price": decimal_string(params["price"], params["currency"]),
            "currency": params["currency"], "status": "active",
            "body_html_sha256": hashlib.sha256(body.encode()).hexdigest(),
            "created": not params.get("product_id")}, replayed=replayed,
            response={"product": dict(product)})

    async def _unpublish_listing(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.unpublish_listing"
        product = await self._product(params["product_id"], what)
        data = await self.graphql.request(UPDATE_PRODUCT, {"product": {"id": product["id"],
                                                                "status": "DRAFT"}}, what=what)
        self.graphql.user_errors(data["productUpdate"], what)
        return self._unpublished(data["productUpdate"]["product"], data)

    @staticmethod
    def _unpublished(product: Mapping[str, Any], response: Mapping[str, Any]) -> ExecutionResult:
        number = _number(product["id"])
        return ExecutionResult(str(number), {"product_id": number, "handle": product["handle"],
                                             "status": "draft"},
                               response=dict(response) or {"product": dict(product)})

    # ---------------------------------------------------------------------- discounts

    async def _create_discount(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.create_discount"
        mark = TAG_PREFIX + key
        existing = await self._discount_by_code(params["code"], what)
        if existing is not None:
            return self._own_discount(existing, params, mark, what)
        discount: dict[str, Any] = {
            "title": f"{params['code'][:200]} ({mark})", "code": params["code"],
            "startsAt": params.get("starts_at") or _now(), "context": {"all": "ALL"},
            "customerGets": {"value": {"percentage": round(params["percent_off"] / 100, 6)},
                             "items": {"all": True}},
            "appliesOncePerCustomer": False}
        if params.get("ends_at"):
            discount["endsAt"] = params["ends_at"]
        data = await self.graphql.request(CREATE_DISCOUNT, {"discount": discount}, what=what)
        payload = data["discountCodeBasicCreate"]
        if any(e.get("code") == "TAKEN" for e in payload.get("userErrors") or []):
            # taken between the look-up and the create: ours (a concurrent attempt) or not
            existing = await self._discount_by_code(params["code"], what)
            if existing is not None:
                return self._own_discount(existing, params, mark, what)
        self.graphql.user_errors(payload, what)
        return self._discounted(payload["codeDiscountNode"], params, replayed=False, response=data)

    def _own_discount(self, node: Mapping[str, Any], params: Mapping[str, Any], mark: str,
                      what: str) -> ExecutionResult:
        if mark not in (node.get("codeDiscount") or {}).get("title", ""):
            raise PermanentError(f"{what}: the shop already has a discount with the code "
                                 f"{params['code']!r}, not created by this decision; codes are "
                                 "unique per shop", code="code_taken")
        return self._discounted(node, params, replayed=True,
                                response={"codeDiscountNode": dict(node)})

    async def _find_discount(self, params: Mapping[str, Any], key: str) -> ExecutionResult | None:
        what = "shopify.create_discount"
        node = await self._discount_by_code(params["code"], what)
        title = ((node or {}).get("codeDiscount") or {}).get("title", "")
        if node is None or TAG_PREFIX + key not in title:
            return None
        return self._discounted(node, params, replayed=True, response={"codeDiscountNode": node})

    def _discounted(self, node: Mapping[str, Any], params: Mapping[str, Any], *, replayed: bool,
                    response: Mapping[str, Any]) -> ExecutionResult:
        discount = node.get("codeDiscount") or {}
        codes = (discount.get("codes") or {}).get("nodes") or [{}]
        number = _number(node["id"])
        return ExecutionResult(str(number), {
            "price_rule_id": number,
            "discount_code_id": _number(codes[0]["id"]) if codes[0].get("id") else None,
            "discount_id": node["id"], "code": params["code"],
            "percent_off": params["percent_off"],
            "starts_at": discount.get("startsAt") or params.get("starts_at"),
            "ends_at": discount.get("endsAt", params.get("ends_at"))},
            replayed=replayed, response=dict(response))

    async def _discount_by_code(self, code: str, what: str) -> dict[str, Any] | None:
        data = await self.graphql.request(DISCOUNT_BY_CODE, {"code": code}, what=what)
        node: dict[str, Any] | None = data.get("codeDiscountNodeByCode")
        return node

    async def _discount_node(self, value: str, what: str) -> dict[str, Any] | None:
        gid = _gid(value, "DiscountCodeNode", what)
        if gid is None:  # a name: the discount's code
            return await self._discount_by_code(value, what)
        node: dict[str, Any] | None = (await self.graphql.request(DISCOUNT, {"id": gid}, what=what)) \
            .get("codeDiscountNode")
        return node

    async def _delete_discount(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.delete_discount"
        node = await self._discount_node(params["discount_id"], what)
        if node is None:
            return self._deleted(params["discount_id"], what, already_absent=True, response={})
        data = await self.graphql.request(DELETE_DISCOUNT, {"id": node["id"]}, what=what)
        self.graphql.user_errors(data["discountCodeDelete"], what)
        return self._deleted(node["id"], what, already_absent=False, response=data)

    async def _find_deleted_discount(self, params: Mapping[str, Any]) -> ExecutionResult | None:
        what = "shopify.delete_discount"
        node = await self._discount_node(params["discount_id"], what)
        return None if node is not None else self._deleted(params["discount_id"], what,
                                                           already_absent=True, response={})

    @staticmethod
    def _deleted(discount: str, what: str, *, already_absent: bool,
                 response: Mapping[str, Any]) -> ExecutionResult:
        gid = _gid(discount, "DiscountCodeNode", what)
        number = _number(gid) if gid is not None else None
        return ExecutionResult(str(number if number is not None else discount), {
            "discount_id": gid or discount, "price_rule_id": number, "deleted": True,
            "already_absent": already_absent}, replayed=already_absent, response=dict(response))

    # ---------------------------------------------------------------------- stock

    async def _adjust(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "shopify.adjust_inventory"
        variant = await self._variant(params["variant_id"], what)
        item = variant["inventoryItem"]["id"]
        location = await self._stock_location(what)
        data = await self.graphql.request(ADJUST_INVENTORY, {"key": key, "input": {
            "reason": "correction", "name": "available",
            "referenceDocumentUri": f"warden://decisions/{key}",
            "changes": [{"delta": params["delta"], "inventoryItemId": item,
                         "locationId": location}]}}, what=what)
        payload = data["inventoryAdjustQuantities"]
        self.graphql.user_errors(payload, what)
        group = payload.get("inventoryAdjustmentGroup") or {}
        available = next((c.get("quantityAfterChange") for c in group.get("changes") or []
                          if c.get("name") == "available"), None)
        number = _number(item)
        return ExecutionResult(str(number), {
            "variant_id": params["variant_id"], "inventory_item_id": number,
            "location_id": _number(location), "delta": params["delta"], "available": available,
            "unit_cost": params["unit_cost"], "currency": params["currency"],
            "adjustment_group_id": group.get("id")}, response=data)

    # ---------------------------------------------------------------------- look-ups

    async def _variant(self, value: str, what: str) -> dict[str, Any]:
        gid = _gid(value, "ProductVariant", what)
        if gid is not None:
            node: dict[str, Any] | None = (await self.graphql.request(VARIANT, {"id": gid}, what=what)) \
                .get("productVariant")
            if node is None:
                raise PermanentError(f"{what}: Shopify has no product variant {value}",
                                     code="not_found")
            return node
        data = await self.graphql.request(VARIANT_BY_SKU, {"query": f'sku:"{value}"'}, what=what)
        nodes: list[dict[str, Any]] = [n for n in data["productVariants"]["nodes"]
                                       if n.get("sku") == value]
        if not nodes:
            raise PermanentError(f"{what}: no product variant has the id or SKU {value!r} (a "
                                 "variant is named by its number, its gid or its SKU)",
                                 code="not_found")
        if len(nodes) > 1:
            raise PermanentError(f"{what}: more than one variant has the SKU {value!r}; name the "
                                 "variant by its number or gid", code="ambiguous_id")
        return nodes[0]

    async def _product(self, value: str, what: str) -> dict[str, Any]:
        gid = _gid(value, "Product", what)
        if gid is not None:
            node = (await self.graphql.request(PRODUCT, {"id": gid}, what=what)).get("product")
        else:
            node = (await self.graphql.request(PRODUCT_BY_HANDLE, {"identifier": {"handle": value}},
                                        what=what)).get("productByIdentifier")
        return _found(node, value, what)

    async def _listing(self, value: str, publication: str, what: str) -> dict[str, Any]:
        gid = _gid(value, "Product", what)
        if gid is not None:
            node = (await self.graphql.request(LISTING, {"id": gid, "publication": publication},
                                        what=what)).get("product")
        else:
            node = (await self.graphql.request(LISTING_BY_HANDLE, {
                "identifier": {"handle": value}, "publication": publication},
                what=what)).get("productByIdentifier")
        return _found(node, value, what)

    async def _check_currency(self, currency: str, what: str) -> None:
        if self._currency is None:
            self._currency = (await self.graphql.request(SHOP, {}, what=what))["shop"]["currencyCode"]
        if self._currency.lower() != currency:
            raise PermanentError(f"{what}: the shop sells in {self._currency}, and the packet's "
                                 f"prices are in {currency}", code="currency_mismatch")

    async def _stock_location(self, what: str) -> str:
        if self._location is None:
            configured = self.config.location_id
            if configured:
                gid = _gid(configured, "Location", what)
                if gid is None:
                    raise PermanentError(f"{what}: the configured location {configured!r} is not "
                                         "a location's number or gid", code="invalid_id")
                self._location = gid
            else:
                nodes = (await self.graphql.request(LOCATIONS, {}, what=what))["locations"]["nodes"]
                if not nodes:
                    raise PermanentError(f"{what}: the shop has no location to keep stock at",
                                         code="no_location")
                self._location = str(nodes[0]["id"])
        return self._location

    async def _online_store(self, what: str) -> str:
        """The Online Store's publication: the one whose catalog is titled so, else the one
        publication that supports future publishing (only online stores do)."""
        if self._publication is None:
            nodes = (await self.graphql.request(PUBLICATIONS, {}, what=what))["publications"]["nodes"]
            named = [n for n in nodes if (n.get("catalog") or {}).get("title") == _ONLINE_STORE]
            future = [n for n in nodes if n.get("supportsFuturePublishing")]
            chosen = named or (future if len(future) == 1 else [])
            if not chosen:
                raise PermanentError(f"{what}: the shop has no Online Store sales channel to "
                                     "publish to", code="no_online_store")
            self._publication = str(chosen[0]["id"])
        return self._publication


# -------------------------------------------------------------------------- helpers

def _gid(value: str, kind: str, what: str) -> str | None:
    """The gid of a number or a gid of `kind`; None for a name (looked up); invalid_id else."""
    if value.isdigit():
        return f"gid://shopify/{kind}/{int(value)}"
    match = _GID.fullmatch(value)
    if match is not None:
        if match["kind"] != kind:
            raise PermanentError(f"{what}: {value} is a {match['kind']} id, where a {kind} is "
                                 "expected", code="invalid_id")
        return value
    if value.startswith("gid:"):
        raise PermanentError(f"{what}: {value!r} is not a Shopify {kind} id "
                             f"(gid://shopify/{kind}/<number>)", code="invalid_id")
    return None


def _number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[1].split("?", 1)[0])


def _minor(price: Any, currency: str) -> int | None:
    """Shopify's decimal price in minor units; None for a price it did not give."""
    if price is None:
        return None
    try:
        return minor_units(str(price), currency)
    except ValueError:
        return None


def _first_variant(product: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    nodes = (product.get("variants") or {}).get("nodes") or []
    if not nodes:
        raise PermanentError(f"{what}: product {_number(product['id'])} has no variant to price",
                             code="no_variant")
    first: Mapping[str, Any] = nodes[0]
    return first


def _found(node: dict[str, Any] | None, value: str, what: str) -> dict[str, Any]:
    if node is None:
        raise PermanentError(f"{what}: Shopify has no product {value!r} (a product is named by "
                             "its number, its gid or its handle)", code="not_found")
    return node


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
