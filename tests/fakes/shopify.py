"""A fake Shopify Admin GraphQL API on loopback, answering the documents the live connector
sends the way Shopify's reference describes them.

    fake = FakeShopify(access_token="shpat_test", maximum=2000.0, restore=100.0).start()
    variant = fake.add_variant(sku="LINEN-1", price="40.00")     # a catalog to act on
    ...
    fake.effects                 # price_set, product_created, published, product_updated,
                                 # discount_created, discount_deleted, inventory_adjusted
    fake.fail("* inventoryAdjustQuantities", kind="drop_after")   # faults by root field too

Faults (`FakeProvider.fail`) match `POST /admin/api/{version}/graphql.json <root fields>`, so a
test can make one operation of a call fail: `"* productCreate"`, or every request: `"POST *"`.

What it serves, and how:

- `POST /admin/api/{version}/graphql.json` only. A version Shopify does not serve is a 404
  (`SUPPORTED_VERSIONS`); `serve_version` makes the answers name another version in
  `X-Shopify-API-Version`, as Shopify does when it falls back from a version it retired. A
  wrong `X-Shopify-Access-Token` is a 401 with Shopify's body.
- The document is read by a small parser of the GraphQL subset the connector uses (operation,
  root fields, arguments, `@directives`, nested selections, inline fragments); the answer holds
  exactly the fields selected, and a field the type does not have is an `undefinedField` error,
  as Shopify answers it.
- Cost: the requested cost follows Shopify's rules (an object 1, a connection 2 + `first` × one
  node, a scalar 0, a mutation 10) and a real leaky bucket (`maximum`, `restore` per second);
  a request the bucket cannot pay is answered `THROTTLED` (HTTP 200, nothing executed). Every
  answer carries `extensions.cost` (`requestedQueryCost`, `actualQueryCost`, `throttleStatus`).
- `inventoryAdjustQuantities` needs `@idempotent(key:)` from 2026-04 (an error without it); the
  same key with the same input answers the original result, with other input the userError
  IDEMPOTENCY_KEY_PARAMETER_MISMATCH. Discount codes are unique (userError TAKEN).
- Search (`products(query: "tag:...")`, `productVariants(query: "sku:...")`) lags
  `search_lag` seconds behind a create, as Shopify's search index does.
- `auto_catalog` (default on): a product or variant looked up by a number, a SKU or a handle
  the shop does not have exists from then on (price 0.00, stock 100), as any id does in the
  sandbox, and a variant made up so belongs to the product a price change names; off, such
  look-ups find nothing. `add_variant(number=2001, product=1001, price="40.00")` seeds one.
- Magic values (the sandbox's) in a request's variables or in the SKU or handle of what a
  mutation touches: `sandbox_declined` → a userError without a code; `sandbox_unavailable` →
  HTTP 503 with `Retry-After: 1`; `sandbox_timeout` → no answer for `hang_seconds`.

The error text for a missing `@idempotent` is the fake's own wording: Shopify documents that the
call fails at run time, not its message.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from http.server import BaseHTTPRequestHandler

from fakes.base import Fault, FakeProvider, Reply, Request

SUPPORTED_VERSIONS = ("2025-10", "2026-01", "2026-04", "2026-07", "2026-10")
IDEMPOTENCY_REQUIRED_FROM = "2026-04"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
#: the documented label of each adjustment reason the fake knows
REASONS = {"correction": "Inventory correction", "received": "Inventory received",
           "restock": "Restock", "damaged": "Damaged", "shrinkage": "Shrinkage",
           "cycle_count_available": "Cycle count", "other": "Other"}


# ------------------------------------------------------------------------- reading documents

_TOKEN = re.compile(r'(?P<skip>[\s,]+|#[^\n]*)|(?P<spread>\.\.\.)|(?P<punct>[{}()\[\]:=@!$])'
                    r'|(?P<string>"(?:[^"\\]|\\.)*")'
                    r'|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
                    r'|(?P<name>[_A-Za-z][_0-9A-Za-z]*)')


class GraphqlSyntaxError(ValueError):
    """A document the fake cannot read (Shopify answers it with a parse error)."""


@dataclass(frozen=True)
class Var:
    name: str


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    directives: dict[str, dict[str, Any]] = field(default_factory=dict)
    selections: list[Field | Fragment] = field(default_factory=list)


@dataclass
class Fragment:
    on: str
    selections: list[Field | Fragment]


@dataclass
class Document:
    kind: str  # query | mutation
    name: str | None
    fields: list[Field | Fragment]


def parse(text: str) -> Document:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise GraphqlSyntaxError(f"unexpected character {text[position]!r} at {position}")
        position = match.end()
        kind = match.lastgroup
        if kind != "skip" and kind is not None:
            tokens.append((kind, match.group()))
    return _Parser(tokens).document()


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.at >= len(self.tokens):
            raise GraphqlSyntaxError("unexpected end of document")
        value = self.tokens[self.at][1]
        if expected is not None and value != expected:
            raise GraphqlSyntaxError(f"expected {expected!r}, found {value!r}")
        self.at += 1
        return value

    def document(self) -> Document:
        kind, name = "query", None
        if self.peek() in ("query", "mutation"):
            kind = self.take()
            if self.peek() not in ("{", "("):
                name = self.take()
            if self.peek() == "(":  # variable definitions: skipped, balanced
                depth = 0
                while True:
                    token = self.take()
                    depth += {"(": 1, ")": -1}.get(token, 0)
                    if depth == 0:
                        break
        fields = self.selection_set()
        if self.peek() is not None:
            raise GraphqlSyntaxError(f"unexpected {self.peek()!r} after the operation")
        return Document(kind, name, fields)

    def selection_set(self) -> list[Field | Fragment]:
        self.take("{")
        selections: list[Field | Fragment] = []
        while self.peek() != "}":
            if self.peek() == "...":
                self.take()
                self.take("on")
                on = self.take()
                selections.append(Fragment(on, self.selection_set()))
                continue
            name = self.take()
            selection = Field(name)
            if self.peek() == "(":
                selection.args = self.arguments()
            while self.peek() == "@":
                self.take()
                directive = self.take()
                selection.directives[directive] = self.arguments() if self.peek() == "(" else {}
            if self.peek() == "{":
                selection.selections = self.selection_set()
            selections.append(selection)
        self.take("}")
        return selections

    def arguments(self) -> dict[str, Any]:
        self.take("(")
        args: dict[str, Any] = {}
        while self.peek() != ")":
            name = self.take()
            self.take(":")
            args[name] = self.value()
        self.take(")")
        return args

    def value(self) -> Any:
        kind, token = self.tokens[self.at]
        if token == "$":
            self.take()
            return Var(self.take())
        if token == "[":
            self.take()
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if token == "{":
            self.take()
            fields: dict[str, Any] = {}
            while self.peek() != "}":
                name = self.take()
                self.take(":")
                fields[name] = self.value()
            self.take("}")
            return fields
        self.take()
        if kind == "string":
            return json.loads(token)
        if kind == "number":
            return float(token) if any(c in token for c in ".eE") else int(token)
        return {"true": True, "false": False, "null": None}.get(token, token)


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    return value


def requested_cost(document: Document) -> int:
    """Shopify's rules: a mutation 10; an object 1 + its fields; a connection (`first`) 2 +
    first × one node; a scalar 0."""
    if document.kind == "mutation":
        return 10 * len(document.fields)
    return sum(_cost(s) for s in document.fields)


def _cost(selection: Field | Fragment) -> int:
    children = sum(_cost(s) for s in selection.selections)
    if isinstance(selection, Fragment):
        return children
    if not selection.selections:
        return 0
    first = selection.args.get("first")
    if isinstance(first, int):
        return 2 + first * children
    return 1 + children


class UndefinedField(Exception):
    def __init__(self, name: str, type_name: str) -> None:
        super().__init__(name)
        self.name = name
        self.type_name = type_name


def project(value: Any, selections: list[Field | Fragment], variables: dict[str, Any]) -> Any:
    """`value` (a dict whose relations may be callables taking the field's arguments) as the
    selection asks for it; a field the object does not have raises UndefinedField."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selections, variables) for item in value]
    out: dict[str, Any] = {}
    for selection in selections:
        if isinstance(selection, Fragment):
            if value.get("__typename") == selection.on:
                out.update(project(value, selection.selections, variables))
            continue
        if selection.name not in value:
            raise UndefinedField(selection.name, str(value.get("__typename", "object")))
        item = value[selection.name]
        if callable(item):
            item = item(resolve(selection.args, variables))
        out[selection.name] = project(item, selection.selections, variables) \
            if selection.selections else item
    return out


# ------------------------------------------------------------------------- the shop's objects

@dataclass
class Product:
    number: int
    title: str
    handle: str
    description_html: str = ""
    status: str = "ACTIVE"
    tags: list[str] = field(default_factory=list)
    variants: list[int] = field(default_factory=list)
    published: set[str] = field(default_factory=set)
    created: float = 0.0  # time.time(); 0: there before anything was indexed
    auto: bool = False  # made up by a look-up (auto_catalog)

    @property
    def gid(self) -> str:
        return f"gid://shopify/Product/{self.number}"


@dataclass
class Variant:
    number: int
    product: int
    sku: str
    price: str
    item: int
    created: float = 0.0
    auto: bool = False  # made up by a look-up: it belongs to the product a mutation names

    @property
    def gid(self) -> str:
        return f"gid://shopify/ProductVariant/{self.number}"


@dataclass
class Discount:
    number: int
    code_number: int
    title: str
    code: str
    starts_at: str
    ends_at: str | None
    percentage: float


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(gid: Any, kind: str) -> int | None:
    match = re.fullmatch(rf"gid://shopify/{kind}/([0-9]+)", str(gid or ""))
    return int(match[1]) if match else None


def _search_terms(query: str) -> dict[str, str]:
    return {name: quoted if quoted is not None and quoted != "" else bare
            for name, quoted, bare in re.findall(r'(\w+):(?:"([^"]*)"|(\S+))', query or "")}


def _label(*values: Any) -> str:
    return json.dumps(values, default=str)


class FakeShopify(FakeProvider):
    name = "shopify"

    def __init__(self, *, access_token: str = "shpat_fake_token", maximum: float = 2000.0,
                 restore: float = 100.0, currency: str = "USD", auto_catalog: bool = True,
                 search_lag: float = 0.0, hang_seconds: float = 30.0) -> None:
        super().__init__()
        self.access_token = access_token
        self.currency = currency
        self.auto_catalog = auto_catalog
        self.search_lag = search_lag
        self.hang_seconds = hang_seconds
        self.serve_version: str | None = None  # answer as if this version were served
        self.shop_name = "Warden Test Shop"
        self.domain = "warden-test.myshopify.com"
        # the leaky bucket
        self.maximum = maximum
        self.restore = restore
        self._available = maximum
        self._stamp = time.monotonic()
        self.throttled_answers = 0
        # the catalog
        self._next = 1_000_000_000_001
        self.products: dict[int, Product] = {}
        self.variants: dict[int, Variant] = {}
        self.stock: dict[tuple[int, int], int] = {}  # (inventory item, location) → available
        self.location = 65_000_000_001
        self.publications = [
            {"id": "gid://shopify/Publication/80000000001", "supportsFuturePublishing": True,
             "catalog": {"__typename": "AppCatalog", "title": "Online Store"}},
            {"id": "gid://shopify/Publication/80000000002", "supportsFuturePublishing": False,
             "catalog": {"__typename": "AppCatalog", "title": "Point of Sale"}}]
        self.discounts: dict[int, Discount] = {}
        self.adjustments: dict[str, tuple[str, dict[str, Any]]] = {}  # key → (input hash, group)
        self._release = threading.Event()
        self._local = threading.local()
        self.operations: list[str] = []  # each request's root fields, in arrival order

    def start(self) -> FakeShopify:
        super().start()
        return self

    def stop(self) -> None:
        self._release.set()  # hung answers end with the server
        super().stop()

    # -- faults by operation -------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        """Read the body first, to name the request's root fields for the fault patterns."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            document = parse(json.loads(body or b"{}").get("query", ""))
            self._local.operation = " ".join(
                f.name for f in document.fields if isinstance(f, Field))
        except (ValueError, AttributeError, GraphqlSyntaxError):
            self._local.operation = ""
        with self.lock:
            self.operations.append(self._local.operation)
        stream = handler.rfile
        handler.rfile = io.BytesIO(body)
        try:
            super()._dispatch(handler)
        finally:
            handler.rfile = stream  # the connection's next request reads on

    def _take_fault(self, route: Any) -> Fault | None:
        """The route faults match, with the request's root fields after it (a base that
        matches the request itself gets the request unchanged)."""
        if isinstance(route, str):
            route = f"{route} {getattr(self._local, 'operation', '')}".rstrip()
        return super()._take_fault(route)

    # -- seeding (tests) -----------------------------------------------------------------------

    def _id(self) -> int:
        self._next += 1
        return self._next

    def add_product(self, *, title: str = "Sandbox product", handle: str | None = None,
                    number: int | None = None, price: str = "0.00", sku: str = "",
                    tags: list[str] | None = None, status: str = "ACTIVE",
                    created: float = 0.0) -> Product:
        with self.lock:
            product = Product(number or self._id(), title,
                              handle or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
                              status=status, tags=list(tags or []), created=created)
            self.products[product.number] = product
            self.add_variant(product=product.number, sku=sku, price=price, created=created)
            return product

    def add_variant(self, *, product: int | None = None, sku: str = "", price: str = "0.00",
                    number: int | None = None, stock: int = 100, created: float = 0.0,
                    item: int | None = None) -> Variant:
        with self.lock:
            if product is None or product not in self.products:
                owner = Product(product or self._id(), f"Product {sku or 'sandbox'}", "",
                                created=created)
                owner.handle = f"product-{owner.number}"
                self.products[owner.number] = owner
                return self.add_variant(product=owner.number, sku=sku, price=price,
                                        number=number, stock=stock, created=created, item=item)
            variant = Variant(number or self._id(), product, sku, price, item or self._id(),
                              created)
            self.variants[variant.number] = variant
            self.products[product].variants.append(variant.number)
            self.stock[(variant.item, self.location)] = stock
            return variant

    # -- serving -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        match = re.fullmatch(r"/admin/api/([^/]+)/graphql\.json", request.path)
        if request.method != "POST" or match is None or match[1] not in SUPPORTED_VERSIONS:
            return Reply(404, {"errors": "Not Found"})
        version = match[1]
        headers = {"X-Shopify-API-Version": self.serve_version or version,
                   "X-Request-Id": hashlib.sha256(request.body + str(time.time()).encode())
                   .hexdigest()[:32]}
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return Reply(401, {"errors": INVALID_TOKEN}, headers)
        try:
            body = request.json()
            document = parse(body["query"])
            variables = body.get("variables") or {}
        except (ValueError, KeyError, TypeError, GraphqlSyntaxError) as exc:
            return Reply(400, {"errors": {"query": f"Required parameter missing or invalid ({exc})"}},
                         headers)
        magic = json.dumps(variables)
        if "sandbox_unavailable" in magic:
            return Reply(503, {"errors": "Service Unavailable"}, {**headers, "Retry-After": "1"})
        if "sandbox_timeout" in magic:
            self._release.wait(self.hang_seconds)
            return Reply(503, {"errors": "Service Unavailable"}, headers)
        with self.lock:
            cost = requested_cost(document)
            available = self._refill()
            if available < cost:
                self.throttled_answers += 1
                return Reply(200, {
                    "errors": [{"message": "Throttled", "extensions": {
                        "code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}],
                    "extensions": {"cost": self._cost(cost, None)}}, headers)
            try:
                data = self._execute(document, variables, version)
            except UndefinedField as exc:
                return Reply(200, {"errors": [{
                    "message": f"Field '{exc.name}' doesn't exist on type '{exc.type_name}'",
                    "extensions": {"code": "undefinedField", "typeName": exc.type_name,
                                   "fieldName": exc.name}}]}, headers)
            except GraphqlError as exc:
                self._available -= cost
                return Reply(200, {"errors": [exc.error], "extensions": {
                    "cost": self._cost(cost, cost)}}, headers)
            self._available -= cost
            return Reply(200, {"data": data, "extensions": {"cost": self._cost(cost, cost)}},
                         headers)

    def _refill(self) -> float:
        now = time.monotonic()
        self._available = min(self.maximum, self._available + (now - self._stamp) * self.restore)
        self._stamp = now
        return self._available

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": {
            "maximumAvailable": self.maximum, "currentlyAvailable": round(self._available, 1),
            "restoreRate": self.restore}}

    def _execute(self, document: Document, variables: dict[str, Any],
                 version: str) -> dict[str, Any]:
        roots = self._mutations if document.kind == "mutation" else self._queries
        data: dict[str, Any] = {}
        for selection in document.fields:
            if isinstance(selection, Fragment) or selection.name not in roots:
                name = getattr(selection, "name", "...")
                raise UndefinedField(name, "Mutation" if document.kind == "mutation" else "QueryRoot")
            args = resolve(selection.args, variables)
            resolved = Field(selection.name, args, resolve(selection.directives, variables),
                             selection.selections)
            value = roots[selection.name](self, args, resolved, version)
            data[selection.name] = project(value, selection.selections, variables) \
                if selection.selections else value
        return data

    # -- rendering objects ---------------------------------------------------------------------

    def _product_obj(self, product: Product) -> dict[str, Any]:
        return {
            "__typename": "Product", "id": product.gid, "title": product.title,
            "handle": product.handle, "descriptionHtml": product.description_html,
            "status": product.status, "tags": sorted(product.tags),
            "publishedOnPublication": lambda args: args.get("publicationId") in product.published,
            "variants": lambda args: {"nodes": [self._variant_obj(self.variants[v])
                                                for v in product.variants[:args.get("first", 250)]]}}

    def _variant_obj(self, variant: Variant) -> dict[str, Any]:
        return {"__typename": "ProductVariant", "id": variant.gid, "sku": variant.sku,
                "price": variant.price, "title": "Default Title",
                "product": lambda args: self._product_obj(self.products[variant.product]),
                "inventoryItem": lambda args: {
                    "__typename": "InventoryItem", "id": f"gid://shopify/InventoryItem/{variant.item}",
                    "tracked": True}}

    def _discount_obj(self, discount: Discount) -> dict[str, Any]:
        return {"__typename": "DiscountCodeNode",
                "id": f"gid://shopify/DiscountCodeNode/{discount.number}",
                "codeDiscount": {
                    "__typename": "DiscountCodeBasic", "title": discount.title,
                    "startsAt": discount.starts_at, "endsAt": discount.ends_at,
                    "status": "ACTIVE", "codes": lambda args: {"nodes": [{
                        "__typename": "DiscountRedeemCode", "code": discount.code,
                        "id": f"gid://shopify/DiscountRedeemCode/{discount.code_number}"}]},
                    "customerGets": {"__typename": "DiscountCustomerGets", "value": {
                        "__typename": "DiscountPercentage", "percentage": discount.percentage}}}}

    @staticmethod
    def _user_error(message: str, path: list[str] | None = None, code: str | None = None,
                    coded: bool = True) -> dict[str, Any]:
        error: dict[str, Any] = {"__typename": "UserError", "field": path, "message": message}
        if coded:
            error["code"] = code
        return error

    # -- queries -------------------------------------------------------------------------------

    def _q_shop(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        return {"__typename": "Shop", "name": self.shop_name, "myshopifyDomain": self.domain,
                "currencyCode": self.currency, "plan": {"__typename": "ShopPlan",
                                                        "displayName": "Basic"}}

    def _variant_by_number(self, number: int | None) -> Variant | None:
        if number is None:
            return None
        variant = self.variants.get(number)
        if variant is None and self.auto_catalog:
            variant = self.add_variant(number=number)
            variant.auto = self.products[variant.product].auto = True
        return variant

    def _q_product_variant(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        variant = self._variant_by_number(_number(args.get("id"), "ProductVariant"))
        return self._variant_obj(variant) if variant else None

    def _searchable(self, created: float) -> bool:
        return created == 0.0 or time.time() - created >= self.search_lag

    def _q_product_variants(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        sku = _search_terms(args.get("query", "")).get("sku")
        found = [v for v in self.variants.values()
                 if (sku is None or v.sku == sku) and self._searchable(v.created)]
        if not found and sku and self.auto_catalog:
            made = self.add_variant(sku=sku)
            made.auto = self.products[made.product].auto = True
            found = [made]
        return {"nodes": [self._variant_obj(v) for v in found[:args.get("first", 50)]]}

    def _product_by(self, number: int | None = None, handle: str | None = None) -> Product | None:
        for product in self.products.values():
            if product.number == number or (handle is not None and product.handle == handle):
                return product
        if self.auto_catalog and (number is not None or handle):
            made = self.add_product(title=f"Product {handle or number}", handle=handle,
                                    number=number)
            made.auto = True
            return made
        return None

    def _q_product(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        product = self._product_by(number=_number(args.get("id"), "Product"))
        return self._product_obj(product) if product else None

    def _q_product_by_identifier(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        identifier = args.get("identifier") or {}
        product = self._product_by(number=_number(identifier.get("id"), "Product"),
                                   handle=identifier.get("handle"))
        return self._product_obj(product) if product else None

    def _q_products(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        tag = _search_terms(args.get("query", "")).get("tag")
        found = [p for p in self.products.values()
                 if (tag is None or tag in p.tags) and self._searchable(p.created)]
        return {"nodes": [self._product_obj(p) for p in found[:args.get("first", 50)]]}

    def _q_locations(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        return {"nodes": [{"__typename": "Location", "name": "Shop location",
                           "id": f"gid://shopify/Location/{self.location}"}][:args.get("first", 50)]}

    def _q_publications(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        return {"nodes": [{"__typename": "Publication", **p}
                          for p in self.publications[:args.get("first", 50)]]}

    def _q_discount_by_code(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        code = str(args.get("code", "")).lower()
        found = [d for d in self.discounts.values() if d.code.lower() == code]
        return self._discount_obj(found[0]) if found else None

    def _q_discount(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        discount = self.discounts.get(_number(args.get("id"), "DiscountCodeNode") or 0)
        return self._discount_obj(discount) if discount else None

    _queries: dict[str, Callable[..., Any]] = {
        "shop": _q_shop, "productVariant": _q_product_variant,
        "productVariants": _q_product_variants, "product": _q_product,
        "productByIdentifier": _q_product_by_identifier, "products": _q_products,
        "locations": _q_locations, "publications": _q_publications,
        "codeDiscountNodeByCode": _q_discount_by_code, "codeDiscountNode": _q_discount}

    # -- mutations -----------------------------------------------------------------------------

    def _declined(self, args: dict[str, Any], *labels: Any) -> bool:
        return "sandbox_declined" in _label(args, *labels)

    def _m_variants_bulk_update(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        number = _number(args.get("productId"), "Product")
        product = self.products.get(number or 0)
        if product is None and number is not None and self.auto_catalog:
            product = self._product_by(number=number)
        changes = args.get("variants") or []
        for change in changes:  # a made-up variant belongs to the product that names it
            variant = self.variants.get(_number(change.get("id"), "ProductVariant") or 0)
            if product is not None and variant is not None and variant.auto \
                    and variant.product != product.number:
                self.products[variant.product].variants.remove(variant.number)
                variant.product = product.number
                product.variants.append(variant.number)
        if product is None:
            return {"product": None, "productVariants": None, "userErrors": [self._user_error(
                "Product does not exist", ["productId"], "PRODUCT_DOES_NOT_EXIST")]}
        variants = [self.variants.get(_number(c.get("id"), "ProductVariant") or 0)
                    for c in changes]
        for index, variant in enumerate(variants):
            if variant is None or variant.product != product.number:
                return {"product": self._product_obj(product), "productVariants": None,
                        "userErrors": [self._user_error(
                            "Product variant does not exist", ["variants", str(index), "id"],
                            "PRODUCT_VARIANT_DOES_NOT_EXIST")]}
        if self._declined(args, product.handle, [v.sku for v in variants if v]):
            return {"product": self._product_obj(product), "productVariants": None,
                    "userErrors": [self._user_error("The variant cannot be changed "
                                                    "(sandbox_declined)", ["variants", "0"])]}
        for index, (change, variant) in enumerate(zip(changes, variants, strict=True)):
            assert variant is not None
            if "price" in change:
                try:
                    price = float(change["price"])
                except (TypeError, ValueError):
                    price = -1.0
                if price < 0:
                    return {"product": self._product_obj(product), "productVariants": None,
                            "userErrors": [self._user_error(
                                "Price must be greater than or equal to 0",
                                ["variants", str(index), "price"], "INVALID_INPUT")]}
                variant.price = f"{price:.2f}"
                self.effect("price_set", None, variant=variant.gid, price=variant.price)
        return {"product": self._product_obj(product),
                "productVariants": [self._variant_obj(v) for v in variants if v],
                "userErrors": []}

    def _m_product_create(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        fields = args.get("product") or {}
        if not fields.get("title"):
            return {"product": None, "userErrors": [self._user_error(
                "Title can't be blank", ["title"], coded=False)]}
        if self._declined(args):
            return {"product": None, "userErrors": [self._user_error(
                "The product cannot be created (sandbox_declined)", ["title"], coded=False)]}
        product = self.add_product(title=fields["title"], status=fields.get("status", "ACTIVE"),
                                   tags=fields.get("tags"), created=time.time())
        product.description_html = fields.get("descriptionHtml", "")
        taken = {p.handle for p in self.products.values() if p is not product}
        base, suffix = product.handle or "product", 1
        while product.handle in taken or not product.handle:
            product.handle, suffix = f"{base}-{suffix}", suffix + 1
        marks = [t[len("warden:"):] for t in product.tags if t.startswith("warden:")]
        self.effect("product_created", marks[0] if marks else None, product=product.gid)
        return {"product": self._product_obj(product), "userErrors": []}

    def _m_product_update(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        fields = args.get("product") or {}
        product = self.products.get(_number(fields.get("id"), "Product") or 0)
        if product is None:
            return {"product": None, "userErrors": [self._user_error(
                "Product does not exist", ["id"], coded=False)]}
        if self._declined(args, product.handle, product.title):
            return {"product": None, "userErrors": [self._user_error(
                "The product cannot be changed (sandbox_declined)", ["id"], coded=False)]}
        for key, attribute in (("title", "title"), ("descriptionHtml", "description_html"),
                               ("status", "status"), ("tags", "tags")):
            if key in fields:
                setattr(product, attribute, list(fields[key]) if key == "tags" else fields[key])
        self.effect("product_updated", None, product=product.gid, fields=sorted(fields))
        return {"product": self._product_obj(product), "userErrors": []}

    def _m_publishable_publish(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        product = self.products.get(_number(args.get("id"), "Product") or 0)
        if product is None:
            return {"publishable": None, "shop": None, "userErrors": [self._user_error(
                "Resource does not exist", ["id"], coded=False)]}
        known = {p["id"] for p in self.publications}
        for entry in args.get("input") or []:
            if entry.get("publicationId") not in known:
                return {"publishable": None, "shop": None, "userErrors": [self._user_error(
                    "Publication does not exist", ["input", "publicationId"], coded=False)]}
        for entry in args.get("input") or []:
            if entry["publicationId"] not in product.published:
                product.published.add(entry["publicationId"])
                self.effect("published", None, product=product.gid,
                            publication=entry["publicationId"])
        return {"publishable": self._product_obj(product), "shop": {"__typename": "Shop"},
                "userErrors": []}

    def _m_discount_create(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        fields = args.get("basicCodeDiscount") or {}
        missing = [name for name in ("title", "code", "startsAt", "customerGets")
                   if not fields.get(name)]
        if not fields.get("context") and not fields.get("customerSelection"):
            missing.append("context")
        if missing:
            return {"codeDiscountNode": None, "userErrors": [self._user_error(
                f"{missing[0]} can't be blank", ["basicCodeDiscount", missing[0]], "BLANK")]}
        if any(d.code.lower() == fields["code"].lower() for d in self.discounts.values()):
            return {"codeDiscountNode": None, "userErrors": [self._user_error(
                "Code must be unique. Please try a different code.",
                ["basicCodeDiscount", "code"], "TAKEN")]}
        percentage = ((fields["customerGets"].get("value") or {}).get("percentage"))
        if not isinstance(percentage, int | float) or not 0 <= percentage <= 1:
            return {"codeDiscountNode": None, "userErrors": [self._user_error(
                "Value must be between 0.0 and 1.0",
                ["basicCodeDiscount", "customerGets", "value", "percentage"],
                "VALUE_OUTSIDE_RANGE")]}
        if fields.get("endsAt") and fields["endsAt"] <= fields["startsAt"]:
            return {"codeDiscountNode": None, "userErrors": [self._user_error(
                "Ends at needs to be after starts_at", ["basicCodeDiscount", "endsAt"],
                "INVALID")]}
        if self._declined(args):
            return {"codeDiscountNode": None, "userErrors": [self._user_error(
                "The discount cannot be created (sandbox_declined)", ["basicCodeDiscount",
                                                                     "code"])]}
        discount = Discount(self._id(), self._id(), fields["title"], fields["code"],
                            fields["startsAt"], fields.get("endsAt"), float(percentage))
        self.discounts[discount.number] = discount
        mark = re.search(r"warden:(\S+?)\)?$", discount.title)
        self.effect("discount_created", mark[1] if mark else None,
                    discount=f"gid://shopify/DiscountCodeNode/{discount.number}", code=discount.code)
        return {"codeDiscountNode": self._discount_obj(discount), "userErrors": []}

    def _m_discount_delete(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        number = _number(args.get("id"), "DiscountCodeNode")
        discount = self.discounts.get(number or 0)
        if discount is None:
            return {"deletedCodeDiscountId": None, "userErrors": [self._user_error(
                "Discount does not exist", ["id"], "INVALID")]}
        if self._declined(args, discount.code):
            return {"deletedCodeDiscountId": None, "userErrors": [self._user_error(
                "The discount cannot be deleted (sandbox_declined)", ["id"])]}
        del self.discounts[discount.number]
        gid = f"gid://shopify/DiscountCodeNode/{discount.number}"
        self.effect("discount_deleted", None, discount=gid)
        return {"deletedCodeDiscountId": gid, "userErrors": []}

    def _m_inventory_adjust(self, args: dict[str, Any], selection: Field, version: str) -> Any:
        key = selection.directives.get("idempotent", {}).get("key")
        if key is None and version >= IDEMPOTENCY_REQUIRED_FROM:
            raise GraphqlError({
                "message": "inventoryAdjustQuantities requires an idempotency key from API "
                           f"version {IDEMPOTENCY_REQUIRED_FROM}: add @idempotent(key: ...)",
                "locations": [], "path": ["inventoryAdjustQuantities"],
                "extensions": {"code": "BAD_REQUEST"}})
        fields = args.get("input") or {}
        fingerprint = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        if key is not None and key in self.adjustments:
            stored, group = self.adjustments[key]
            if stored != fingerprint:
                return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                    "The same idempotency key cannot be used with different operation "
                    "parameters.", None, "IDEMPOTENCY_KEY_PARAMETER_MISMATCH")]}
            return {"inventoryAdjustmentGroup": group, "userErrors": []}
        if fields.get("reason") not in REASONS:
            return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                "The specified reason is invalid.", ["input", "reason"], "INVALID_REASON")]}
        if fields.get("name") not in ("available", "damaged", "quality_control",
                                      "reserved", "safety_stock"):
            return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                "The quantity name must be available, damaged, quality_control, reserved or "
                "safety_stock.", ["input", "name"], "INVALID_QUANTITY_NAME")]}
        changes = fields.get("changes") or []
        resolved = []
        for index, change in enumerate(changes):
            item = _number(change.get("inventoryItemId"), "InventoryItem")
            location = _number(change.get("locationId"), "Location")
            variant = next((v for v in self.variants.values() if v.item == item), None)
            if variant is None:
                return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                    "The specified inventory item could not be found.",
                    ["input", "changes", str(index), "inventoryItemId"], "ITEM_NOT_FOUND")]}
            if location != self.location:
                return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                    "The specified location could not be found.",
                    ["input", "changes", str(index), "locationId"], "LOCATION_NOT_FOUND")]}
            resolved.append((change, variant, variant.item, self.location))
        if self._declined(args, [v.sku for _, v, _, _ in resolved]):
            return {"inventoryAdjustmentGroup": None, "userErrors": [self._user_error(
                "The adjustment cannot be applied (sandbox_declined)", ["input", "changes"])]}
        out: list[dict[str, Any]] = []
        for change, _variant, item, location in resolved:
            after = self.stock.get((item, location), 0) + int(change["delta"])
            self.stock[(item, location)] = after
            for name in (fields["name"], "on_hand"):
                out.append({"__typename": "InventoryChange", "name": name,
                            "delta": int(change["delta"]), "quantityAfterChange": after,
                            "ledgerDocumentUri": change.get("ledgerDocumentUri"),
                            "item": {"__typename": "InventoryItem",
                                     "id": f"gid://shopify/InventoryItem/{item}"},
                            "location": {"__typename": "Location",
                                         "id": f"gid://shopify/Location/{location}"}})
        group = {"__typename": "InventoryAdjustmentGroup",
                 "id": f"gid://shopify/InventoryAdjustmentGroup/{self._id()}",
                 "createdAt": _now(), "reason": REASONS[fields["reason"]],
                 "referenceDocumentUri": fields.get("referenceDocumentUri"), "changes": out}
        if key is not None:
            self.adjustments[key] = (fingerprint, group)
        self.effect("inventory_adjusted", key, group=group["id"],
                    delta=sum(int(c["delta"]) for c in changes))
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    _mutations: dict[str, Callable[..., Any]] = {
        "productVariantsBulkUpdate": _m_variants_bulk_update, "productCreate": _m_product_create,
        "productUpdate": _m_product_update, "publishablePublish": _m_publishable_publish,
        "discountCodeBasicCreate": _m_discount_create, "discountCodeDelete": _m_discount_delete,
        "inventoryAdjustQuantities": _m_inventory_adjust}


class GraphqlError(Exception):
    """A top-level GraphQL error (the request executed nothing)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error
