"""Stripe, live: refunds, transfers, payouts and transfer reversals through Stripe's official SDK
(`stripe.StripeClient` over its httpx client, the `*_async` service methods), on the connector
loop (`connectors.live.runner`).

What every request carries:

    Authorization        the secret key (sk_live_/sk_test_) or a restricted key (rk_...)
    Stripe-Version       STRIPE_API_VERSION, pinned, whatever the account's default
    Stripe-Account       the packet's `stripe_account`, else the configured account, if any
    Idempotency-Key      the decision id, on every create
    metadata             {"warden_decision_id": <decision id>} on every object created, so that
                         the object can be found once Stripe has forgotten the key

A restricted key works like a secret key if it has these permissions (Stripe Dashboard,
Developers → API keys → restricted key):

    stripe.refund             Refunds: write
    stripe.transfer           Transfers: write
    stripe.reverse_transfer   Transfers: write
    stripe.payout             Payouts: write
    connectors check          Balance: read

Retries. The outbox retries, with the same idempotency key and its own backoff, so the SDK's
own retries are off by default (`StripeConfig.max_network_retries`, 0): a request is sent once
per attempt, and every failure reaches the outbox, classified.

Errors, as the SDK raises them (`Stripe-Should-Retry: false` makes any of them permanent, even a
status that would be retried: Stripe sends it when a retry would only replay the stored answer;
`true` makes any of them transient):

    APIConnectionError, not sent     TransientError (connect failed: nothing left)
    APIConnectionError, maybe sent   UnknownOutcomeError: reconciled before anything is sent
                                     again (with the idempotency key, the reconciliation is the
                                     same request again within the key's lifetime)
    RateLimitError (429)             TransientError(rate_limited, or Stripe's other code such
                                     as lock_timeout; retry_after from Retry-After)
    APIError 409                     TransientError (idempotency_key_in_use: the first request
                                     with the key is still running)
    APIError 5xx                     TransientError(service_unavailable for 503, else
                                     provider_error, or Stripe's code; retry_after)
    APIError 2xx without JSON        UnknownOutcomeError(bad_answer)
    CardError (402)                  PermanentError(Stripe's code: card_declined, ...)
    InvalidRequestError (400, 404)   PermanentError(Stripe's code: charge_already_refunded,
                                     resource_missing, amount_too_large, ...)
    AuthenticationError (401)        PermanentError(credentials_refused)
    PermissionError (403)            PermanentError(Stripe's code, else forbidden)
    IdempotencyError                 IdempotencyConflictError(idempotency_mismatch), as the
                                     sandbox's call ledger says it

Messages carry Stripe's code, message and request id, scrubbed of keys (a masked key in
Stripe's own message too).

Reconciliation (`find`), for a call whose outcome is unknown:

    within KEY_WINDOW of the first attempt   the same create with the same key: Stripe answers
                                             the first request's answer again (an object, or
                                             the permanent error it failed with); if the first
                                             request never reached Stripe, this one executes
                                             it, once
    after                                    the objects Stripe lists, matched by
                                             metadata.warden_decision_id: refunds of the charge
                                             (GET /v1/refunds?charge=), transfers to the
                                             destination (GET /v1/transfers?destination=, since
                                             the first attempt), payouts since the first attempt
                                             (GET /v1/payouts?created[gte]=&created[lte]=), the
                                             transfer's reversals (GET
                                             /v1/transfers/{id}/reversals); None if none matches
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import stripe
from stripe.params import (
    PayoutCreateParams,
    PayoutListParams,
    RefundCreateParams,
    RefundListParams,
    TransferCreateParams,
    TransferListParams,
    TransferReversalCreateParams,
    TransferReversalListParams,
)

from connectors.base import (
    ConnectorError,
    ExecutionResult,
    IdempotencyConflictError,
    PermanentError,
    TransientError,
    UnknownOutcomeError,
)
from connectors.live.base import LiveConnector
from connectors.live.config import STRIPE_API_VERSION, StripeConfig
from connectors.live.http import redact, retry_after, transport_error
from connectors.live.runner import CallRunner
from connectors.live.throttle import OnWait
from connectors.stripe import TOOLS

#: the metadata key every object created carries: the decision id
METADATA_KEY = "warden_decision_id"
#: Stripe keeps an idempotency key for at least 24 hours; within this much of the first attempt
#: the same request is sent again to learn its outcome (an hour short, for clocks that disagree)
KEY_WINDOW = 23 * 3600.0
#: seconds of clock difference allowed for when listing objects created since a moment
CLOCK_SKEW = 300
#: pages of 100 objects read while looking for an object by its metadata
MAX_PAGES = 50

_MASKED_KEY = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9*]+")

#: (the id after which the next page starts, None for the first) → that page, as Stripe lists it
Lister = Callable[[str | None], Awaitable[stripe.ListObject[Any]]]


class StripeLive(LiveConnector):
    """Stripe's API for real, with a secret or restricted key."""

    name = "stripe"
    tools = TOOLS

    def __init__(self, config: StripeConfig, *, runner: CallRunner, timeout: float,
                 on_wait: OnWait | None = None) -> None:
        super().__init__(runner=runner, timeout=timeout, on_wait=on_wait)
        if config.max_network_retries < 0:
            raise ValueError("max_network_retries must be 0 or more")
        self.config = config
        self._secrets = (config.api_key,)
        self._client: stripe.StripeClient | None = None
        self._http: stripe.HTTPXClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the client, on the running loop -------------------------------------------------------

    def _stripe(self) -> stripe.StripeClient:
        """The SDK client of the running loop (made on first use, and again on a new loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # the read timeout outlasts the gateway's deadline, so that a slow answer is the
            # deadline's (timeout) rather than the transport's; connecting is bounded apart
            self._http = stripe.HTTPXClient(
                timeout=httpx.Timeout(self.timeout + 1.0, connect=min(self.timeout, 10.0)))
            self._client = stripe.StripeClient(
                self.config.api_key, stripe_version=STRIPE_API_VERSION,
                base_addresses={"api": self.config.api_base.rstrip("/")},
                max_network_retries=self.config.max_network_retries, http_client=self._http)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None and self._loop is asyncio.get_running_loop():
            await http.close_async()  # type: ignore[no-untyped-call]
        self._loop = None

    def _account(self, params: Mapping[str, Any]) -> str | None:
        account = params.get("stripe_account") or self.config.account
        return str(account) if account else None

    def _options(self, params: Mapping[str, Any],
                 idempotency_key: str | None = None) -> stripe.RequestOptions:
        options: stripe.RequestOptions = {}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        account = self._account(params)
        if account:
            options["stripe_account"] = account
        return options

    # -- the connector -------------------------------------------------------------------------

    async def call(self, tool: str, params: Mapping[str, Any], *,
                   idempotency_key: str) -> ExecutionResult:
        client = self._stripe()
        options = self._options(params, idempotency_key)
        metadata = {METADATA_KEY: idempotency_key}
        created: stripe.StripeObject
        try:
            if tool == "stripe.refund":
                refund: RefundCreateParams = {"charge": params["charge"], "amount": params["amount"],
                                              "metadata": metadata}
                if params.get("reason"):
                    refund["reason"] = params["reason"]
                created = await client.v1.refunds.create_async(refund, options)
            elif tool == "stripe.transfer":
                transfer: TransferCreateParams = {
                    "destination": params["destination"], "amount": params["amount"],
                    "currency": params["currency"], "metadata": metadata}
                if params.get("description"):
                    transfer["description"] = params["description"]
                created = await client.v1.transfers.create_async(transfer, options)
            elif tool == "stripe.payout":
                if params.get("creator_id"):
                    metadata["creator_id"] = params["creator_id"]
                payout: PayoutCreateParams = {"amount": params["amount"],
                                              "currency": params["currency"], "metadata": metadata}
                if params.get("destination"):
                    payout["destination"] = params["destination"]
                created = await client.v1.payouts.create_async(payout, options)
            elif tool == "stripe.reverse_transfer":
                reversal: TransferReversalCreateParams = {"metadata": metadata}
                if params.get("amount"):
                    reversal["amount"] = params["amount"]
                created = await client.v1.transfers.reversals.create_async(
                    params["transfer"], reversal, options)
            else:
                raise PermanentError(f"stripe has no tool {tool!r}", code="unknown_tool")
        except stripe.StripeError as exc:
            raise stripe_error(exc, tool, self._secrets) from None
        answer = created.last_response
        replayed = answer is not None and answer.headers.get("idempotent-replayed") == "true"
        return self._result(tool, params, _body(created), replayed=replayed)

    async def find(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                   first_attempt_at: float) -> ExecutionResult | None:
        if time.time() - first_attempt_at < KEY_WINDOW:
            # Stripe still holds the key: the same request gets the first one's answer
            return await self.call(tool, params, idempotency_key=idempotency_key)
        client = self._stripe()
        options = self._options(params)
        since = int(first_attempt_at) - CLOCK_SKEW
        lister: Lister
        if tool == "stripe.refund":
            def lister(after: str | None) -> Awaitable[stripe.ListObject[Any]]:
                query: RefundListParams = {"charge": params["charge"], "limit": 100}
                if after:
                    query["starting_after"] = after
                return client.v1.refunds.list_async(query, options)
        elif tool == "stripe.transfer":
            def lister(after: str | None) -> Awaitable[stripe.ListObject[Any]]:
                query: TransferListParams = {"destination": params["destination"],
                                             "created": {"gte": since}, "limit": 100}
                if after:
                    query["starting_after"] = after
                return client.v1.transfers.list_async(query, options)
        elif tool == "stripe.payout":
            until = int(time.time()) + CLOCK_SKEW

            def lister(after: str | None) -> Awaitable[stripe.ListObject[Any]]:
                query: PayoutListParams = {"created": {"gte": since, "lte": until}, "limit": 100}
                if after:
                    query["starting_after"] = after
                return client.v1.payouts.list_async(query, options)
        elif tool == "stripe.reverse_transfer":
            def lister(after: str | None) -> Awaitable[stripe.ListObject[Any]]:
                query: TransferReversalListParams = {"limit": 100}
                if after:
                    query["starting_after"] = after
                return client.v1.transfers.reversals.list_async(params["transfer"], query, options)
        else:
            raise PermanentError(f"stripe has no tool {tool!r}", code="unknown_tool")
        found = await self._by_metadata(tool, lister, idempotency_key)
        return None if found is None else self._result(tool, params, found, replayed=True)

    async def read_only(self) -> str:
        client = self._stripe()
        try:
            balance = await client.v1.balance.retrieve_async(options=self._options({}))
        except stripe.StripeError as exc:
            raise stripe_error(exc, "stripe check", self._secrets) from None
        body = _body(balance)
        currencies: list[str] = []
        for entry in [*(body.get("available") or []), *(body.get("pending") or [])]:
            currency = entry.get("currency") if isinstance(entry, dict) else None
            if isinstance(currency, str) and currency not in currencies:
                currencies.append(currency)
        account = self._account({})
        seen = ", ".join(currencies) if currencies else "no currency yet"
        return f"balance readable ({seen})" + (f" on {account}" if account else "")

    # -- helpers -------------------------------------------------------------------------------

    async def _by_metadata(self, tool: str, lister: Lister, key: str) -> dict[str, Any] | None:
        """The listed object whose metadata names the decision, paging through the list."""
        after: str | None = None
        for _ in range(MAX_PAGES):
            try:
                listed = await lister(after)
            except stripe.StripeError as exc:
                raise stripe_error(exc, f"{tool} (reconciliation)", self._secrets) from None
            body = _body(listed)
            items = [item for item in body.get("data") or [] if isinstance(item, dict)]
            for item in items:
                if (item.get("metadata") or {}).get(METADATA_KEY) == key:
                    return item
            if not body.get("has_more") or not items:
                return None
            after = str(items[-1]["id"])
        raise TransientError(f"{tool} (reconciliation): no object with {METADATA_KEY}={key} in the "
                             f"first {MAX_PAGES * 100} listed; cannot tell yet",
                             code="reconciliation_incomplete")

    def _result(self, tool: str, params: Mapping[str, Any], body: Mapping[str, Any], *,
                replayed: bool) -> ExecutionResult:
        external_id = str(body["id"])
        summary = stripe_summary(tool, body)
        account = self._account(params)
        if account:
            summary["stripe_account"] = account
        return ExecutionResult(external_id=external_id, summary=summary, replayed=replayed,
                               response=dict(body))


def _body(answer: stripe.StripeObject) -> dict[str, Any]:
    """Stripe's answer as it came (plain JSON), rather than the SDK's object made of it."""
    response = answer.last_response
    if response is not None:
        with contextlib.suppress(ValueError):
            body = json.loads(response.body)
            if isinstance(body, dict):
                return body
    return answer.to_dict()


def _id(value: Any) -> Any:
    """An expandable field's id, whether Stripe sent the id or the object."""
    return value.get("id") if isinstance(value, Mapping) else value


