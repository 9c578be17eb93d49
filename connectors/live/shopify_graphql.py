"""Shopify's Admin GraphQL endpoint as the live connector uses it: the documents it sends,
the pinned version, the cost-based rate limit, and Shopify's errors as connector errors.

Every request is `POST {base_url}/admin/api/{SHOPIFY_API_VERSION}/graphql.json` with the app's
`X-Shopify-Access-Token`. The version is pinned in the URL and checked against the answer's
`X-Shopify-API-Version`: Shopify serves a request for a version it retired with the oldest
version it still supports, so a different version there means the pinned one is no longer
served (a permanent error: update the pin after reading Shopify's changes); an answer without
the header passes.

Rate limits: Shopify's cost-based leaky bucket, one `CostBucket` per endpoint (per shop and
process, living on the runner's loop). Every answer's `extensions.cost.throttleStatus` corrects
it, less the cost of the requests still in flight; a call waits (reported through `on_wait`)
until its requested cost is available. Until the first answer tells the shop's bucket size,
calls go one at a time; a wait longer than half the call's deadline is not waited (nothing is
sent: TransientError `throttled` with `retry_after`). A `THROTTLED` answer (HTTP 200,
`errors[].extensions.code`) executed nothing: it is retried after the restore time, at most
`THROTTLED_RETRIES` times inside the call, then a TransientError with `retry_after`. HTTP 429
(Retry-After) and 5xx are transient (503: `service_unavailable`).

Errors: userErrors are Shopify refusing the input: PermanentError with each error's field and
message, coded with the userError's own code in lower case, or `unprocessable_entity` (the
REST API's 422, the code the sandbox gives) when it has none. Idempotency userErrors:
IDEMPOTENCY_KEY_PARAMETER_MISMATCH is an IdempotencyConflictError,
IDEMPOTENCY_CONCURRENT_REQUEST transient. Top-level GraphQL errors: ACCESS_DENIED and the like
are permanent (their code in lower case), INTERNAL_SERVER_ERROR transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import (
    ConnectorError,
    IdempotencyConflictError,
    PermanentError,
    TransientError,
)
from connectors.live.config import SHOPIFY_API_VERSION, ShopifyConfig
from connectors.live.http import client, json_body, redact, status_error, transport_error
from connectors.live.throttle import CostBucket, OnWait

#: THROTTLED answers retried inside one call before it gives up (transient)
THROTTLED_RETRIES = 3


@dataclass(frozen=True)
class Operation:
    """One GraphQL document and its requested cost by Shopify's rules (an object 1, a
    connection 2 + `first` × the cost of one node, a scalar 0, a mutation 10), used before the
    first answer for it tells the real figure."""

    name: str
    document: str
    cost: float


def _product_query(name: str, root: str, declarations: str, arguments: str, cost: float,
                   publication: bool) -> Operation:
    published = " publishedOnPublication(publicationId: $publication)" if publication else ""
    declared = declarations + (", $publication: ID!" if publication else "")
    fields = (f"id handle title status tags{published} "
              "variants(first: 1) { nodes { id price } }")
    if root == "products":
        selection = f"products({arguments}) {{ nodes {{ {fields} }} }}"
    else:
        selection = f"{root}({arguments}) {{ {fields} }}"
    return Operation(name, f"query {name}({declared}) {{ {selection} }}", cost)


_VARIANT = "id sku price product { id } inventoryItem { id }"
_DISCOUNT = ("id codeDiscount { ... on DiscountCodeBasic { title startsAt endsAt status "
             "codes(first: 1) { nodes { id code } } "
             "customerGets { value { ... on DiscountPercentage { percentage } } } } }")

SHOP = Operation("WardenShop", "query WardenShop { shop { name myshopifyDomain currencyCode "
                               "plan { displayName } } }", 2)
VARIANT = Operation("WardenVariant", "query WardenVariant($id: ID!) { "
                                     f"productVariant(id: $id) {{ {_VARIANT} }} }}", 3)
VARIANT_BY_SKU = Operation(
    "WardenVariantBySku", "query WardenVariantBySku($query: String!) { "
                          f"productVariants(first: 2, query: $query) {{ nodes {{ {_VARIANT} }} }} }}",
    8)
LOCATIONS = Operation("WardenLocations",
                      "query WardenLocations { locations(first: 1) { nodes { id } } }", 3)
PUBLICATIONS = Operation(
    "WardenPublications", "query WardenPublications { publications(first: 25) { nodes { id "
                          "supportsFuturePublishing catalog { title } } } }", 52)
PRODUCT = _product_query("WardenProduct", "product", "$id: ID!", "id: $id", 4, False)
PRODUCT_BY_HANDLE = _product_query("WardenProductByHandle", "productByIdentifier",
                                   "$identifier: ProductIdentifierInput!",
                                   "identifier: $identifier", 4, False)
LISTING = _product_query("WardenListing", "product", "$id: ID!", "id: $id", 4, True)
LISTING_BY_HANDLE = _product_query("WardenListingByHandle", "productByIdentifier",
                                   "$identifier: ProductIdentifierInput!",
                                   "identifier: $identifier", 4, True)
LISTING_BY_TAG = _product_query("WardenListingByTag", "products", "$query: String!",
                                "first: 1, query: $query", 6, True)
DISCOUNT_BY_CODE = Operation("WardenDiscountByCode",
                             "query WardenDiscountByCode($code: String!) { "
                             f"codeDiscountNodeByCode(code: $code) {{ {_DISCOUNT} }} }}", 7)
DISCOUNT = Operation("WardenDiscount", "query WardenDiscount($id: ID!) { "
                                       f"codeDiscountNode(id: $id) {{ {_DISCOUNT} }} }}", 7)

UPDATE_PRICE = Operation(
    "WardenUpdatePrice",
    "mutation WardenUpdatePrice($productId: ID!, $variants: [ProductVariantsBulkInput!]!) { "
    "productVariantsBulkUpdate(productId: $productId, variants: $variants) { "
    "product { id } productVariants { id price } userErrors { field message code } } }", 10)
CREATE_PRODUCT = Operation(
    "WardenCreateProduct",
    "mutation WardenCreateProduct($product: ProductCreateInput!) { productCreate(product: "
    "$product) { product { id handle title status tags variants(first: 1) { nodes { id price } "
    "} } userErrors { field message } } }", 10)
UPDATE_PRODUCT = Operation(
    "WardenUpdateProduct",
    "mutation WardenUpdateProduct($product: ProductUpdateInput!) { productUpdate(product: "
    "$product) { product { id handle title status tags variants(first: 1) { nodes { id price } "
    "} } userErrors { field message } } }", 10)
PUBLISH = Operation(
    "WardenPublish",
    "mutation WardenPublish($id: ID!, $input: [PublicationInput!]!) { publishablePublish(id: "
    "$id, input: $input) { publishable { ... on Product { id } } userErrors { field message } "
    "} }", 10)
CREATE_DISCOUNT = Operation(
    "WardenCreateDiscount",
    "mutation WardenCreateDiscount($discount: DiscountCodeBasicInput!) { "
    f"discountCodeBasicCreate(basicCodeDiscount: $discount) {{ codeDiscountNode {{ {_DISCOUNT} "
    "} userErrors { field message code } } }", 10)
DELETE_DISCOUNT = Operation(
    "WardenDeleteDiscount",
    "mutation WardenDeleteDiscount($id: ID!) { discountCodeDelete(id: $id) { "
    "deletedCodeDiscountId userErrors { field message code } } }", 10)
ADJUST_INVENTORY = Operation(
    "WardenAdjustInventory",
    "mutation WardenAdjustInventory($input: InventoryAdjustQuantitiesInput!, $key: String!) { "
    "inventoryAdjustQuantities(input: $input) @idempotent(key: $key) { "
    "inventoryAdjustmentGroup { id createdAt reason referenceDocumentUri "
    "changes { name delta quantityAfterChange } } userErrors { field message code } } }", 10)

OPERATIONS: tuple[Operation, ...] = (
    SHOP, VARIANT, VARIANT_BY_SKU, LOCATIONS, PUBLICATIONS, PRODUCT, PRODUCT_BY_HANDLE, LISTING,
    LISTING_BY_HANDLE, LISTING_BY_TAG, DISCOUNT_BY_CODE, DISCOUNT, UPDATE_PRICE, CREATE_PRODUCT,
    UPDATE_PRODUCT, PUBLISH, CREATE_DISCOUNT, DELETE_DISCOUNT, ADJUST_INVENTORY)


class ShopifyGraphql:
    """One shop's Admin GraphQL endpoint at the pinned version, with its cost bucket.

    Its client, bucket and locks belong to the loop that first uses them (the runner's; a new
    loop, as after a fork, gets its own).
    """

    def __init__(self, config: ShopifyConfig, *, timeout: float, on_wait: OnWait | None = None,
                 name: str = "shopify") -> None:
        self.config = config
        self.timeout = timeout
        self.on_wait = on_wait
        self.name = name
        self.path = f"/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        self._secrets = (config.access_token,)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._bucket: CostBucket | None = None
        self._probe: asyncio.Lock | None = None
        self._learned = False  # an answer has told the shop's bucket
        self._in_flight = 0.0  # requested cost of the requests sent and not answered yet
        self._costs: dict[str, float] = {}  # requestedQueryCost per operation, from answers
        #: THROTTLED answers received (they executed nothing); for tests and metrics
        self.throttled = 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _state(self) -> tuple[httpx.AsyncClient, CostBucket]:
        """The client and the cost bucket of the running loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._bucket is None:
            self._loop = loop
            self._client = client(self.config.base_url, timeout=self.timeout, headers={
                "X-Shopify-Access-Token": self.config.access_token,
                "Content-Type": "application/json", "Accept": "application/json"})
            self._bucket = CostBucket(name=self.name, on_wait=self.on_wait)
            self._probe = asyncio.Lock()
            self._learned, self._in_flight = False, 0.0
        return self._client, self._bucket

    async def request(self, operation: Operation, variables: Mapping[str, Any], *,
                      what: str) -> dict[str, Any]:
        """The `data` of one operation, waiting for the cost bucket and retrying THROTTLED."""
        http, bucket = self._state()
        attempts = 0
        while True:
            cost = self._costs.get(operation.name, operation.cost)
            body: dict[str, Any] | None = None
            if not self._learned and self._probe is not None:
                async with self._probe:  # until an answer tells the shop's bucket: one at a time
                    if not self._learned:
                        body = await self._send(http, bucket, operation, variables, cost, what)
            if body is None:
                body = await self._send(http, bucket, operation, variables, cost, what)
            errors = body.get("errors")
            if isinstance(errors, list) and any(_code(e) == "THROTTLED" for e in errors):
                self.throttled += 1
                attempts += 1
                if attempts > THROTTLED_RETRIES:
                    raise TransientError(
                        f"{what}: Shopify throttled the request {attempts} times (its cost "
                        "bucket is shared with other clients of the shop)", code="throttled",
                        retry_after=max(1.0, round(bucket.wait_for(cost), 3)))
                continue  # the bucket, corrected by the answer, waits for the restore
            if errors:
                raise _graphql_error(errors, what, self._secrets)
            data = body.get("data")
            if not isinstance(data, dict):
                raise TransientError(f"{what}: Shopify answered without data", code="bad_answer")
            return data

    async def _send(self, http: httpx.AsyncClient, bucket: CostBucket, operation: Operation,
                    variables: Mapping[str, Any], cost: float, what: str) -> dict[str, Any]:
        wait = bucket.wait_for(cost)
        if wait > self.timeout / 2:  # a wait the call's deadline cannot afford: nothing sent
            raise TransientError(f"{what}: Shopify's cost bucket needs {wait:.1f} s to restore "
                                 f"the {cost:g} points this request costs; nothing was sent",
                                 code="throttled", retry_after=round(wait, 3))
        await bucket.acquire(cost)
        self._in_flight += cost
        try:
            response = await http.post(self.path, json={
                "query": operation.document, "variables": dict(variables),
                "operationName": operation.name})
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise transport_error(exc, what, self._secrets) from None
        finally:
            self._in_flight -= cost
        body = self._answer(response, what)
        status = ((body.get("extensions") or {}).get("cost") or {})
        throttle = status.get("throttleStatus") or {}
        try:
            maximum = float(throttle["maximumAvailable"])
            available = float(throttle["currentlyAvailable"])
            restore = float(throttle["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return body
        # Shopify's figure less what the others in flight will spend (in it already, or not
        # yet: counted as not), and never above our own reckoning (answers can arrive out of
        # order): waiting a little longer, never being throttled for it
        bucket.observe(maximum, min(bucket.available(), available - self._in_flight), restore)
        self._learned = True
        requested = status.get("requestedQueryCost")
        if isinstance(requested, int | float) and requested > 0:
            self._costs[operation.name] = float(requested)
        return body

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any]:
        served = response.headers.get("x-shopify-api-version")
        if served is not None and served != SHOPIFY_API_VERSION:
            raise PermanentError(
                f"{what}: Shopify answered with API version {served}, not the pinned "
                f"{SHOPIFY_API_VERSION}: the pinned version is no longer served; review Shopify's "
                "changes and update SHOPIFY_API_VERSION", code="api_version_not_served")
        status = response.status_code
        if status == 200:
            body = json_body(response, what)
            if not isinstance(body, dict):
                raise TransientError(f"{what}: Shopify's answer is not a JSON object",
                                     code="bad_answer")
            return body
        message = redact(_error_text(response), self._secrets)
        if status == 404:
            raise PermanentError(
                f"{what}: HTTP 404 for {self.path}: the shop's address is wrong, or Shopify does "
                f"not serve API version {SHOPIFY_API_VERSION} ({message or 'Not Found'})",
                code="not_found")
        raise status_error(status, what, f"HTTP {status}: {message}" if message else "",
                           code="service_unavailable" if status == 503 else None,
                           headers=response.headers)

    def user_errors(self, payload: Mapping[str, Any] | None, what: str) -> None:
        """Raise the connector error for a mutation payload's userErrors, if it has any."""
        if payload is None:
            raise TransientError(f"{what}: Shopify answered without the mutation's payload",
                                 code="bad_answer")
        errors = payload.get("userErrors") or []
        if not errors:
            return
        text = redact("; ".join(_user_error_text(e) for e in errors[:5]), self._secrets)
        code = errors[0].get("code")
        if code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH":
            raise IdempotencyConflictError(f"{what}: Shopify holds this decision's key for another "
                                           f"request: {text}")
        if code == "IDEMPOTENCY_CONCURRENT_REQUEST":
            raise TransientError(f"{what}: a request with this key is in progress: {text}",
                                 code="idempotency_concurrent_request", retry_after=1.0)
        raise PermanentError(f"{what}: Shopify refused it: {text}",
                             code=str(code).lower() if code else "unprocessable_entity")



# -------------------------------------------------------------------------- helpers

def _code(error: Any) -> str | None:
    if isinstance(error, dict):
        code = (error.get("extensions") or {}).get("code")
        return str(code) if code is not None else None
    return None


def _graphql_error(errors: list[Any], what: str, secrets: tuple[str, ...]) -> ConnectorError:
    messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                         for e in errors[:3])
    text = f"{what}: Shopify refused the request: {redact(messages, secrets)}"
    code = next((c for c in map(_code, errors) if c), None)
    if code == "INTERNAL_SERVER_ERROR":
        return TransientError(text, code="provider_error")
    return PermanentError(text, code=code.lower() if code else "graphql_error")


def _user_error_text(error: Mapping[str, Any]) -> str:
    field = error.get("field")
    where = ".".join(str(part) for part in field) if isinstance(field, list) else ""
    code = f" ({error['code']})" if error.get("code") else ""
    return f"{where + ': ' if where else ''}{error.get('message', 'refused')}{code}"


def _error_text(response: httpx.Response) -> str:
    """Shopify's error body as text: `{"errors": "..."}`, `{"errors": {...}}` or a list."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    errors = body.get("errors") if isinstance(body, dict) else body
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                         for e in errors[:3])
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
    return str(body)[:200]
