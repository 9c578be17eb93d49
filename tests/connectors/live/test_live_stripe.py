"""The live Stripe connector against FakeStripe on loopback (and one refund against localstripe):
every tool, Stripe's errors, retries with the same key, reconciliation, compensation, Connect,
credentials kept out of messages, and the fake checked against Stripe's documented examples."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from connectors.base import (
    Compensation,
    IdempotencyConflictError,
    NotReversible,
    PermanentError,
    TransientError,
    UnknownOutcomeError,
)
from connectors.call_ledger import SandboxCallLedger
from connectors.live.config import STRIPE_API_VERSION, StripeConfig
from connectors.live.runner import CallRunner
from connectors.live.stripe import METADATA_KEY, StripeLive
from connectors.stripe import TOOLS, StripeSandbox
from fakes.stripe import DEFAULT_KEY, FakeStripe

# the SDK hands httpx its encoded form as `data=`, which httpx deprecates (the SDK's to change)
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

SPECS = {spec.name: spec for spec in TOOLS}
DAY = 24 * 3600.0
REFUND = {"charge": "ch_3PqX", "amount": 2500, "currency": "usd", "reason": "requested_by_customer"}
TRANSFER = {"destination": "acct_1Nv0FG", "amount": 120000, "currency": "usd",
            "description": "invoice 2024-118"}
PAYOUT = {"amount": 250000, "currency": "usd", "creator_id": "cr_19"}

#: Stripe's documented example of a refund (docs.stripe.com/api/refunds/object)
DOCUMENTED_REFUND: dict[str, Any] = {
    "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ", "object": "refund", "amount": 1000,
    "balance_transaction": "txn_1Nispe2eZvKYlo2CYezqFhEx", "charge": "ch_1NirD82eZvKYlo2CIvbtLWuY",
    "created": 1692942318, "currency": "usd",
    "destination_details": {"card": {"reference": "123456789012", "reference_status": "available",
                                     "reference_type": "acquirer_reference_number",
                                     "type": "refund"}, "type": "card"},
    "metadata": {}, "payment_intent": "pi_1GszsK2eZvKYlo2CfhZyoZLp", "reason": None,
    "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
    "transfer_reversal": None,
}
#: Stripe's documented example of a balance (docs.stripe.com/api/balance/balance_object)
DOCUMENTED_BALANCE: dict[str, Any] = {
    "object": "balance",
    "available": [{"amount": 666670, "currency": "usd", "source_types": {"card": 666670}}],
    "connect_reserved": [{"amount": 0, "currency": "usd"}],
    "livemode": False,
    "pending": [{"amount": 61414, "currency": "usd", "source_types": {"card": 61414}}],
}
#: the attributes of Stripe's error object (docs.stripe.com/api/errors)
DOCUMENTED_ERROR_TYPES = {"api_error", "card_error", "idempotency_error", "invalid_request_error"}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes are on loopback: no proxy of the environment in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def stripe_server() -> Iterator[FakeStripe]:
    server = FakeStripe(hang_seconds=0.8)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(stripe_server: FakeStripe) -> FakeStripe:
    stripe_server.reset()
    return stripe_server


Connect = Callable[..., StripeLive]


@pytest.fixture
def connect(fake: FakeStripe, runner: CallRunner, opened: list[StripeLive]) -> Iterator[Connect]:
    """A StripeLive on the fake: `connect(timeout=..., api_key=..., account=..., ...)`."""

    def make(*, timeout: float = 3.0, base: str | None = None, **config: Any) -> StripeLive:
        settings = {"api_key": DEFAULT_KEY, "api_base": base or fake.base_url, **config}
        connector = StripeLive(StripeConfig(**settings), runner=runner, timeout=timeout)
        opened.append(connector)
        return connector

    yield make


@pytest.fixture
def live(connect: Connect) -> StripeLive:
    return connect()


def logged(fake: FakeStripe, route: str, *, settled: int = 1) -> list[Any]:
    """The requests the fake logged on `route`, once it has logged at least `settled` (it logs
    a request just after answering it, so the client may hear first)."""
    deadline = time.monotonic() + 2
    while len(fake.requests(route)) < settled and time.monotonic() < deadline:
        time.sleep(0.01)
    return fake.requests(route)


def posts(fake: FakeStripe, path: str, *, settled: int = 1) -> list[Any]:
    return logged(fake, f"POST {path}", settled=settled)


# ---- every tool ------------------------------------------------------------------------------

def test_refund_is_a_stripe_refund_with_the_key_the_version_and_the_decision_in_metadata(
        fake: FakeStripe, live: StripeLive) -> None:
    result = live.execute("stripe.refund", REFUND, idempotency_key="dec-refund-1")
    (refund,) = fake.objects("refunds")
    assert result.external_id == refund["id"] and refund["id"].startswith("re_")
    assert result.summary == {"refund": refund["id"], "charge": "ch_3PqX", "amount": 2500,
                              "currency": "usd", "status": "succeeded"}
    assert result.response["object"] == "refund" and result.response["reason"] == "requested_by_customer"
    assert refund["metadata"] == {METADATA_KEY: "dec-refund-1"}
    assert not result.replayed and not result.reconciled
    (seen,) = posts(fake, "/v1/refunds")
    assert seen.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert seen.headers["stripe-version"] == STRIPE_API_VERSION
    assert seen.headers["idempotency-key"] == "dec-refund-1"
    assert "stripe-account" not in seen.headers
    assert fake.effects_by_key() == {"dec-refund-1": 1}


def test_transfer_payout_and_the_reversal_of_the_transfer(fake: FakeStripe, live: StripeLive) -> None:
    transfer = live.execute("stripe.transfer", TRANSFER, idempotency_key="dec-tr")
    assert transfer.summary == {"transfer": transfer.external_id, "destination": "acct_1Nv0FG",
                                "amount": 120000, "currency": "usd"}
    assert transfer.response["description"] == "invoice 2024-118"
    payout = live.execute("stripe.payout", PAYOUT, idempotency_key="dec-po")
    assert payout.summary == {"payout": payout.external_id, "amount": 250000, "currency": "usd",
                              "status": "pending", "destination": payout.response["destination"],
                              "creator_id": "cr_19"}
    assert fake.objects("payouts")[0]["metadata"] == {METADATA_KEY: "dec-po", "creator_id": "cr_19"}

    undo = SPECS["stripe.transfer"].compensate(TRANSFER, transfer.external_id, transfer.summary)
    assert undo == Compensation("stripe.reverse_transfer",
                                {"transfer": transfer.external_id, "amount": 120000})
    reversal = live.execute(undo.tool, undo.params, idempotency_key="dec-undo")
    assert reversal.external_id.startswith("trr_") and reversal.response["object"] == "transfer_reversal"
    assert reversal.summary == {"transfer_reversal": reversal.external_id,
                                "transfer": transfer.external_id, "amount": 120000, "currency": "usd"}
    assert posts(fake, f"/v1/transfers/{transfer.external_id}/reversals")[0].headers[
        "idempotency-key"] == "dec-undo"
    (stored,) = fake.objects("transfers")
    assert stored["reversed"] is True and stored["amount_reversed"] == 120000
    assert fake.objects("reversals")[0]["metadata"] == {METADATA_KEY: "dec-undo"}
    # a transfer reversed in full cannot be reversed again
    with pytest.raises(PermanentError) as again:
        live.execute(undo.tool, undo.params, idempotency_key="dec-undo-2")
    assert again.value.code == "amount_too_large"
    assert fake.effects_by_key() == {"dec-tr": 1, "dec-po": 1, "dec-undo": 1}


def test_a_partial_reversal_then_the_rest(live: StripeLive) -> None:
    transfer = live.execute("stripe.transfer", TRANSFER, idempotency_key="t")
    part = live.execute("stripe.reverse_transfer",
                        {"transfer": transfer.external_id, "amount": 20000}, idempotency_key="r1")
    rest = live.execute("stripe.reverse_transfer", {"transfer": transfer.external_id},
                        idempotency_key="r2")
    assert (part.summary["amount"], rest.summary["amount"]) == (20000, 100000)


def test_refund_and_payout_cannot_be_compensated() -> None:
    for tool, params in (("stripe.refund", REFUND), ("stripe.payout", PAYOUT)):
        with pytest.raises(NotReversible, match="cannot be undone"):
            SPECS[tool].compensate(params, "re_1", {})


@pytest.mark.parametrize("tool", ["stripe.refund", "stripe.transfer", "stripe.payout",
                                  "stripe.reverse_transfer"])
def test_live_summaries_have_the_sandbox_keys(live: StripeLive, tool: str) -> None:
    sandbox = StripeSandbox(SandboxCallLedger())
    params: dict[str, Any] = {"stripe.refund": REFUND, "stripe.transfer": TRANSFER,
                              "stripe.payout": PAYOUT}.get(tool, {})
    if tool == "stripe.reverse_transfer":
        made = sandbox.execute("stripe.transfer", TRANSFER, idempotency_key="s-t")
        paid = live.execute("stripe.transfer", TRANSFER, idempotency_key="l-t")
        in_sandbox = sandbox.execute(tool, {"transfer": made.external_id}, idempotency_key="s")
        in_stripe = live.execute(tool, {"transfer": paid.external_id}, idempotency_key="l")
    else:
        in_sandbox = sandbox.execute(tool, params, idempotency_key="s")
        in_stripe = live.execute(tool, params, idempotency_key="l")
    assert set(in_stripe.summary) == set(in_sandbox.summary)
    assert in_stripe.response["object"] == in_sandbox.response["object"]
    assert set(in_sandbox.response) <= set(in_stripe.response) | {"livemode"}


# ---- Stripe Connect --------------------------------------------------------------------------

def test_stripe_account_from_the_packet_wins_over_the_configured_one(
        fake: FakeStripe, connect: Connect) -> None:
    live = connect(account="acct_configured")
    by_config = live.execute("stripe.refund", REFUND, idempotency_key="a")
    by_packet = live.execute("stripe.refund", {**REFUND, "stripe_account": "acct_packet"},
                             idempotency_key="b")
    sent = [s.headers.get("stripe-account") for s in posts(fake, "/v1/refunds", settled=2)]
    assert sent == ["acct_configured", "acct_packet"]
    assert by_config.summary["stripe_account"] == "acct_configured"
    assert by_packet.summary["stripe_account"] == "acct_packet"
    assert [r["id"] for r in fake.objects("refunds", "acct_packet")] == [by_packet.external_id]
    assert fake.objects("refunds") == []  # nothing on the platform account itself


def test_a_transfer_made_as_a_connected_account_is_reversed_as_that_account(
        fake: FakeStripe, live: StripeLive, connect: Connect) -> None:
    params = {**TRANSFER, "stripe_account": "acct_seller"}
    transfer = live.execute("stripe.transfer", params, idempotency_key="t")
    undo = SPECS["stripe.transfer"].compensate(params, transfer.external_id, transfer.summary)
    assert undo.params["stripe_account"] == "acct_seller"
    live.execute(undo.tool, undo.params, idempotency_key="u")
    assert fake.objects("transfers", "acct_seller")[0]["reversed"] is True
    # the account the gateway was configured with is recorded, and the reversal made as it
    configured = connect(account="acct_ops")
    paid = configured.execute("stripe.transfer", TRANSFER, idempotency_key="t2")
    undo = SPECS["stripe.transfer"].compensate(TRANSFER, paid.external_id, paid.summary)
    assert undo.params == {"transfer": paid.external_id, "amount": 120000,
                           "stripe_account": "acct_ops"}
    live.execute(undo.tool, undo.params, idempotency_key="u2")
    assert fake.objects("transfers", "acct_ops")[0]["reversed"] is True


# ---- permanent errors, with the sandbox's codes ----------------------------------------------

PERMANENT = [
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_declined"}, "card_declined"),
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_refunded"}, "charge_already_refunded"),
    ("stripe.transfer", {**TRANSFER, "destination": "acct_sandbox_declined"}, "account_invalid"),
    ("stripe.payout", {**PAYOUT, "creator_id": "cr_sandbox_declined"}, "insufficient_funds"),
    ("stripe.payout", {**PAYOUT, "destination": "ba_sandbox_declined"}, "insufficient_funds"),
    ("stripe.reverse_transfer", {"transfer": "tr_sandbox_declined"}, "balance_insufficient"),
    ("stripe.reverse_transfer", {"transfer": "tr_neverseen"}, "resource_missing"),
]


@pytest.mark.parametrize(("tool", "params", "code"), PERMANENT,
                         ids=[f"{t}-{c}" for t, _, c in PERMANENT])
def test_refusals_are_permanent_with_stripes_code_and_the_sandboxs(
        fake: FakeStripe, live: StripeLive, tool: str, params: dict[str, Any], code: str) -> None:
    with pytest.raises(PermanentError) as in_sandbox:
        StripeSandbox(SandboxCallLedger()).execute(tool, params, idempotency_key="k")
    with pytest.raises(PermanentError) as in_stripe:
        live.execute(tool, params, idempotency_key="k")
    assert in_stripe.value.code == in_sandbox.value.code == code
    assert "Stripe answered 4" in str(in_stripe.value) and "(request req_" in str(in_stripe.value)
    assert fake.effects == []
    # Stripe stored the refusal under the key: the same request gets it again, nothing new
    with pytest.raises(PermanentError) as again:
        live.execute(tool, params, idempotency_key="k")
    assert again.value.code == code and fake.effects == []


def test_refunding_more_than_is_left_of_the_charge(fake: FakeStripe, live: StripeLive) -> None:
    fake.add_charge("ch_small", amount=3000)
    live.execute("stripe.refund", {**REFUND, "charge": "ch_small"}, idempotency_key="one")
    with pytest.raises(PermanentError) as caught:
        live.execute("stripe.refund", {**REFUND, "charge": "ch_small"}, idempotency_key="two")
    assert caught.value.code == "amount_too_large" and "500" in str(caught.value)
    fake.strict_charges = True
    with pytest.raises(PermanentError) as missing:
        live.execute("stripe.refund", {**REFUND, "charge": "ch_unknown"}, idempotency_key="three")
    assert missing.value.code == "resource_missing"


def test_the_same_key_for_other_params_is_an_idempotency_conflict(
        fake: FakeStripe, live: StripeLive) -> None:
    live.execute("stripe.refund", REFUND, idempotency_key="dup")
    with pytest.raises(IdempotencyConflictError) as caught:
        live.execute("stripe.refund", {**REFUND, "amount": 2600}, idempotency_key="dup")
    assert caught.value.code == "idempotency_mismatch" and "'dup'" in str(caught.value)
    assert fake.effects_by_key() == {"dup": 1}


# ---- transient errors, retried with the same key ---------------------------------------------

def test_a_5xx_then_success_with_the_same_key_acts_once(fake: FakeStripe, live: StripeLive) -> None:
    fake.fail("POST /v1/refunds", status=500,
              body={"error": {"type": "api_error", "message": "An unknown error occurred"}},
              headers={"Request-Id": "req_500"})
    with pytest.raises(TransientError) as caught:
        live.execute("stripe.refund", REFUND, idempotency_key="dec-5xx")
    assert not isinstance(caught.value, UnknownOutcomeError)
    assert caught.value.code == "provider_error" and "req_500" in str(caught.value)
    time.sleep(0.1)
    assert len(posts(fake, "/v1/refunds", settled=1)) == 1  # the SDK retries nothing by itself
    result = live.execute("stripe.refund", REFUND, idempotency_key="dec-5xx")
    assert result.summary["amount"] == 2500
    assert fake.effects_by_key() == {"dec-5xx": 1}


def test_the_sdk_retries_only_when_configured_to(fake: FakeStripe, connect: Connect) -> None:
    live = connect(max_network_retries=1)
    fake.fail("POST /v1/refunds", status=500, body={"error": {"type": "api_error", "message": "x"}})
    result = live.execute("stripe.refund", REFUND, idempotency_key="sdk-retry")
    keys = [s.headers["idempotency-key"] for s in posts(fake, "/v1/refunds", settled=2)]
    assert keys == ["sdk-retry", "sdk-retry"] and result.external_id
    assert fake.effects_by_key() == {"sdk-retry": 1}


def test_unavailable_asks_for_a_retry_after_a_second_as_in_the_sandbox(live: StripeLive) -> None:
    params = {**REFUND, "charge": "ch_sandbox_unavailable"}
    with pytest.raises(TransientError) as in_sandbox:
        StripeSandbox(SandboxCallLedger()).execute("stripe.refund", params, idempotency_key="k")
    with pytest.raises(TransientError) as in_stripe:
        live.execute("stripe.refund", params, idempotency_key="k")
    assert (in_stripe.value.code, in_stripe.value.retry_after) == (
        in_sandbox.value.code, in_sandbox.value.retry_after) == ("service_unavailable", 1.0)


def test_429_is_transient_with_retry_after_then_the_call_goes_through(
        fake: FakeStripe, live: StripeLive) -> None:
    fake.rate_limit(times=1, retry_after=0.2)
    with pytest.raises(TransientError) as caught:
        live.execute("stripe.transfer", TRANSFER, idempotency_key="dec-429")
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 0.2)
    assert fake.effects == []
    time.sleep(caught.value.retry_after or 0)
    live.execute("stripe.transfer", TRANSFER, idempotency_key="dec-429")
    assert fake.effects_by_key() == {"dec-429": 1}


@pytest.mark.parametrize(("status", "should_retry", "expected"), [
    (500, "false", PermanentError), (503, "false", PermanentError), (429, "false", PermanentError),
    (400, "true", TransientError), (402, "true", TransientError), (409, None, TransientError),
])
def test_stripe_should_retry_decides_over_the_status(
        fake: FakeStripe, live: StripeLive, status: int, should_retry: str | None,
        expected: type[Exception]) -> None:
    kind = {400: "invalid_request_error", 402: "card_error"}.get(status, "api_error")
    code = {400: "lock_timeout", 402: "processing_error", 409: "idempotency_key_in_use"}.get(status)
    headers = {"Stripe-Should-Retry": should_retry} if should_retry else {}
    fake.fail("POST /v1/refunds", status=status, headers=headers,
              body={"error": {"type": kind, "message": "m", **({"code": code} if code else {})}})
    with pytest.raises(expected) as caught:
        live.execute("stripe.refund", REFUND, idempotency_key="sr")
    if expected is PermanentError:
        assert not isinstance(caught.value, TransientError)
        assert "a retry would not succeed" in str(caught.value)
    if code:
        assert caught.value.code == code  # type: ignore[attr-defined]


def test_a_2xx_that_is_not_json_is_an_unknown_outcome(fake: FakeStripe, live: StripeLive) -> None:
    fake.fail("POST /v1/payouts", status=200, body=b"<html>maintenance</html>",
              headers={"Content-Type": "text/html"})
    with pytest.raises(UnknownOutcomeError) as caught:
        live.execute("stripe.payout", PAYOUT, idempotency_key="html")
    assert caught.value.code == "bad_answer"


def test_nothing_listening_is_transient_and_nothing_was_sent(connect: Connect) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    live = connect(base=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError) as caught:
        live.execute("stripe.refund", REFUND, idempotency_key="down")
    assert not isinstance(caught.value, UnknownOutcomeError)
    assert caught.value.code == "connection_failed" and "nothing was sent" in str(caught.value)


# ---- unknown outcomes and reconciliation -----------------------------------------------------

def test_dropped_after_the_effect_is_reconciled_not_sent_again(
        fake: FakeStripe, live: StripeLive) -> None:
    fake.fail("POST /v1/refunds", kind="drop_after")
    started = time.time()
    with pytest.raises(UnknownOutcomeError):
        live.execute("stripe.refund", REFUND, idempotency_key="dec-drop")
    assert fake.effects_by_key() == {"dec-drop": 1}
    found = live.reconcile("stripe.refund", REFUND, idempotency_key="dec-drop",
                           first_attempt_at=started)
    assert found is not None and found.reconciled and found.replayed
    assert found.external_id == fake.objects("refunds")[0]["id"]
    assert found.summary["refund"] == found.external_id
    assert fake.effects_by_key() == {"dec-drop": 1}


def test_dropped_before_stripe_acted_is_executed_once_by_the_reconciliation(
        fake: FakeStripe, live: StripeLive) -> None:
    fake.fail("POST /v1/transfers", kind="drop_before")
    with pytest.raises(UnknownOutcomeError):
        live.execute("stripe.transfer", TRANSFER, idempotency_key="dec-before")
    assert fake.effects == []
    found = live.reconcile("stripe.transfer", TRANSFER, idempotency_key="dec-before",
                           first_attempt_at=time.time())
    assert found is not None and not found.replayed
    assert fake.effects_by_key() == {"dec-before": 1}


@pytest.mark.parametrize("tool", ["stripe.refund", "stripe.transfer", "stripe.payout",
                                  "stripe.reverse_transfer"])
def test_after_a_day_the_effect_is_found_by_its_metadata_without_sending_it(
        fake: FakeStripe, live: StripeLive, tool: str) -> None:
    params: dict[str, Any] = {"stripe.refund": REFUND, "stripe.transfer": TRANSFER,
                              "stripe.payout": PAYOUT}.get(tool, {})
    if tool == "stripe.reverse_transfer":
        transfer = live.execute("stripe.transfer", TRANSFER, idempotency_key="before")
        params = {"transfer": transfer.external_id, "amount": 1000}
        live.execute(tool, {**params, "amount": 500}, idempotency_key="another-decision")
    path = {"stripe.refund": "/v1/refunds", "stripe.transfer": "/v1/transfers",
            "stripe.payout": "/v1/payouts"}.get(tool, f"/v1/transfers/{params.get('transfer')}/reversals")
    fake.fail(f"POST {path}", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        live.execute(tool, params, idempotency_key="dec-old")
    sent = len(posts(fake, path, settled=2 if tool == "stripe.reverse_transfer" else 1))
    found = live.reconcile(tool, params, idempotency_key="dec-old", first_attempt_at=time.time() - DAY - 60)
    assert found is not None and found.reconciled
    assert found.response["metadata"][METADATA_KEY] == "dec-old"
    assert len(posts(fake, path)) == sent, "a reconciliation after a day only reads"
    assert logged(fake, f"GET {path}")
    assert fake.effects_by_key()["dec-old"] == 1
    missing = live.reconcile(tool, params, idempotency_key="dec-never", first_attempt_at=time.time() - 2 * DAY)
    assert missing is None and len(posts(fake, path)) == sent


def test_reconciliation_pages_through_long_lists(fake: FakeStripe, live: StripeLive) -> None:
    fake.add_charge("ch_many", amount=10_000_000)
    for number in range(150):
        fake.add_refund("ch_many", amount=100, metadata={METADATA_KEY: f"r{number}"})
    found = live.reconcile("stripe.refund", {**REFUND, "charge": "ch_many", "amount": 100},
                           idempotency_key="r0", first_attempt_at=time.time() - 2 * DAY)
    assert found is not None and found.response["metadata"][METADATA_KEY] == "r0"
    assert len(logged(fake, "GET /v1/refunds", settled=2)) == 2  # newest first: the oldest is on page 2


def test_a_timeout_is_an_unknown_outcome_then_reconciled(fake: FakeStripe, connect: Connect) -> None:
    live = connect(timeout=0.3)
    fake.fail("POST /v1/payouts", kind="hang_after", seconds=0.6)
    started = time.time()
    with pytest.raises(UnknownOutcomeError) as caught:
        live.execute("stripe.payout", PAYOUT, idempotency_key="dec-slow")
    assert caught.value.code == "timeout" and time.time() - started < 0.6
    assert fake.effects_by_key() == {"dec-slow": 1}
    time.sleep(0.5)  # the fake answers, to nobody
    found = live.reconcile("stripe.payout", PAYOUT, idempotency_key="dec-slow", first_attempt_at=started)
    assert found is not None and found.replayed
    assert fake.effects_by_key() == {"dec-slow": 1}


def test_the_timeout_magic_value_applies_nothing_and_holds_the_key_meanwhile(
        fake: FakeStripe, connect: Connect) -> None:
    live = connect(timeout=0.3)
    params = {**TRANSFER, "destination": "acct_sandbox_timeout"}
    with pytest.raises(UnknownOutcomeError) as caught:
        live.execute("stripe.transfer", params, idempotency_key="dec-hang")
    assert caught.value.code == "timeout"
    with pytest.raises(TransientError) as busy:  # the first request still runs at Stripe
        live.reconcile("stripe.transfer", params, idempotency_key="dec-hang",
                       first_attempt_at=time.time())
    assert busy.value.code == "idempotency_key_in_use"
    time.sleep(0.6)
    assert fake.effects == []


# ---- credentials -----------------------------------------------------------------------------

def test_a_wrong_key_is_refused_and_never_shown(fake: FakeStripe, connect: Connect) -> None:
    wrong = "sk_test_51WrongKeyForWardenTestsZq9x"
    live = connect(api_key=wrong)
    for attempt in (lambda: live.execute("stripe.refund", REFUND, idempotency_key="k"), live.check):
        with pytest.raises(PermanentError) as caught:
            attempt()
        assert caught.value.code == "credentials_refused"
        assert wrong not in str(caught.value) and "Zq9x" not in str(caught.value)
        assert "Invalid API Key provided" in str(caught.value)
    assert fake.effects == []


def test_a_key_in_an_error_message_is_scrubbed(fake: FakeStripe, live: StripeLive) -> None:
    fake.fail("POST /v1/refunds", status=400,
              body={"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                              "message": f"rejected {DEFAULT_KEY} and rk_live_abcDEF123"}})
    with pytest.raises(PermanentError) as caught:
        live.execute("stripe.refund", REFUND, idempotency_key="k")
    assert DEFAULT_KEY not in str(caught.value) and "abcDEF123" not in str(caught.value)


def test_a_restricted_key_needs_each_tools_permission(fake: FakeStripe, connect: Connect) -> None:
    key = "rk_test_51RestrictedWardenKey00000000"
    fake.restricted[key] = frozenset({"refund_write"})
    live = connect(api_key=key)
    assert live.execute("stripe.refund", REFUND, idempotency_key="ok").external_id
    with pytest.raises(PermanentError) as caught:
        live.execute("stripe.transfer", TRANSFER, idempotency_key="no")
    assert caught.value.code == "forbidden" and "rak_transfer_write" in str(caught.value)
    assert key not in str(caught.value)
    with pytest.raises(PermanentError, match="rak_balance_read"):
        live.check()
    fake.restricted[key] = frozenset({"refund_write", "balance_read"})
    assert live.check() == "balance readable (usd, eur)"


def test_check_reads_the_balance(fake: FakeStripe, connect: Connect) -> None:
    assert connect().check() == "balance readable (usd, eur)"
    assert connect(account="acct_ops").check() == "balance readable (usd, eur) on acct_ops"
    assert logged(fake, "GET /v1/balance", settled=2)[-1].headers["stripe-account"] == "acct_ops"


# ---- the fake, against Stripe's documentation ------------------------------------------------

def test_the_fake_answers_with_the_documented_objects(fake: FakeStripe, live: StripeLive) -> None:
    refund = live.execute("stripe.refund", REFUND, idempotency_key="doc").response
    assert set(DOCUMENTED_REFUND) <= set(refund)
    for name, example in DOCUMENTED_REFUND.items():
        if example is not None and refund[name] is not None:
            assert type(refund[name]) is type(example), name
    assert refund["id"][:3] == DOCUMENTED_REFUND["id"][:3]

    balance = stripe.StripeClient(DEFAULT_KEY, base_addresses={"api": fake.base_url},
                                  http_client=stripe.HTTPXClient(allow_sync_methods=True))
    answer = balance.v1.balance.retrieve().last_response
    assert answer is not None
    body = json.loads(answer.body)
    assert set(body) == set(DOCUMENTED_BALANCE)
    assert set(body["available"][0]) == {"amount", "currency", "source_types"}
    assert answer.headers["request-id"].startswith("req_")


def test_the_fakes_errors_have_stripes_shape(fake: FakeStripe, live: StripeLive) -> None:
    client = stripe.StripeClient(DEFAULT_KEY, base_addresses={"api": fake.base_url},
                                 http_client=stripe.HTTPXClient(allow_sync_methods=True))
    with pytest.raises(stripe.CardError) as declined:
        client.v1.refunds.create({"charge": "ch_sandbox_declined", "amount": 1})
    assert isinstance(declined.value.json_body, dict)
    error = declined.value.json_body["error"]
    assert error["type"] in DOCUMENTED_ERROR_TYPES and error["code"] == "card_declined"
    assert error["doc_url"].startswith("https://stripe.com/docs/error-codes")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.refunds.create({"charge": "ch_1", "amount": 1, "colour": "red"})  # type: ignore[arg-type]
    assert unknown.value.code == "parameter_unknown" and unknown.value.param == "colour"
    assert fake.effects == []


# ---- localstripe -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def localstripe() -> Iterator[str]:
    """localstripe (a stateful fake Stripe, aiohttp) on a free port of loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                why = (process.stderr.read() if process.stderr else b"").decode()[-300:]
                pytest.skip(f"localstripe could not start: {why or 'it exited'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                pytest.skip("localstripe did not listen within 15 s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_charge_made_in_localstripe_is_refunded_through_the_connector(
        localstripe: str, runner: CallRunner) -> None:
    key = "sk_test_localstripe0000"
    client = stripe.StripeClient(key, base_addresses={"api": localstripe},
                                 http_client=stripe.HTTPXClient(allow_sync_methods=True))
    card = client.v1.payment_methods.create({"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    charge = client.v1.charges.create({"amount": 2000, "currency": "usd", "source": card.id})
    live = StripeLive(StripeConfig(api_key=key, api_base=localstripe), runner=runner, timeout=5)
    try:
        params = {"charge": charge.id, "amount": 500, "currency": "usd"}
        result = live.execute("stripe.refund", params, idempotency_key="dec-localstripe")
        assert result.summary == {"refund": result.external_id, "charge": charge.id, "amount": 500,
                                  "currency": "usd", "status": "succeeded"}
        listed = client.v1.refunds.list({"charge": charge.id}).last_response
        assert listed is not None
        assert [(r["id"], r["amount"], r["metadata"]) for r in json.loads(listed.body)["data"]] == [
            (result.external_id, 500, {METADATA_KEY: "dec-localstripe"})]
        found = live.reconcile("stripe.refund", params, idempotency_key="dec-localstripe",
                               first_attempt_at=time.time() - 2 * DAY)
        assert found is not None and found.external_id == result.external_id
    finally:
        runner.run(live.aclose, timeout=5, what="close")


def test_the_module_documents_every_tools_permission() -> None:
    import connectors.live.stripe as module

    doc = module.__doc__ or ""
    for spec in TOOLS:
        assert spec.name in doc, f"{spec.name}'s permission is not documented"
    assert "Balance: read" in doc and Path(module.__file__ or "").name == "stripe.py"
