"""FakeStripe: the parts of Stripe's API that Warden's Stripe connector uses, answering as Stripe's
API reference describes them (docs.stripe.com/api), on loopback.

    POST /v1/refunds                   GET /v1/refunds[?charge=&created[gte]=...]   GET /v1/refunds/{id}
    POST /v1/transfers                 GET /v1/transfers[?destination=&created...]  GET /v1/transfers/{id}
    POST /v1/transfers/{id}/reversals  GET /v1/transfers/{id}/reversals
    POST /v1/payouts                   GET /v1/payouts[?created...&status=]         GET /v1/payouts/{id}
    GET  /v1/balance

What it does as Stripe does:

- Requests are form-encoded with bracket notation (`metadata[warden_decision_id]=...`,
  `created[gte]=...`); answers are JSON objects (`refund`, `transfer`, `transfer_reversal`,
  `payout`, `balance`) and lists `{"object": "list", "data": [...], "has_more", "url"}`, newest
  first, paged with `limit` and `starting_after`.
- `Authorization: Bearer <key>` (or Basic with the key as user name): an unknown key is 401
  `Invalid API Key provided: sk_test_****abcd`; a restricted key (`rk_...`) given without the
  permission an endpoint needs is 403 naming the `rak_..._write` permission.
- Every answer has a `Request-Id`; `Stripe-Version` is echoed (else the account's default).
- `Stripe-Account` scopes everything: objects, balances and idempotency keys.
- `Idempotency-Key`: the same key with the same endpoint and params gets the stored answer again
  with `Idempotent-Replayed: true` and `Original-Request`; with other params, 400
  `idempotency_error`; while the first request with a key is still running, 409
  `idempotency_key_in_use`. As Stripe, an answer is stored only once execution began: refusals
  of invalid params, 401/403, 429 and "retry later" answers are not stored. Keys are forgotten
  `key_ttl` seconds after their first use (Stripe: at least 24 hours).
- Errors: `{"error": {"type", "code", "message", "param", "doc_url"}}`; 429 `rate_limit` with
  `Retry-After` (`rate_limit()`); `Stripe-Should-Retry` where Stripe sends it.
- Money: the balance of each account is debited by refunds, transfers and payouts, credited by
  reversals; a refund cannot exceed what is left of its charge, nor a reversal what is left of
  its transfer.

The sandbox's magic values (`connectors.stripe`), in the same fields, with Stripe's answers:

    ..._sandbox_declined      the tool's refusal code: 402 card_error card_declined (refund);
                              400 invalid_request_error account_invalid (transfer),
                              insufficient_funds (payout), balance_insufficient (reversal)
    ch_sandbox_refunded       400 charge_already_refunded
    ..._sandbox_unavailable   503 api_error, Stripe-Should-Retry: true, Retry-After: 1
    ..._sandbox_timeout       no answer for `hang_seconds` (past a client's deadline when that
                              is shorter: an unknown outcome), then 504 api_error `timeout`;
                              nothing applied, nothing stored under the key

Charges are not created here: a charge the fake does not know is taken as a captured charge of
`default_charge_amount` usd, more than any suite refunds (as the sandbox refunds any charge),
unless `strict_charges` is set (then 404 `resource_missing`); `add_charge` registers one.
"""

from __future__ import annotations

import base64
import random
import re
import string
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.stripe import StripeSandbox
from fakes.base import FakeProvider, Reply, Request

DEFAULT_KEY = "sk_test_51FakeWardenKey0000000000000000000000abcd"
DEFAULT_VERSION = "2024-06-20"
DOC = "https://stripe.com/docs/error-codes"
PLATFORM = "platform"

_ALPHABET = string.ascii_letters + string.digits
_ids = random.Random()


def object_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(_ids.choice(_ALPHABET) for _ in range(length))


