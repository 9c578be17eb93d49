"""The live Shopify connector against FakeShopify on loopback: every tool through
`ShopifyLive.execute/reconcile/check`, the error mapping, idempotency across failures,
the cost bucket under load, compensations, and the fake checked against Shopify's documented
examples."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors import build_registry
from connectors.base import (
    ConnectorError,
    IdempotencyConflictError,
    NotReversible,
    PermanentError,
    TransientError,
    UnknownOutcomeError,
)
from connectors.live.config import SHOPIFY_API_VERSION, ShopifyConfig
from connectors.live.runner import CallRunner
from connectors.live.shopify import ShopifyLive
from connectors.live.shopify_graphql import OPERATIONS
from connectors.shopify import TOOLS
from fakes.shopify import FakeShopify, parse, requested_cost
from own_thread import on_own_thread

TOKEN = "shpat_5e0662a0123456789abcdef"
SPECS = {spec.name: spec for spec in TOOLS}
GRAPHQL = f"/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
Connect = Callable[..., ShopifyLive]


@pytest.fixture
def fake() -> Iterator[FakeShopify]:
    server = FakeShopify(access_token=TOKEN, hang_seconds=3.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def waits() -> list[tuple[str, float]]:
    return []


@pytest.fixture
def connect(runner: CallRunner, fake: FakeShopify, waits: list[tuple[str, float]],
            opened: list[ShopifyLive]) -> Iterator[Connect]:

    def make(*, token: str = TOKEN, timeout: float = 2.0, server: FakeShopify | None = None,
             location_id: str = "") -> ShopifyLive:
        config = ShopifyConfig(shop="warden-test.myshopify.com", access_token=token,
                               api_base=(server or fake).base_url, location_id=location_id)
        live = ShopifyLive(config, runner=runner, timeout=timeout,
                           on_wait=lambda name, seconds: waits.append((name, seconds)))
        live.search_settle_seconds = 0.6
        opened.append(live)
        return live

    yield make


@pytest.fixture
def live(connect: Connect) -> ShopifyLive:
    return connect()


def price_params(fake: FakeShopify, **change: Any) -> dict[str, Any]:
    variant = fake.add_variant(sku=change.pop("sku", "LINEN-1"), price="40.00")
    return {"product_id": str(variant.product), "variant_id": variant.sku, "old_price": 4000,
            "new_price": 2999, "currency": "usd", **change}


LISTING = {"title": "Linen throw blanket", "body_html": "<p>Stonewashed linen.</p>",
           "price": 8900, "currency": "usd"}
DISCOUNT = {"code": "SPRING15", "percent_off": 15.0, "starts_at": "2026-05-01T00:00:00Z",
            "ends_at": "2026-05-31T23:59:59Z"}


def stock_params(fake: FakeShopify, delta: int = 20) -> dict[str, Any]:
    fake.add_variant(sku="LINEN-2", price="40.00")
    return {"variant_id": "LINEN-2", "delta": delta, "unit_cost": 500, "currency": "usd"}


# ---- reading the shop, credentials, the pinned version ---------------------------------------

def test_check_reads_the_shop_with_the_pinned_version_and_token(
        live: ShopifyLive, fake: FakeShopify) -> None:
    assert live.check() == "shop Warden Test Shop readable (warden-test.myshopify.com, Basic)"
    (seen,) = fake.requests("POST *")
    assert seen.route == f"POST {GRAPHQL}" and seen.status == 200
    assert seen.headers["x-shopify-access-token"] == TOKEN
    assert seen.headers["content-type"] == "application/json"


def test_bad_credentials_are_refused_and_never_repeated(connect: Connect,
                                                         fake: FakeShopify) -> None:
    wrong = "shpat_wrong_token_9f8e7d6c"
    live = connect(token=wrong)
    with pytest.raises(PermanentError) as refused:
        live.check()
    assert refused.value.code == "credentials_refused"
    assert "Invalid API key or access token" in str(refused.value)
    with pytest.raises(PermanentError) as again:
        live.execute("shopify.update_price", price_params(fake), idempotency_key="dec_cred")
    assert again.value.code == "credentials_refused"
    assert wrong not in str(refused.value) + str(again.value)
    assert fake.effects == []


def test_a_version_shopify_no_longer_serves_is_a_permanent_error(
        live: ShopifyLive, fake: FakeShopify) -> None:
    fake.serve_version = "2026-07"  # Shopify answers a retired version with the oldest it serves
    with pytest.raises(PermanentError, match="pinned version is no longer served") as failed:
        live.check()
    assert failed.value.code == "api_version_not_served" and "2026-07" in str(failed.value)


def test_an_answer_without_the_version_header_passes(live: ShopifyLive, fake: FakeShopify) -> None:
    shop = {"name": "Header-less", "myshopifyDomain": "h.myshopify.com", "currencyCode": "USD",
            "plan": {"displayName": "Basic"}}
    fake.fail("POST *", status=200, body={"data": {"shop": shop}})  # no X-Shopify-API-Version
    assert live.check().startswith("shop Header-less readable")


def test_an_unsupported_version_in_the_url_is_not_found(live: ShopifyLive,
                                                         fake: FakeShopify) -> None:
    live.graphql.path = "/admin/api/2023-01/graphql.json"
    with pytest.raises(PermanentError, match="does not serve API version") as failed:
        live.check()
    assert failed.value.code == "not_found"


# ---- shopify.update_price --------------------------------------------------------------------

def test_update_price_sets_the_price_and_records_the_price_it_replaced(
        live: ShopifyLive, fake: FakeShopify) -> None:
    params = price_params(fake, old_price=3900)  # the packet believed 39.00; Shopify shows 40.00
    result = live.execute("shopify.update_price", params, idempotency_key="dec_price")
    variant = next(iter(fake.variants.values()))
    assert variant.price == "29.99"
    assert result.external_id == str(variant.number)
    assert result.summary == {
        "variant_id": "LINEN-1", "product_id": params["product_id"],
        "shopify_variant_id": variant.number, "shopify_product_id": variant.product,
        "price": "29.99", "old_price": "40.00", "old_price_source": "seen", "currency": "usd"}
    assert result.response["productVariantsBulkUpdate"]["userErrors"] == []
    assert fake.effects_by_key("price_set") == {None: 1}


def test_update_price_refusals_name_what_is_wrong(live: ShopifyLive, fake: FakeShopify) -> None:
    params = price_params(fake)
    other = fake.add_product(title="Other").number
    with pytest.raises(PermanentError, match="variants.0.id: Product variant does not exist"
                       ) as mismatch:
        live.execute("shopify.update_price", {**params, "product_id": str(other)},
                     idempotency_key="dec_a")
    assert mismatch.value.code == "product_variant_does_not_exist"
    with pytest.raises(PermanentError, match="ProductVariant id, where a Product") as kind:
        live.execute("shopify.update_price",
                     {**params, "product_id": "gid://shopify/ProductVariant/1"},
                     idempotency_key="dec_b")
    assert kind.value.code == "invalid_id"
    with pytest.raises(PermanentError, match="sells in USD") as currency:
        live.execute("shopify.update_price", {**params, "currency": "eur"},
                     idempotency_key="dec_c")
    assert currency.value.code == "currency_mismatch"
    assert fake.effects == []


def test_numbers_the_fake_makes_up_belong_to_the_product_named(live: ShopifyLive,
                                                                fake: FakeShopify) -> None:
    params = {"product_id": "1001", "variant_id": "2001", "old_price": 4000, "new_price": 3600,
              "currency": "usd"}
    result = live.execute("shopify.update_price", params, idempotency_key="dec_made_up")
    assert result.summary["shopify_product_id"] == 1001 and fake.variants[2001].product == 1001
    assert fake.variants[2001].price == "36.00" and result.summary["old_price"] == "0.00"
    fake.add_variant(number=2002, product=1002, price="40.00")  # a seeded price is seen
    seeded = live.execute("shopify.update_price", {**params, "product_id": "1002",
                                                   "variant_id": "2002"},
                          idempotency_key="dec_seeded")
    assert seeded.summary["old_price"] == "40.00"


def test_skus_name_variants_exactly_once(connect: Connect, runner: CallRunner) -> None:
    strict = FakeShopify(access_token=TOKEN, auto_catalog=False).start()
    try:
        live = connect(server=strict)
        params = {"product_id": "p_1", "variant_id": "NOPE", "old_price": 1, "new_price": 2,
                  "currency": "usd"}
        with pytest.raises(PermanentError, match="no product variant has the id or SKU") as lost:
            live.execute("shopify.update_price", params, idempotency_key="dec_1")
        assert lost.value.code == "not_found"
        strict.add_variant(sku="TWIN")
        strict.add_variant(sku="TWIN")
        with pytest.raises(PermanentError, match="more than one variant") as twins:
            live.execute("shopify.update_price", {**params, "variant_id": "TWIN"},
                         idempotency_key="dec_2")
        assert twins.value.code == "ambiguous_id"
        with pytest.raises(PermanentError) as numbered:
            live.execute("shopify.update_price", {**params, "variant_id": "123"},
                         idempotency_key="dec_3")
        assert numbered.value.code == "not_found" and strict.effects == []
    finally:
        strict.stop()


def test_a_5xx_then_success_with_the_same_key_acts_once(live: ShopifyLive,
                                                        fake: FakeShopify) -> None:
    params = price_params(fake)
    fake.fail("* productVariantsBulkUpdate", status=502, body={"errors": "Bad Gateway"})
    with pytest.raises(TransientError) as failed:
        live.execute("shopify.update_price", params, idempotency_key="dec_5xx")
    assert failed.value.code == "provider_error" and "HTTP 502" in str(failed.value)
    result = live.execute("shopify.update_price", params, idempotency_key="dec_5xx")
    assert result.summary["old_price"] == "40.00"
    assert fake.effects_by_key("price_set") == {None: 1}


def test_a_dropped_price_change_is_found_not_sent_again(live: ShopifyLive,
                                                        fake: FakeShopify) -> None:
    params = price_params(fake)
    fake.fail("* productVariantsBulkUpdate", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        live.execute("shopify.update_price", params, idempotency_key="dec_drop")
    found = live.reconcile("shopify.update_price", params, idempotency_key="dec_drop",
                           first_attempt_at=time.time())
    assert found is not None and found.reconciled
    assert found.summary["price"] == "29.99"
    assert found.summary["old_price"] == "40.00" and found.summary["old_price_source"] == "declared"
    assert fake.operations.count("productVariantsBulkUpdate") == 1  # not sent again
    assert fake.effects_by_key("price_set") == {None: 1}
    assert live.reconcile("shopify.update_price", {**params, "new_price": 1000},
                          idempotency_key="dec_other", first_attempt_at=time.time()) is None


def test_a_timeout_is_an_unknown_outcome_then_reconciled(connect: Connect,
                                                         fake: FakeShopify) -> None:
    live = connect(timeout=0.5)
    params = price_params(fake)
    live.check()  # warm: currency and the bucket known
    fake.fail("* productVariantsBulkUpdate", kind="hang_after", seconds=1.0)
    started = time.monotonic()
    with pytest.raises(UnknownOutcomeError) as unknown:
        live.execute("shopify.update_price", params, idempotency_key="dec_slow")
    assert unknown.value.code == "timeout" and time.monotonic() - started < 1.0
    time.sleep(0.7)  # the fake acted, and its answer was never read
    found = live.reconcile("shopify.update_price", params, idempotency_key="dec_slow",
                           first_attempt_at=time.time())
    assert found is not None and found.summary["price"] == "29.99"
    assert fake.effects_by_key("price_set") == {None: 1}


# ---- shopify.publish_listing -----------------------------------------------------------------

def test_publish_listing_creates_prices_and_publishes_a_tagged_product(
        live: ShopifyLive, fake: FakeShopify) -> None:
    result = live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_list")
    product = fake.products[int(result.external_id)]
    variant = fake.variants[product.variants[0]]
    assert product.tags == ["warden:dec_list"] and product.status == "ACTIVE"
    assert variant.price == "89.00" and product.published
    assert result.summary["created"] is True and result.summary["handle"] == "linen-throw-blanket"
    assert set(result.summary) == {"product_id", "handle", "title", "price", "currency", "status",
                                   "body_html_sha256", "created"}
    again = live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_list")
    assert again.replayed and again.external_id == result.external_id
    assert fake.effects_by_key("product_created") == {"dec_list": 1}


def test_a_dropped_create_is_completed_from_its_tag_never_created_twice(
        live: ShopifyLive, fake: FakeShopify) -> None:
    fake.fail("* productCreate", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_half")
    # found, but neither priced nor published: not the effect yet; the call completes it
    assert live.reconcile("shopify.publish_listing", LISTING, idempotency_key="dec_half",
                          first_attempt_at=time.time()) is None
    result = live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_half")
    assert result.replayed and fake.effects_by_key("product_created") == {"dec_half": 1}
    found = live.reconcile("shopify.publish_listing", LISTING, idempotency_key="dec_half",
                           first_attempt_at=time.time())
    assert found is not None and found.external_id == result.external_id


def test_a_product_the_search_does_not_show_yet_is_waited_for(connect: Connect) -> None:
    lagging = FakeShopify(access_token=TOKEN, search_lag=0.4).start()
    try:
        live = connect(server=lagging)
        lagging.fail("* productCreate", kind="drop_after")
        with pytest.raises(UnknownOutcomeError):
            live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_lag")
        with pytest.raises(TransientError) as settling:
            live.reconcile("shopify.publish_listing", LISTING, idempotency_key="dec_lag",
                           first_attempt_at=time.time())
        assert settling.value.code == "search_settling" and settling.value.retry_after
        with pytest.raises(TransientError) as again:
            live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_lag")
        assert again.value.code == "search_settling"
        time.sleep(0.6)
        live.execute("shopify.publish_listing", LISTING, idempotency_key="dec_lag")
        assert lagging.effects_by_key("product_created") == {"dec_lag": 1}
        assert live.reconcile("shopify.publish_listing", {**LISTING, "title": "Other"},
                              idempotency_key="dec_none", first_attempt_at=time.time() - 5) is None
    finally:
        lagging.stop()


def test_publish_listing_updates_a_named_product_in_place(live: ShopifyLive,
                                                          fake: FakeShopify) -> None:
    product = fake.add_product(title="Old title", handle="linen-throw", price="80.00",
                               status="DRAFT", tags=["summer"])
    result = live.execute("shopify.publish_listing", {**LISTING, "product_id": "linen-throw"},
                          idempotency_key="dec_upd")
    assert result.summary["created"] is False and result.external_id == str(product.number)
    assert product.title == LISTING["title"] and product.status == "ACTIVE"
    assert product.tags == ["summer", "warden:dec_upd"]
    assert fake.variants[product.variants[0]].price == "89.00" and product.published
    found = live.reconcile("shopify.publish_listing", {**LISTING, "product_id": "linen-throw"},
                           idempotency_key="dec_upd", first_attempt_at=time.time())
    assert found is not None and fake.effects_by_key("product_created") == {}
    with pytest.raises(NotReversible, match="updated an existing product in place"):
        SPECS["shopify.publish_listing"].compensate(LISTING, result.external_id, result.summary)


# ---- shopify.create_discount -----------------------------------------------------------------

def test_create_discount_creates_a_marked_code_and_finds_it_again(
        live: ShopifyLive, fake: FakeShopify) -> None:
    fake.fail("* discountCodeBasicCreate", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        live.execute("shopify.create_discount", DISCOUNT, idempotency_key="dec_disc")
    found = live.reconcile("shopify.create_discount", DISCOUNT, idempotency_key="dec_disc",
                           first_attempt_at=time.time())
    assert found is not None and found.summary["code"] == "SPRING15"
    (discount,) = fake.discounts.values()
    assert found.summary == {
        "price_rule_id": discount.number, "discount_code_id": discount.code_number,
        "discount_id": f"gid://shopify/DiscountCodeNode/{discount.number}", "code": "SPRING15",
        "percent_off": 15.0, "starts_at": "2026-05-01T00:00:00Z",
        "ends_at": "2026-05-31T23:59:59Z"}
    assert discount.percentage == 0.15 and "warden:dec_disc" in discount.title
    replay = live.execute("shopify.create_discount", DISCOUNT, idempotency_key="dec_disc")
    assert replay.replayed and fake.effects_by_key("discount_created") == {"dec_disc": 1}


def test_a_code_someone_else_holds_is_refused(live: ShopifyLive, fake: FakeShopify) -> None:
    live.execute("shopify.create_discount", DISCOUNT, idempotency_key="dec_first")
    with pytest.raises(PermanentError, match="not created by this decision") as taken:
        live.execute("shopify.create_discount", {**DISCOUNT, "code": "spring15"},
                     idempotency_key="dec_second")
    assert taken.value.code == "code_taken"
    assert live.reconcile("shopify.create_discount", DISCOUNT, idempotency_key="dec_second",
                          first_attempt_at=time.time()) is None


def test_shopify_userErrors_become_permanent_failures(live: ShopifyLive,
                                                      fake: FakeShopify) -> None:
    with pytest.raises(PermanentError) as refused:
        live.execute("shopify.create_discount", {**DISCOUNT, "starts_at": "2026-06-01T00:00:00Z",
                                                 "ends_at": "2026-06-01T00:00:00Z"},
                     idempotency_key="dec_bad")
    assert refused.value.code == "invalid"
    assert "basicCodeDiscount.endsAt: Ends at needs to be after starts_at" in str(refused.value)


# ---- shopify.adjust_inventory ----------------------------------------------------------------

def test_adjust_inventory_sends_the_decision_id_as_its_idempotency_key(
        live: ShopifyLive, fake: FakeShopify) -> None:
    params = stock_params(fake)
    result = live.execute("shopify.adjust_inventory", params, idempotency_key="dec_stock")
    assert result.summary["available"] == 120 and result.summary["delta"] == 20
    assert result.summary["location_id"] == fake.location
    assert set(result.summary) >= {"variant_id", "inventory_item_id", "location_id", "delta",
                                   "available", "unit_cost", "currency"}
    group = result.response["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]
    assert group["referenceDocumentUri"] == "warden://decisions/dec_stock"
    assert group["reason"] == "Inventory correction"
    again = live.execute("shopify.adjust_inventory", params, idempotency_key="dec_stock")
    assert again.summary == result.summary
    assert fake.effects_by_key("inventory_adjusted") == {"dec_stock": 1}
    with pytest.raises(IdempotencyConflictError, match="another request"):
        live.execute("shopify.adjust_inventory", {**params, "delta": 5},
                     idempotency_key="dec_stock")


def test_a_dropped_adjustment_is_reconciled_by_its_key(live: ShopifyLive,
                                                       fake: FakeShopify) -> None:
    params = stock_params(fake, delta=-7)
    fake.fail("* inventoryAdjustQuantities", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        live.execute("shopify.adjust_inventory", params, idempotency_key="dec_lost")
    found = live.reconcile("shopify.adjust_inventory", params, idempotency_key="dec_lost",
                           first_attempt_at=time.time())
    assert found is not None and found.reconciled and found.summary["available"] == 93
    assert fake.effects_by_key("inventory_adjusted") == {"dec_lost": 1}
    with pytest.raises(PermanentError, match="check the variant's stock") as late:
        live.reconcile("shopify.adjust_inventory", params, idempotency_key="dec_lost",
                       first_attempt_at=time.time() - 24 * 3600)
    assert late.value.code == "reconciliation_window_passed"


def test_a_configured_location_is_used(connect: Connect, fake: FakeShopify) -> None:
    params = stock_params(fake)
    elsewhere = connect(location_id="gid://shopify/Location/999")
    with pytest.raises(PermanentError) as refused:
        elsewhere.execute("shopify.adjust_inventory", params, idempotency_key="dec_loc")
    assert refused.value.code == "location_not_found"
    here = connect(location_id=str(fake.location))
    assert here.execute("shopify.adjust_inventory", params,
                        idempotency_key="dec_loc2").summary["available"] == 120
    assert "locations" not in fake.operations  # configured: never looked up


# ---- rate limits -----------------------------------------------------------------------------

def test_429_and_503_carry_retry_after(live: ShopifyLive, fake: FakeShopify) -> None:
    fake.fail("POST *", status=429, headers={"Retry-After": "0.2"},
              body={"errors": "Exceeded 2 calls per second for api client."})
    with pytest.raises(TransientError) as limited:
        live.check()
    assert limited.value.code == "rate_limited" and limited.value.retry_after == 0.2
    fake.fail("POST *", status=503, headers={"Retry-After": "1"},
              body={"errors": "Service Unavailable"})
    with pytest.raises(TransientError) as down:
        live.check()
    assert down.value.code == "service_unavailable" and down.value.retry_after == 1.0
    assert live.check().startswith("shop ")


def test_throttled_answers_are_retried_after_the_restore_time(
        live: ShopifyLive, fake: FakeShopify, waits: list[tuple[str, float]]) -> None:
    params = price_params(fake)
    live.check()
    with fake.lock:  # another client of the shop emptied the bucket behind our back
        fake.maximum, fake.restore, fake._available = 100.0, 100.0, 0.0
    result = live.execute("shopify.update_price", params, idempotency_key="dec_thr")
    assert result.summary["price"] == "29.99"
    assert fake.throttled_answers >= 1 and live.graphql.throttled == fake.throttled_answers
    assert waits and all(name == "shopify" and seconds > 0 for name, seconds in waits)


def test_throttling_that_outlasts_the_call_is_transient(connect: Connect,
                                                        fake: FakeShopify) -> None:
    live = connect(timeout=1.0)
    live.check()
    with fake.lock:
        fake.maximum, fake.restore, fake._available = 1000.0, 1.0, 0.0
    with pytest.raises(TransientError) as throttled:
        live.execute("shopify.update_price", price_params(fake), idempotency_key="dec_slow")
    assert throttled.value.code == "throttled" and (throttled.value.retry_after or 0) > 0.5
    assert not isinstance(throttled.value, UnknownOutcomeError) and fake.effects == []


def test_many_concurrent_calls_wait_for_the_bucket_instead_of_being_throttled(
        connect: Connect, waits: list[tuple[str, float]]) -> None:
    small = FakeShopify(access_token=TOKEN, maximum=20.0, restore=400.0).start()
    try:
        live = connect(server=small, timeout=10.0)
        calls = [price_params(small, sku=f"SKU-{n}") for n in range(30)]

        async def run_all() -> list[Any]:
            return await asyncio.gather(*(
                live.execute_async("shopify.update_price", params, idempotency_key=f"dec_{n}")
                for n, params in enumerate(calls)))

        results = on_own_thread(lambda: asyncio.run(run_all()))
        assert [r.summary["price"] for r in results] == ["29.99"] * 30
        assert small.throttled_answers == 0 and live.graphql.throttled == 0
        assert len(small.effects) == 30
        # 540 points through a bucket of 20: calls waited for it (how long depends on the
        # machine's load: a slow call lets the bucket refill meanwhile)
        assert waits and all(name == "shopify" and seconds > 0 for name, seconds in waits)
    finally:
        small.stop()


def test_the_connector_estimates_each_operation_as_shopify_costs_it() -> None:
    assert {op.name: op.cost for op in OPERATIONS} == {
        op.name: requested_cost(parse(op.document)) for op in OPERATIONS}


# ---- the sandbox's magic values give the sandbox's codes -------------------------------------

MAGIC_CASES: list[tuple[str, dict[str, Any]]] = [
    ("shopify.update_price", {"product_id": "p_88", "variant_id": "v_{magic}", "old_price": 4000,
                              "new_price": 2999, "currency": "usd"}),
    ("shopify.publish_listing", {**LISTING, "product_id": "p_{magic}"}),
    ("shopify.create_discount", {"code": "c_{magic}", "percent_off": 10.0}),
    ("shopify.adjust_inventory", {"variant_id": "v_{magic}", "delta": 3, "unit_cost": 100,
                                  "currency": "usd"}),
    ("shopify.unpublish_listing", {"product_id": "p_{magic}"}),
]


def _with(params: dict[str, Any], magic: str) -> dict[str, Any]:
    return {k: v.replace("{magic}", magic) if isinstance(v, str) else v
            for k, v in params.items()}


def _outcome(run: Callable[[], Any]) -> tuple[str, str]:
    try:
        run()
    except ConnectorError as exc:
        kind = "permanent" if isinstance(exc, PermanentError) else "transient"
        return kind, exc.code
    return "ok", ""


@pytest.mark.parametrize(("tool", "params"), MAGIC_CASES, ids=[t for t, _ in MAGIC_CASES])
def test_magic_values_fail_live_as_they_fail_in_the_sandbox(
        connect: Connect, fake: FakeShopify, tool: str, params: dict[str, Any]) -> None:
    live = connect(timeout=0.3)
    sandbox = build_registry("sandbox")
    try:
        for magic in ("sandbox_declined", "sandbox_unavailable", "sandbox_timeout"):
            given = _with(params, magic)
            expected = _outcome(lambda: sandbox.execute(tool, given, idempotency_key=magic))
            assert expected[0] != "ok"
            assert _outcome(lambda: live.execute(tool, given, idempotency_key=magic)) == expected
        assert fake.effects == []
    finally:
        sandbox.close()


# ---- compensations ---------------------------------------------------------------------------

def test_every_compensation_undoes_its_action_live(live: ShopifyLive, fake: FakeShopify) -> None:
    def undo(tool: str, params: dict[str, Any], key: str) -> None:
        done = live.execute(tool, params, idempotency_key=key)
        compensation = SPECS[tool].compensate(params, done.external_id, done.summary)
        live.execute(compensation.tool, compensation.params, idempotency_key=key + "_undo")

    params = price_params(fake, old_price=3900)
    undo("shopify.update_price", params, "dec_p")
    assert next(iter(fake.variants.values())).price == "40.00"  # the price Shopify showed

    undo("shopify.publish_listing", LISTING, "dec_l")
    (created,) = [p for p in fake.products.values() if "warden:dec_l" in p.tags]
    assert created.status == "DRAFT"

    undo("shopify.create_discount", DISCOUNT, "dec_d")
    assert fake.discounts == {}
    again = live.execute("shopify.delete_discount", {"discount_id": "SPRING15"},
                         idempotency_key="dec_d_undo_again")
    assert again.summary["already_absent"] is True

    stock = stock_params(fake, delta=-9)
    undo("shopify.adjust_inventory", stock, "dec_s")
    variant = next(v for v in fake.variants.values() if v.sku == "LINEN-2")
    assert fake.stock[(variant.item, fake.location)] == 100
    assert fake.effects_by_key("inventory_adjusted") == {"dec_s": 1, "dec_s_undo": 1}


def test_the_compensators_read_the_sandbox_summaries_alike() -> None:
    sandbox = build_registry("sandbox")
    try:
        cases = {"shopify.update_price": {"product_id": "p_88", "variant_id": "v_88_1",
                                          "old_price": 4000, "new_price": 2999,
                                          "currency": "usd"},
                 "shopify.publish_listing": LISTING, "shopify.create_discount": DISCOUNT,
                 "shopify.adjust_inventory": {"variant_id": "v1", "delta": 20,
                                              "unit_cost": 500, "currency": "usd"}}
        undone = {}
        for tool, params in cases.items():
            done = sandbox.execute(tool, params, idempotency_key=f"k_{tool}")
            compensation = sandbox.compensation(tool, params, done.external_id, done.summary)
            sandbox.execute(compensation.tool, compensation.params,
                            idempotency_key=f"undo_{tool}")
            undone[tool] = (compensation.tool, compensation.params)
        assert undone["shopify.update_price"][1]["new_price"] == 4000
        assert undone["shopify.publish_listing"][0] == "shopify.unpublish_listing"
        assert undone["shopify.create_discount"][1]["discount_id"].startswith(
            "gid://shopify/DiscountCodeNode/")
        assert undone["shopify.adjust_inventory"][1]["delta"] == -20
    finally:
        sandbox.close()


def test_the_undo_tools_reconcile(live: ShopifyLive, fake: FakeShopify) -> None:
    product = fake.add_product(title="Lamp", handle="lamp")
    assert live.reconcile("shopify.unpublish_listing", {"product_id": "lamp"},
                          idempotency_key="dec_u", first_attempt_at=time.time()) is None
    live.execute("shopify.unpublish_listing", {"product_id": str(product.number)},
                 idempotency_key="dec_u")
    found = live.reconcile("shopify.unpublish_listing", {"product_id": "lamp"},
                           idempotency_key="dec_u", first_attempt_at=time.time())
    assert found is not None and found.summary == {"product_id": product.number,
                                                   "handle": "lamp", "status": "draft"}
    made = live.execute("shopify.create_discount", DISCOUNT, idempotency_key="dec_c")
    gone = {"discount_id": made.summary["discount_id"]}
    assert live.reconcile("shopify.delete_discount", gone, idempotency_key="dec_x",
                          first_attempt_at=time.time()) is None
    live.execute("shopify.delete_discount", gone, idempotency_key="dec_x")
    assert live.reconcile("shopify.delete_discount", gone, idempotency_key="dec_x",
                          first_attempt_at=time.time()) is not None


# ---- the fake against Shopify's documentation ------------------------------------------------

#: shopify.dev, GraphQL Admin API, inventoryAdjustQuantities, example "Adjusts the inventory
#: level of an inventory item at a location" (query, variables and response as documented)
DOCUMENTED_ADJUSTMENT: dict[str, Any] = {
    "query": "mutation inventoryAdjustQuantities($input: InventoryAdjustQuantitiesInput!) { "
             "inventoryAdjustQuantities(input: $input) { userErrors { field message } "
             "inventoryAdjustmentGroup { createdAt reason referenceDocumentUri "
             "changes { name delta } } } }",
    "variables": {"input": {
        "reason": "correction", "name": "available",
        "referenceDocumentUri": "logistics://some.warehouse/take/2023-01/13",
        "changes": [{"delta": -4, "inventoryItemId": "gid://shopify/InventoryItem/30322695",
                     "locationId": "gid://shopify/Location/124656943"}]}},
    "response": {"inventoryAdjustQuantities": {
        "userErrors": [],
        "inventoryAdjustmentGroup": {
            "createdAt": "2024-11-07T21:47:12Z", "reason": "Inventory correction",
            "referenceDocumentUri": "logistics://some.warehouse/take/2023-01/13",
            "changes": [{"name": "available", "delta": -4}, {"name": "on_hand", "delta": -4}]}}},
}

#: a THROTTLED answer as Shopify sends it (HTTP 200), from Shopify's community forum
DOCUMENTED_THROTTLED: dict[str, Any] = {
    "errors": [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
    "extensions": {"cost": {"requestedQueryCost": 752, "actualQueryCost": None,
                            "throttleStatus": {"maximumAvailable": 1000.0,
                                               "currentlyAvailable": 666, "restoreRate": 50.0}}},
}


def _shape(value: Any) -> Any:
    """The JSON's structure: keys, list lengths and value kinds (numbers alike)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value if not isinstance(value, str) else "string"
    return "number"