def stripe_summary(tool: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The audit log's summary of a Stripe object: the sandbox's keys for the same tool."""
    if tool == "stripe.refund":
        return {"refund": body["id"], "charge": _id(body.get("charge")), "amount": body.get("amount"),
                "currency": body.get("currency"), "status": body.get("status")}
    if tool == "stripe.transfer":
        return {"transfer": body["id"], "destination": _id(body.get("destination")),
                "amount": body.get("amount"), "currency": body.get("currency")}
    if tool == "stripe.payout":
        metadata = body.get("metadata") or {}
        creator = {"creator_id": metadata["creator_id"]} if metadata.get("creator_id") else {}
        return {"payout": body["id"], "amount": body.get("amount"), "currency": body.get("currency"),
                "status": body.get("status"), "destination": _id(body.get("destination")), **creator}
    return {"transfer_reversal": body["id"], "transfer": _id(body.get("transfer")),
            "amount": body.get("amount"), "currency": body.get("currency")}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without credentials: the keys, and keys as Stripe masks them (sk_test_****abcd)."""
    return _MASKED_KEY.sub(r"\1_\2_***", redact(text, secrets))


def stripe_error(exc: stripe.StripeError, what: str, secrets: Iterable[str] = ()) -> ConnectorError:
    """The ConnectorError for an error the SDK raised (see the module's table)."""
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, (httpx.TransportError, httpx.InvalidURL)):
            return transport_error(cause, what, secrets)
        return UnknownOutcomeError(
            f"{what}: the connection to Stripe failed ({type(cause or exc).__name__}); whether the "
            "request took effect is unknown, so it is reconciled before anything is sent again")
    status = exc.http_status or 0
    headers: Mapping[str, str] = exc.headers or {}
    body: Mapping[str, Any] = exc.json_body if isinstance(exc.json_body, dict) else {}
    error: Mapping[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code = error.get("code") or exc.code
    message = str(error.get("message") or exc.user_message or "no message")[:500]
    request_id = headers.get("request-id")
    text = scrub(f"{what}: Stripe answered {status}" + (f" {code}" if code else "") + f": {message}"
                 + (f" (request {request_id})" if request_id else ""), secrets)
    after = retry_after(headers)
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflictError(text, code="idempotency_mismatch")
    mapped = _by_kind(exc, status, code, text, after)
    should_retry = (headers.get("stripe-should-retry") or "").strip().lower()
    if should_retry == "false" and isinstance(mapped, TransientError):
        return PermanentError(f"{text}; Stripe says a retry would not succeed", code=mapped.code)
    if should_retry == "true" and not isinstance(mapped, TransientError):
        return TransientError(f"{text}; Stripe says a retry may succeed", code=mapped.code,
                              retry_after=after)
    return mapped


def _by_kind(exc: stripe.StripeError, status: int, code: str | None, text: str,
             after: float | None) -> ConnectorError:
    if isinstance(exc, stripe.RateLimitError):  # Stripe's "rate_limit" is every connector's
        return TransientError(text, code="rate_limited" if code in (None, "rate_limit") else code,
                              retry_after=after)
    if isinstance(exc, stripe.AuthenticationError):
        return PermanentError(text, code="credentials_refused")
    if isinstance(exc, stripe.PermissionError):
        return PermanentError(text, code=code or "forbidden")
    if isinstance(exc, stripe.CardError):
        return PermanentError(text, code=code or "card_error")
    if isinstance(exc, stripe.InvalidRequestError):
        missing = "resource_missing" if status == 404 else "invalid_request"
        return PermanentError(text, code=code or missing)
    if isinstance(exc, stripe.APIError):
        if status == 409:
            return TransientError(text, code=code or "conflict", retry_after=after)
        if status >= 500:
            down = "service_unavailable" if status == 503 else "provider_error"
            return TransientError(text, code=code or down, retry_after=after)
        if 200 <= status < 300:
            return UnknownOutcomeError(f"{text}; the answer could not be read, so whether it took "
                                       "effect is reconciled", code="bad_answer")
        if status:
            return PermanentError(text, code=code or f"http_{status}")
    return UnknownOutcomeError(f"{text}; whether it took effect is unknown, so it is reconciled "
                               "before anything is sent again")