def mask(key: str) -> str:
    """A key as Stripe shows it in errors: its prefix and last four characters."""
    match = re.match(r"^((?:sk|rk|pk)_(?:test|live)_)", key)
    return f"{match.group(1) if match else ''}****{key[-4:]}"


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation: `a[b]=1&c[]=x&d[0][e]=2` → {"a": {"b": "1"}, "c": ["x"],
    "d": [{"e": "2"}]}."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", name)
        keys = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [name]
        node: Any = root
        for position, key in enumerate(keys):
            last = position == len(keys) - 1
            fresh: Any = value if last else (
                [] if keys[position + 1] == "" or keys[position + 1].isdigit() else {})
            if isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, fresh)
            elif key.isdigit() and int(key) < len(node):
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
            else:
                node.append(fresh)
                node = fresh
    return root


# -------------------------------------------------------------------------------------- errors

def stripe_error(status: int, kind: str, message: str, *, code: str | None = None,
                 param: str | None = None, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> Reply:
    """An error answer in Stripe's shape."""
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"{DOC}#{code.replace('_', '-')}"
    if param is not None:
        error["param"] = param
    error.update(extra)
    return Reply(status, {"error": error}, dict(headers or {}))


class Unsaved(Reply):
    """An answer given before execution began: never stored under the idempotency key."""


def invalid(message: str, *, code: str, param: str | None = None) -> Unsaved:
    reply = stripe_error(400, "invalid_request_error", message, code=code, param=param)
    return Unsaved(reply.status, reply.body, reply.headers)


# -------------------------------------------------------------------------------------- state

@dataclass
class Stored:
    route: str
    params: dict[str, Any]
    status: int
    body: Any
    request_id: str
    at: float


@dataclass
class Account:
    """One Stripe account's objects (the platform, or a connected account by Stripe-Account)."""

    balance: dict[str, int]
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    reversals: list[dict[str, Any]] = field(default_factory=list)
    payouts: list[dict[str, Any]] = field(default_factory=list)


#: what a restricted key needs for each endpoint: (resource, "read" | "write")
_PERMISSIONS = {"refunds": "refund", "transfers": "transfer", "payouts": "payout",
                "balance": "balance"}

_ALLOWED = {  # params each create takes (Stripe's reference), beyond `expand`
    "refund": {"charge", "payment_intent", "amount", "reason", "metadata",
               "refund_application_fee", "reverse_transfer", "instructions_email"},
    "transfer": {"amount", "currency", "destination", "description", "metadata",
                 "source_transaction", "source_type", "transfer_group"},
    "payout": {"amount", "currency", "description", "destination", "metadata", "method",
               "source_type", "statement_descriptor"},
    "transfer_reversal": {"amount", "description", "metadata", "refund_application_fee"},
}


class FakeStripe(FakeProvider):
    name = "stripe"

    def __init__(self, *, api_keys: Iterable[str] = (DEFAULT_KEY,),
                 restricted: Mapping[str, Iterable[str]] | None = None,
                 balance: Mapping[str, int] | None = None, hang_seconds: float = 2.0,
                 default_charge_amount: int = 10**12, strict_charges: bool = False,
                 key_ttl: float = 24 * 3600.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        #: restricted keys and their permissions, e.g. {"rk_test_...": {"refund_write"}}
        self.restricted = {key: frozenset(perms) for key, perms in (restricted or {}).items()}
        # as much as a whole test suite can spend (the sandbox has no balance to run out of)
        self.initial_balance = dict(balance or {"usd": 10**14, "eur": 10**14})
        self.hang_seconds = hang_seconds
        self.default_charge_amount = default_charge_amount
        self.strict_charges = strict_charges
        self.key_ttl = key_ttl
        self.clock = clock
        self.accounts: dict[str, Account] = {}
        self._keys: dict[tuple[str, str], Stored] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._throttle: list[float] = []  # Retry-After of each 429 still to answer
        self._active = 0  # requests being handled

    # -- set-up and inspection for tests -------------------------------------------------------

    def account(self, scope: str = PLATFORM) -> Account:
        with self.lock:
            if scope not in self.accounts:
                self.accounts[scope] = Account(balance=dict(self.initial_balance))
            return self.accounts[scope]

    def add_charge(self, charge_id: str, *, amount: int, currency: str = "usd",
                   account: str = PLATFORM) -> None:
        with self.lock:
            self.account(account).charges[charge_id] = {
                "id": charge_id, "amount": amount, "currency": currency, "amount_refunded": 0}

    def add_refund(self, charge_id: str, *, amount: int, metadata: Mapping[str, str] | None = None,
                   account: str = PLATFORM) -> dict[str, Any]:
        """A refund made before the test (by someone else): no request, no effect recorded."""
        with self.lock:
            refund = {"id": object_id("re_"), "object": "refund", "amount": amount,
                      "balance_transaction": object_id("txn_"), "charge": charge_id,
                      "created": int(self.clock()), "currency": "usd",
                      "destination_details": None, "metadata": dict(metadata or {}),
                      "payment_intent": None, "reason": None, "receipt_number": None,
                      "source_transfer_reversal": None, "status": "succeeded",
                      "transfer_reversal": None}
            self.account(account).refunds.append(refund)
            return refund

    def reset(self) -> None:
        """Forget every object, key, fault and request (a server reused between tests); waits
        for requests still being answered."""
        deadline = time.monotonic() + 5
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            self.accounts.clear()
            self._keys.clear()
            self._in_flight.clear()
            self._throttle.clear()
            self.restricted.clear()
            self.strict_charges = False
            self.seen.clear()
            self.effects.clear()
        self.clear_faults()

    def rate_limit(self, *, times: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next `times` authenticated requests with 429 and this Retry-After."""
        with self.lock:
            self._throttle.extend([retry_after] * times)

    def objects(self, kind: str, account: str = PLATFORM) -> list[dict[str, Any]]:
        with self.lock:
            found: list[dict[str, Any]] = getattr(self.account(account), kind)
            return [dict(item) for item in found]

    # -- serving -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        request_id = object_id("req_", 14)
        version = request.headers.get("stripe-version") or DEFAULT_VERSION
        with self.lock:
            self._active += 1
        try:
            reply = self._serve(request, request_id)
        except Reply as raised:
            reply = raised
        finally:
            with self.lock:
                self._active -= 1
        reply.headers = {"Request-Id": request_id, "Stripe-Version": version, **reply.headers}
        return reply

    def _serve(self, request: Request, request_id: str) -> Reply:
        key = self._authenticate(request)
        with self.lock:
            if self._throttle:
                after = self._throttle.pop(0)
                raise stripe_error(
                    429, "invalid_request_error",
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.", code="rate_limit",
                    headers={"Retry-After": f"{after:g}"})
        scope = request.headers.get("stripe-account") or PLATFORM
        if scope != PLATFORM and not re.fullmatch(r"acct_[A-Za-z0-9_]+", scope):
            raise stripe_error(403, "invalid_request_error",
                               f"The provided key '{mask(key)}' does not have access to account "
                               f"'{scope}' (or that account does not exist). Application access "
                               "may have been revoked.", code="account_invalid")
        resource = request.path.split("/")[2] if request.path.count("/") >= 2 else ""
        self._authorise(key, resource, request.method, scope)
        if request.method == "GET":
            return self._read(request.path, decode_form(request.query.items()), scope)
        if request.method != "POST":
            raise self._unrecognised(request)
        params = decode_form(request.form())
        idempotency_key = request.headers.get("idempotency-key")
        return self._create(request, params, scope, idempotency_key, request_id)

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        if not key:
            raise stripe_error(401, "invalid_request_error",
                               "You did not provide an API key. You need to provide your API key in "
                               "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                               "Bearer YOUR_SECRET_KEY').")
        if key not in self.api_keys and key not in self.restricted:
            raise stripe_error(401, "invalid_request_error", f"Invalid API Key provided: {mask(key)}")
        return key

    def _authorise(self, key: str, resource: str, method: str, scope: str) -> None:
        if key not in self.restricted:
            return
        name = _PERMISSIONS.get(resource)
        if name is None:
            return
        perms = self.restricted[key]
        wanted = f"{name}_write" if method == "POST" else f"{name}_read"
        if wanted in perms or (wanted.endswith("_read") and f"{name}_write" in perms):
            return
        account = scope if scope != PLATFORM else "acct_fakeplatform"
        raise stripe_error(403, "invalid_request_error",
                           f"The provided key '{mask(key)}' does not have the required permissions "
                           f"for this endpoint on account '{account}'. Having the 'rak_{wanted}' "
                           "permission would allow this request to continue.")

    @staticmethod
    def _unrecognised(request: Request) -> Reply:
        return stripe_error(404, "invalid_request_error",
                            f"Unrecognized request URL ({request.method}: {request.path}). Please "
                            "see https://stripe.com/docs or we can help at https://support.stripe.com/.")

    # -- creates, through the idempotency layer ------------------------------------------------

    def _create(self, request: Request, params: dict[str, Any], scope: str, key: str | None,
                request_id: str) -> Reply:
        route = request.route
        slot = (scope, key) if key else None
        if slot is not None:
            with self.lock:
                stored = self._keys.get(slot)
                if stored is not None and self.clock() - stored.at >= self.key_ttl:
                    del self._keys[slot]  # pruned: the key may be used afresh
                    stored = None
                if stored is not None:
                    return self._replay(stored, route, params, key or "")
                if slot in self._in_flight:
                    raise stripe_error(
                        409, "idempotency_error",
                        "There is currently another in-progress request using this Idempotent Key "
                        "(that probably means you submitted twice, and the other request is still "
                        f"going through): {key}. Please try again later.",
                        code="idempotency_key_in_use", headers={"Stripe-Should-Retry": "true"})
                self._in_flight.add(slot)
        try:
            try:
                reply = self._execute(route, request.path, params, scope, key)
            except Unsaved:
                raise
            except Reply as refused:
                reply = refused
            if slot is not None:
                with self.lock:
                    self._keys[slot] = Stored(route, params, reply.status, reply.body, request_id,
                                              self.clock())
            return reply
        finally:
            if slot is not None:
                with self.lock:
                    self._in_flight.discard(slot)

    @staticmethod
    def _replay(stored: Stored, route: str, params: dict[str, Any], key: str) -> Reply:
        if stored.route != route:
            raise stripe_error(400, "idempotency_error",
                               "Keys for idempotent requests can only be used for the same endpoint "
                               f"they were first used for ('{stored.route}' vs '{route}'). Try "
                               f"using a key other than '{key}' if you meant to execute a "
                               "different request.")
        if stored.params != params:
            raise stripe_error(400, "idempotency_error",
                               "Keys for idempotent requests can only be used with the same "
                               "parameters they were first used with. Try using a key other than "
                               f"'{key}' if you meant to execute a different request.")
        return Reply(stored.status, stored.body,
                     {"Idempotent-Replayed": "true", "Original-Request": stored.request_id})

    def _execute(self, route: str, path: str, params: dict[str, Any], scope: str,
                 key: str | None) -> Reply:
        if route == "POST /v1/refunds":
            return self._refund(params, scope, key)
        if route == "POST /v1/transfers":
            return self._transfer(params, scope, key)
        if route == "POST /v1/payouts":
            return self._payout(params, scope, key)
        match = re.fullmatch(r"POST /v1/transfers/([^/]+)/reversals", route)
        if match:
            return self._reversal(match.group(1), params, scope, key)
        method, _, where = route.partition(" ")
        reply = stripe_error(404, "invalid_request_error",
                             f"Unrecognized request URL ({method}: {where}).")
        raise Unsaved(reply.status, reply.body, reply.headers)

    # -- magic values and params ---------------------------------------------------------------

    def _magic(self, tool: str, values: Iterable[Any]) -> None:
        """The sandbox's magic values, answered as Stripe would answer the condition."""
        for value in (v for v in values if isinstance(v, str)):
            if "sandbox_unavailable" in value:
                reply = stripe_error(503, "api_error", "Stripe is temporarily unavailable; please "
                                     "retry the request.",
                                     headers={"Stripe-Should-Retry": "true", "Retry-After": "1"})
                raise Unsaved(reply.status, reply.body, reply.headers)
            if "sandbox_timeout" in value:
                time.sleep(self.hang_seconds)  # the client has given up; nothing is applied
                reply = stripe_error(504, "api_error", "The request timed out.", code="timeout")
                raise Unsaved(reply.status, reply.body, reply.headers)
            if "sandbox_declined" in value:
                code = StripeSandbox.declined_codes[tool]
                if code == "card_declined":
                    raise stripe_error(402, "card_error", "Your card was declined.", code=code,
                                       decline_code="generic_decline")
                raise stripe_error(400, "invalid_request_error",
                                   f"The request for {value} was declined ({code}).", code=code)
            if tool == "stripe.refund" and "sandbox_refunded" in value:
                raise stripe_error(400, "invalid_request_error",
                                   f"Charge {value} has already been refunded.",
                                   code="charge_already_refunded", param="charge")

    @staticmethod
    def _check(kind: str, params: Mapping[str, Any], required: Iterable[str]) -> None:
        for name in params:
            if name not in _ALLOWED[kind] and name != "expand":
                raise invalid(f"Received unknown parameter: {name}", code="parameter_unknown",
                              param=name)
        for name in required:
            if name not in params or params[name] == "":
                raise invalid(f"Missing required param: {name}.", code="parameter_missing",
                              param=name)

    @staticmethod
    def _integer(params: Mapping[str, Any], name: str) -> int | None:
        if name not in params:
            return None
        value = params[name]
        if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+", value):
            raise invalid(f"Invalid integer: {value}", code="parameter_invalid_integer", param=name)
        number = int(value)
        if number < 1:
            raise invalid("This value must be greater than or equal to 1.",
                          code="parameter_invalid_integer", param=name)
        return number

    @staticmethod
    def _metadata(params: Mapping[str, Any]) -> dict[str, str]:
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid("Invalid hash", code="parameter_invalid_empty", param="metadata")
        return {str(k): str(v) for k, v in metadata.items()}

    def _debit(self, account: Account, currency: str, amount: int) -> None:
        if account.balance.get(currency, 0) < amount:
            raise stripe_error(400, "invalid_request_error",
                               "You have insufficient available funds in your Stripe account. Try "
                               "adding funds directly to your available balance by creating "
                               "Charges using the 4000000000000077 test card.",
                               code="balance_insufficient")
        account.balance[currency] -= amount

    # -- the objects ---------------------------------------------------------------------------

    def _refund(self, params: dict[str, Any], scope: str, key: str | None) -> Reply:
        self._check("refund", params, ())
        charge_id = params.get("charge")
        if not charge_id:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", code="parameter_missing", param="charge")
        amount = self._integer(params, "amount")
        reason = params.get("reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: must be one of duplicate, fraudulent, or "
                          "requested_by_customer", code="parameter_invalid_string", param="reason")
        self._magic("stripe.refund", [charge_id])
        with self.lock:
            account = self.account(scope)
            charge = account.charges.get(charge_id)
            if charge is None:
                if self.strict_charges:
                    raise stripe_error(404, "invalid_request_error", f"No such charge: '{charge_id}'",
                                       code="resource_missing", param="charge")
                charge = account.charges[charge_id] = {
                    "id": charge_id, "amount": self.default_charge_amount, "currency": "usd",
                    "amount_refunded": 0}
            left = charge["amount"] - charge["amount_refunded"]
            if left <= 0:
                raise stripe_error(400, "invalid_request_error",
                                   f"Charge {charge_id} has already been refunded.",
                                   code="charge_already_refunded")
            amount = left if amount is None else amount
            if amount > left:
                raise stripe_error(400, "invalid_request_error",
                                   f"Refund amount ({amount}) is greater than unrefunded amount on "
                                   f"charge ({left})", code="amount_too_large", param="amount")
            self._debit(account, charge["currency"], amount)
            charge["amount_refunded"] += amount
            refund = {"id": object_id("re_"), "object": "refund", "amount": amount,
                      "balance_transaction": object_id("txn_"), "charge": charge_id,
                      "created": int(self.clock()), "currency": charge["currency"],
                      "destination_details": None, "metadata": self._metadata(params),
                      "payment_intent": None, "reason": reason, "receipt_number": None,
                      "source_transfer_reversal": None, "status": "succeeded",
                      "transfer_reversal": None}
            account.refunds.append(refund)
            self.effect("refund", key, id=refund["id"], account=scope, amount=amount)
            return Reply(200, refund)

    def _transfer(self, params: dict[str, Any], scope: str, key: str | None) -> Reply:
        self._check("transfer", params, ("currency", "destination"))
        amount = self._integer(params, "amount")
        if amount is None:
            raise invalid("Missing required param: amount.", code="parameter_missing", param="amount")
        destination = str(params["destination"])
        self._magic("stripe.transfer", [destination])
        if not re.fullmatch(r"acct_[A-Za-z0-9_]+", destination):
            raise stripe_error(400, "invalid_request_error",
                               f"No such destination: '{destination}'", code="account_invalid",
                               param="destination")
        currency = str(params["currency"]).lower()
        with self.lock:
            account = self.account(scope)
            self._debit(account, currency, amount)
            transfer_id = object_id("tr_")
            transfer = {"id": transfer_id, "object": "transfer", "amount": amount,
                        "amount_reversed": 0, "balance_transaction": object_id("txn_"),
                        "created": int(self.clock()), "currency": currency,
                        "description": params.get("description"), "destination": destination,
                        "destination_payment": object_id("py_"), "livemode": False,
                        "metadata": self._metadata(params),
                        "reversals": {"object": "list", "data": [], "has_more": False,
                                      "total_count": 0,
                                      "url": f"/v1/transfers/{transfer_id}/reversals"},
                        "reversed": False, "source_transaction": None, "source_type": "card",
                        "transfer_group": params.get("transfer_group")}
            account.transfers.append(transfer)
            self.effect("transfer", key, id=transfer_id, account=scope, amount=amount)
            return Reply(200, transfer)

    def _reversal(self, transfer_id: str, params: dict[str, Any], scope: str,
                  key: str | None) -> Reply:
        self._check("transfer_reversal", params, ())
        amount = self._integer(params, "amount")
        self._magic("stripe.reverse_transfer", [transfer_id])
        with self.lock:
            account = self.account(scope)
            transfer = next((t for t in account.transfers if t["id"] == transfer_id), None)
            if transfer is None:
                raise stripe_error(404, "invalid_request_error", f"No such transfer: '{transfer_id}'",
                                   code="resource_missing", param="id")
            left = transfer["amount"] - transfer["amount_reversed"]
            amount = left if amount is None else amount
            if left <= 0 or amount > left:
                raise stripe_error(400, "invalid_request_error",
                                   f"The transfer {transfer_id} has only {left} left to reverse; a "
                                   f"reversal of {amount} is more than that.",
                                   code="amount_too_large", param="amount")
            reversal = {"id": object_id("trr_"), "object": "transfer_reversal", "amount": amount,
                        "balance_transaction": object_id("txn_"), "created": int(self.clock()),
                        "currency": transfer["currency"],
                        "destination_payment_refund": object_id("pyr_"),
                        "metadata": self._metadata(params), "source_refund": None,
                        "transfer": transfer_id}
            account.reversals.append(reversal)
            transfer["amount_reversed"] += amount
            transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
            listed = transfer["reversals"]
            listed["data"] = [reversal, *listed["data"]][:10]
            listed["total_count"] += 1
            account.balance[transfer["currency"]] = account.balance.get(transfer["currency"], 0) + amount
            self.effect("transfer_reversal", key, id=reversal["id"], account=scope, amount=amount,
                        transfer=transfer_id)
            return Reply(200, reversal)

    def _payout(self, params: dict[str, Any], scope: str, key: str | None) -> Reply:
        self._check("payout", params, ("currency",))
        amount = self._integer(params, "amount")
        if amount is None:
            raise invalid("Missing required param: amount.", code="parameter_missing", param="amount")
        metadata = self._metadata(params)
        self._magic("stripe.payout", [params.get("destination"), metadata.get("creator_id")])
        destination = str(params.get("destination") or "ba_fakedefault00000000000")
        currency = str(params["currency"]).lower()
        with self.lock:
            account = self.account(scope)
            self._debit(account, currency, amount)
            created = int(self.clock())
            payout = {"id": object_id("po_"), "object": "payout", "amount": amount,
                      "application_fee": None, "application_fee_amount": None,
                      "arrival_date": created + 2 * 86400, "automatic": False,
                      "balance_transaction": object_id("txn_"), "created": created,
                      "currency": currency, "description": params.get("description"),
                      "destination": destination, "failure_balance_transaction": None,
                      "failure_code": None, "failure_message": None, "livemode": False,
                      "metadata": metadata, "method": params.get("method") or "standard",
                      "original_payout": None, "reconciliation_status": "not_applicable",
                      "reversed_by": None, "source_type": "card",
                      "statement_descriptor": params.get("statement_descriptor"),
                      "status": "pending",
                      "type": "card" if destination.startswith("card_") else "bank_account"}
            account.payouts.append(payout)
            self.effect("payout", key, id=payout["id"], account=scope, amount=amount)
            return Reply(200, payout)

    # -- reads ---------------------------------------------------------------------------------

    def _read(self, path: str, query: dict[str, Any], scope: str) -> Reply:
        with self.lock:
            account = self.account(scope)
            if path == "/v1/balance":
                return Reply(200, self._balance(account, scope))
            lists = {"/v1/refunds": ("refunds", ("charge",)),
                     "/v1/transfers": ("transfers", ("destination", "transfer_group")),
                     "/v1/payouts": ("payouts", ("destination", "status"))}
            if path in lists:
                kind, filters = lists[path]
                items = [item for item in getattr(account, kind)
                         if all(query.get(f) in (None, item.get(f)) for f in filters)]
                return self._list(path, items, query)
            match = re.fullmatch(r"/v1/transfers/([^/]+)/reversals", path)
            if match:
                if not any(t["id"] == match.group(1) for t in account.transfers):
                    raise stripe_error(404, "invalid_request_error",
                                       f"No such transfer: '{match.group(1)}'",
                                       code="resource_missing", param="id")
                items = [r for r in account.reversals if r["transfer"] == match.group(1)]
                return self._list(path, items, query)
            match = re.fullmatch(r"/v1/(refunds|transfers|payouts)/([^/]+)", path)
            if match:
                found = next((item for item in getattr(account, match.group(1))
                              if item["id"] == match.group(2)), None)
                if found is None:
                    raise stripe_error(404, "invalid_request_error",
                                       f"No such {match.group(1)[:-1]}: '{match.group(2)}'",
                                       code="resource_missing", param="id")
                return Reply(200, found)
        raise stripe_error(404, "invalid_request_error",
                           f"Unrecognized request URL (GET: {path}).")

    def _list(self, url: str, items: list[dict[str, Any]], query: Mapping[str, Any]) -> Reply:
        created = query.get("created")
        if isinstance(created, dict):
            bounds = {op: int(value) for op, value in created.items()}
            checks = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
                      "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
            for op, bound in bounds.items():
                if op not in checks:
                    raise invalid(f"Invalid created[{op}]", code="parameter_unknown",
                                  param=f"created[{op}]")
                items = [i for i in items if checks[op](i["created"], bound)]
        elif isinstance(created, str):
            items = [i for i in items if i["created"] == int(created)]
        newest_first = list(reversed(items))
        after = query.get("starting_after")
        if after:
            ids = [i["id"] for i in newest_first]
            if after not in ids:
                raise invalid(f"No such object: '{after}'", code="resource_missing",
                              param="starting_after")
            newest_first = newest_first[ids.index(after) + 1:]
        limit = int(query.get("limit") or 10)
        if not 1 <= limit <= 100:
            raise invalid("This value must be less than or equal to 100.",
                          code="parameter_invalid_integer", param="limit")
        page = newest_first[:limit]
        return Reply(200, {"object": "list", "data": page, "has_more": len(newest_first) > limit,
                           "url": url})

    @staticmethod
    def _balance(account: Account, scope: str) -> dict[str, Any]:
        available = [{"amount": amount, "currency": currency, "source_types": {"card": amount}}
                     for currency, amount in account.balance.items()]
        pending = [{"amount": 0, "currency": currency, "source_types": {"card": 0}}
                   for currency in account.balance]
        balance: dict[str, Any] = {"object": "balance", "available": available, "livemode": False,
                                   "pending": pending}
        if scope == PLATFORM:
            balance["connect_reserved"] = [{"amount": 0, "currency": c} for c in account.balance]
        return balance