def test_the_fake_answers_the_documented_adjustment_as_documented(fake: FakeShopify) -> None:
    fake.location = 124656943
    fake.add_variant(sku="DOC", item=30322695)
    headers = {"X-Shopify-Access-Token": TOKEN}
    body: dict[str, Any] = {k: DOCUMENTED_ADJUSTMENT[k] for k in ("query", "variables")}
    answer = httpx.post(f"{fake.base_url}/admin/api/2025-10/graphql.json", json=body,
                        headers=headers).json()
    data = answer["data"]
    created = data["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"].pop("createdAt")
    expected = DOCUMENTED_ADJUSTMENT["response"]
    documented = dict(expected["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"])
    documented.pop("createdAt")
    assert data == {"inventoryAdjustQuantities": {"userErrors": [],
                                                  "inventoryAdjustmentGroup": documented}}
    assert len(created) == len("2024-11-07T21:47:12Z") and created.endswith("Z")
    assert answer["extensions"]["cost"]["requestedQueryCost"] == 10
    # from 2026-04 the same mutation needs @idempotent; with it, the key answers the first result
    required = httpx.post(f"{fake.base_url}/admin/api/2026-10/graphql.json", json=body,
                          headers=headers).json()
    assert required["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    keyed = {**body, "query": body["query"].replace(
        "inventoryAdjustQuantities(input: $input)",
        'inventoryAdjustQuantities(input: $input) @idempotent(key: "4f5b6ebf")')}
    first, second = (httpx.post(f"{fake.base_url}/admin/api/2026-10/graphql.json", json=keyed,
                                headers=headers).json() for _ in range(2))
    assert first["data"] == second["data"] and fake.effects_by_key("inventory_adjusted") == {
        None: 1, "4f5b6ebf": 1}


def test_the_fake_throttles_as_documented(fake: FakeShopify) -> None:
    with fake.lock:
        fake.maximum, fake.restore, fake._available = 1000.0, 50.0, 0.0
    answer = httpx.post(f"{fake.base_url}{GRAPHQL}", headers={"X-Shopify-Access-Token": TOKEN},
                        json={"query": "query { publications(first: 25) { nodes { id } } }"})
    assert answer.status_code == 200
    body = answer.json()
    assert _shape(body) == _shape(DOCUMENTED_THROTTLED)
    assert body["errors"] == DOCUMENTED_THROTTLED["errors"]
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 1000.0
    bad = httpx.post(f"{fake.base_url}{GRAPHQL}", headers={"X-Shopify-Access-Token": "nope"},
                     json={"query": "{ shop { name } }"})
    assert bad.status_code == 401 and bad.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    unknown = httpx.post(f"{fake.base_url}{GRAPHQL}", headers={"X-Shopify-Access-Token": TOKEN},
                         json={"query": "{ shop { name nickname } }"}).json()
    assert unknown["errors"][0]["extensions"] == {"code": "undefinedField", "typeName": "Shop",
                                                  "fieldName": "nickname"}
