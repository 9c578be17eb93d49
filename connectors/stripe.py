"""Stripe: refunds to customers, transfers to suppliers and creators, payouts, and the reversal
of a transfer (the compensation of `stripe.transfer`).

Sandbox answers follow Stripe's API objects: a refund (`re_...`, status "succeeded"), a transfer
(`tr_...`), a payout (`po_...`, status "pending"), a transfer reversal (`trr_...`). Magic values
(see `connectors.sandbox`) are looked for in `charge` (refund), `destination` (transfer, payout),
`creator_id` (payout) and `transfer` (reversal): `ch_sandbox_declined` → card_declined,
`ch_sandbox_refunded` → charge_already_refunded, `acct_sandbox_declined` → account_invalid,
`cr_sandbox_declined` → insufficient_funds, `tr_sandbox_declined` → balance_insufficient,
`..._sandbox_unavailable` → retry after 1 s.

Every tool takes an optional `stripe_account` (Stripe Connect: act on a connected account, sent
as the `Stripe-Account` header in live mode); the sandbox records it in the summary.

A reversal reverses what is left of a transfer the sandbox made (all of it by default); a
transfer it never made is `resource_missing`, more than what is left `amount_too_large`, as
Stripe answers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from connectors.base import Compensation, PermanentError, ToolSpec
from connectors.call_ledger import Answer, LedgerView
from connectors.fields import Amount, Currency, GenericId, Params
from connectors.sandbox import SandboxConnector, new_object_id
from dsl.model import Risk

ChargeId = Annotated[str, StringConstraints(max_length=255, pattern=r"^(ch|py)_[A-Za-z0-9_]+$")]
AccountId = Annotated[str, StringConstraints(max_length=255, pattern=r"^acct_[A-Za-z0-9_]+$")]
TransferId = Annotated[str, StringConstraints(max_length=255, pattern=r"^tr_[A-Za-z0-9_]+$")]
PayoutDestination = Annotated[
    str, StringConstraints(max_length=255, pattern=r"^(ba|card)_[A-Za-z0-9_]+$")
]
_AMOUNT = "in the currency's minor unit (cents for usd): 2500 is $25.00"
_CURRENCY = "ISO 4217 currency code, lower case (usd, eur)"
_ACCOUNT = ("the connected account to act as (Stripe Connect, sent as Stripe-Account, acct_...); "
            "default: the platform account, or the one the gateway is configured with")


class RefundParams(Params):
    """Refund all or part of a charge to the customer."""

    charge: ChargeId = Field(description="the charge to refund (ch_... or py_...)")
    amount: Amount = Field(description=f"amount to refund, {_AMOUNT}")
    currency: Currency = Field(description=_CURRENCY)
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = Field(
        None, description="why, as Stripe records it")
    stripe_account: AccountId | None = Field(None, description=_ACCOUNT)


class TransferParams(Params):
    """Pay a supplier or a creator: move money to their connected Stripe account."""

    destination: AccountId = Field(description="the connected account paid (acct_...)")
    amount: Amount = Field(description=f"amount to transfer, {_AMOUNT}")
    currency: Currency = Field(description=_CURRENCY)
    description: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        None, description="what the payment is for, shown on the transfer")
    stripe_account: AccountId | None = Field(None, description=_ACCOUNT)


class PayoutParams(Params):
    """Pay out the balance to a bank account or debit card."""

    amount: Amount = Field(description=f"amount to pay out, {_AMOUNT}")
    currency: Currency = Field(description=_CURRENCY)
    destination: PayoutDestination | None = Field(
        None, description="bank account (ba_...) or card (card_...); default: the default one")
    creator_id: GenericId | None = Field(
        None, description="the creator this payout is for, recorded in the payout's metadata")
    stripe_account: AccountId | None = Field(None, description=_ACCOUNT)


class ReverseTransferParams(Params):
    """Take back all or part of a transfer from the connected account it paid."""

    transfer: TransferId = Field(description="the transfer to reverse (tr_...)")
    amount: Amount | None = Field(
        None, description=f"amount to take back, {_AMOUNT}; default: all that is left")
    stripe_account: AccountId | None = Field(
        None, description="the account that made the transfer (Stripe Connect, acct_...), as "
                          "given to stripe.transfer; default: the platform account")


def reverse_transfer(params: Mapping[str, Any], external_id: str,
                     summary: Mapping[str, Any]) -> Compensation:
    """A transfer is undone by reversing it: the same amount, as the same account (the packet's,
    or the one the execution recorded: a live connector records the account it acted as)."""
    reversal: dict[str, Any] = {"transfer": external_id, "amount": params["amount"]}
    account = params.get("stripe_account") or summary.get("stripe_account")
    if account:
        reversal["stripe_account"] = account
    return Compensation("stripe.reverse_transfer", reversal)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("stripe.refund", RefundParams, Risk.L1,
             "Refund a charge (all or part) to the customer.", reversible=False,
             compensation="none: a refund cannot be taken back; the customer must pay again"),
    ToolSpec("stripe.transfer", TransferParams, Risk.L2,
             "Pay a supplier or creator by transfer to their connected account.",
             reversible=True,
             compensation="stripe.reverse_transfer of the transfer (POST "
                          "/v1/transfers/{id}/reversals), while the connected account still "
                          "holds the funds",
             compensator=reverse_transfer),
    ToolSpec("stripe.payout", PayoutParams, Risk.L3,
             "Pay out the balance to a bank account or card.", reversible=False,
             compensation="none through Warden: a pending payout can be cancelled in Stripe "
                          "(POST /v1/payouts/{id}/cancel); once paid it cannot be undone"),
    ToolSpec("stripe.reverse_transfer", ReverseTransferParams, Risk.L1,
             "Reverse a transfer (all or part): take the money back from the account.",
             reversible=False,
             compensation="none: a reversal cannot be undone; pay the account again with "
                          "stripe.transfer"),
)


class StripeSandbox(SandboxConnector):
    """Stripe without the network: the objects Stripe would return, recorded per key."""

    name = "stripe"
    tools = TOOLS
    magic_fields = {"stripe.refund": ("charge",), "stripe.transfer": ("destination",),
                    "stripe.payout": ("destination", "creator_id"),
                    "stripe.reverse_transfer": ("transfer",)}
    declined_codes = {"stripe.refund": "card_declined", "stripe.transfer": "account_invalid",
                      "stripe.payout": "insufficient_funds",
                      "stripe.reverse_transfer": "balance_insufficient"}

    def check_magic(self, tool: str, params: Mapping[str, Any]) -> None:
        if tool == "stripe.refund" and "sandbox_refunded" in str(params.get("charge")):
            raise PermanentError(f"charge {params['charge']} has already been refunded",
                                 code="charge_already_refunded")
        super().check_magic(tool, params)

    def answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        external_id, response, summary = self._answer(tool, params, view)
        if params.get("stripe_account"):
            summary["stripe_account"] = params["stripe_account"]
        return external_id, response, summary

    def _answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        if tool == "stripe.reverse_transfer":
            return _reversal(params, view)
        created = int(time.time())
        base = {"amount": params["amount"], "currency": params["currency"], "created": created,
                "balance_transaction": new_object_id("txn_"), "livemode": False,
                "metadata": {}}
        if tool == "stripe.refund":
            refund = {"id": new_object_id("re_"), "object": "refund", **base,
                      "charge": params["charge"], "payment_intent": None,
                      "reason": params.get("reason"), "receipt_number": None,
                      "status": "succeeded"}
            return refund["id"], refund, {
                "refund": refund["id"], "charge": refund["charge"], "amount": refund["amount"],
                "currency": refund["currency"], "status": refund["status"]}
        if tool == "stripe.transfer":
            transfer_id = new_object_id("tr_")
            transfer = {"id": transfer_id, "object": "transfer", **base, "amount_reversed": 0,
                        "description": params.get("description"),
                        "destination": params["destination"],
                        "destination_payment": new_object_id("py_"),
                        "reversals": {"object": "list", "data": [], "has_more": False,
                                      "total_count": 0,
                                      "url": f"/v1/transfers/{transfer_id}/reversals"},
                        "reversed": False, "source_transaction": None, "source_type": "card",
                        "transfer_group": None}
            return transfer_id, transfer, {
                "transfer": transfer_id, "destination": transfer["destination"],
                "amount": transfer["amount"], "currency": transfer["currency"]}
        destination = params.get("destination") or "ba_sandboxdefault"
        metadata = {"creator_id": params["creator_id"]} if params.get("creator_id") else {}
        payout = {"id": new_object_id("po_"), "object": "payout", **base, "metadata": metadata,
                  "arrival_date": created + 2 * 86400, "automatic": False,
                  "description": None, "destination": destination, "failure_code": None,
                  "failure_message": None, "method": "standard", "source_type": "card",
                  "statement_descriptor": None, "status": "pending",
                  "type": "card" if destination.startswith("card_") else "bank_account"}
        return payout["id"], payout, {
            "payout": payout["id"], "amount": payout["amount"], "currency": payout["currency"],
            "status": payout["status"], "destination": destination, **metadata}


def _reversal(params: Mapping[str, Any], view: LedgerView) -> Answer:
    """A transfer reversal of a transfer the sandbox made, within what is left of it."""
    transfer_id = params["transfer"]
    transfers = list(view.responses("stripe.transfer", {"$.id": transfer_id}))
    if not transfers:
        raise PermanentError(f"No such transfer: '{transfer_id}'", code="resource_missing")
    transfer = transfers[0]
    reversed_so_far = sum(earlier["amount"] for earlier in list(view.responses(
        "stripe.reverse_transfer", {"$.transfer": transfer_id})))
    left = transfer["amount"] - reversed_so_far
    amount = params.get("amount") or left
    if left <= 0:
        raise PermanentError(f"transfer {transfer_id} is already fully reversed",
                             code="amount_too_large")
    if amount > left:
        raise PermanentError(f"the reversal of {amount} is more than the {left} left on transfer "
                             f"{transfer_id}", code="amount_too_large")
    reversal = {"id": new_object_id("trr_"), "object": "transfer_reversal", "amount": amount,
                "balance_transaction": new_object_id("txn_"), "created": int(time.time()),
                "currency": transfer["currency"],
                "destination_payment_refund": new_object_id("pyr_"), "metadata": {},
                "source_refund": None, "transfer": transfer_id}
    return reversal["id"], reversal, {
        "transfer_reversal": reversal["id"], "transfer": transfer_id, "amount": amount,
        "currency": reversal["currency"]}
