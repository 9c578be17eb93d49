"""Failures on purpose: injected faults (programmatic and WARDEN_SANDBOX_FAULTS) and the magic
values a real HTTP test puts in a packet. A failed call executes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors import (
    ConnectorConfigError,
    FaultSpecError,
    PermanentError,
    Registry,
    SandboxFaults,
    TransientError,
    build_registry,
)

REFUND = {"charge": "ch_1", "amount": 2500, "currency": "usd"}
NOTE = {"record_id": "c_1", "body": "hello"}


def test_fail_next_fails_that_many_calls_then_executes(registry: Registry) -> None:
    registry.faults.fail_next("stripe.refund", times=2, kind="transient", retry_after=1.5)
    for _ in range(2):
        with pytest.raises(TransientError) as failed:
            registry.execute("stripe.refund", REFUND, idempotency_key="dec_1")
        assert failed.value.code == "sandbox_unavailable" and failed.value.retry_after == 1.5
        assert registry.call_ledger.count("dec_1") == 0  # nothing executed
    result = registry.execute("stripe.refund", REFUND, idempotency_key="dec_1")
    assert result.replayed is False
    assert registry.call_ledger.executions_by_key() == {"dec_1": 1}
    assert registry.faults.fired() == [("stripe.refund", "transient")] * 2
    assert not registry.faults.pending


def test_faults_touch_only_the_tools_they_name(registry: Registry) -> None:
    registry.faults.fail_next("crm.*", kind="permanent")
    registry.execute("stripe.refund", REFUND, idempotency_key="a")
    with pytest.raises(PermanentError) as failed:
        registry.execute("crm.log_note", NOTE, idempotency_key="b")
    assert failed.value.code == "sandbox_rejected"
    registry.execute("crm.log_note", NOTE, idempotency_key="b")
    assert registry.call_ledger.executions_by_key() == {"a": 1, "b": 1}


def test_a_fault_for_every_call_until_cleared(registry: Registry) -> None:
    registry.faults.fail_next("*", times=None, kind="transient")
    for key in ("a", "b", "c"):
        with pytest.raises(TransientError):
            registry.execute("crm.log_note", NOTE, idempotency_key=key)
    assert registry.faults.pending
    registry.faults.clear()
    registry.execute("crm.log_note", NOTE, idempotency_key="a")


def test_a_timeout_waits_for_the_latency_then_fails(reopen: Callable[..., Registry]) -> None:
    registry = reopen(latency_ms=5)
    registry.faults.fail_next("shopify.update_price", kind="timeout")
    params = {"product_id": "p1", "variant_id": "v1", "old_price": 1000, "new_price": 1100,
              "currency": "usd"}
    with pytest.raises(TransientError) as failed:
        registry.execute("shopify.update_price", params, idempotency_key="k")
    assert failed.value.code == "timeout" and failed.value.retry_after is None
    assert registry.call_ledger.calls() == []


def test_an_invalid_fault_request_is_refused() -> None:
    faults = SandboxFaults()
    with pytest.raises(ValueError, match="fault kind"):
        faults.fail_next("stripe.refund", kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        faults.fail_next("stripe.refund", times=0)


# ---- the spec string (WARDEN_SANDBOX_FAULTS) -------------------------------------------------

def test_a_spec_string_sets_up_the_same_faults(reopen: Callable[..., Registry]) -> None:
    registry = reopen(faults="stripe.refund=transient*2@0.5, crm.log_note=permanent,"
                             "shopify.*=timeout*1")
    outcomes = []
    for _ in range(3):
        try:
            registry.execute("stripe.refund", REFUND, idempotency_key="r")
            outcomes.append("ok")
        except TransientError as exc:
            outcomes.append(f"{exc.code}:{exc.retry_after}")
    assert outcomes == ["sandbox_unavailable:0.5", "sandbox_unavailable:0.5", "ok"]
    with pytest.raises(PermanentError):
        registry.execute("crm.log_note", NOTE, idempotency_key="n")
    registry.execute("crm.log_note", NOTE, idempotency_key="n")
    with pytest.raises(TransientError, match="timeout"):
        registry.execute("shopify.adjust_inventory", {"variant_id": "v1", "delta": 1,
                                                      "unit_cost": 1, "currency": "usd"},
                         idempotency_key="s")


def test_always_and_an_empty_spec() -> None:
    faults = SandboxFaults.parse("stripe.payout=permanent*always")
    for _ in range(5):
        assert faults.take("stripe.payout") is not None
    assert faults.take("stripe.refund") is None
    assert not SandboxFaults.parse("").pending and not SandboxFaults.parse("  ").pending


@pytest.mark.parametrize(("spec", "message"), [
    ("stripe.refund", r"rule 1 'stripe.refund' is not PATTERN=KIND"),
    ("stripe.refund=flaky", r"unknown kind 'flaky'; expected one of transient, permanent"),
    ("stripe.refund=transient*0", r"the count must be at least 1"),
    ("stripe.refund=transient*-1", r"is not PATTERN=KIND"),
    ("stripe.refund=transient*two", r"is not PATTERN=KIND"),
    ("stripe.refund=permanent@1", r"@RETRY_AFTER applies to transient faults only"),
    ("stripe.refund=transient,,crm.log_note=permanent", r"rule 2 is empty"),
    ("stripe.refund=transient;crm.log_note=permanent", r"rule 1 .* is not PATTERN=KIND"),
])
def test_a_bad_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        SandboxFaults.parse(spec)
    with pytest.raises(ConnectorConfigError, match=message):  # how the gateway sees it
        build_registry("sandbox", data_dir=None, faults=spec)


# ---- magic values ----------------------------------------------------------------------------

MAGIC = [
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_declined"}, PermanentError,
     "card_declined"),
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_refunded"}, PermanentError,
     "charge_already_refunded"),
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_unavailable"}, TransientError,
     "service_unavailable"),
    ("stripe.refund", {**REFUND, "charge": "ch_sandbox_timeout"}, TransientError, "timeout"),
    ("stripe.transfer", {"destination": "acct_sandbox_declined", "amount": 1, "currency": "usd"},
     PermanentError, "account_invalid"),
    ("stripe.payout", {"amount": 1, "currency": "usd", "creator_id": "cr_sandbox_declined"},
     PermanentError, "insufficient_funds"),
    ("shopify.update_price", {"product_id": "p1", "variant_id": "v_sandbox_unavailable",
                              "old_price": 1, "new_price": 2, "currency": "usd"},
     TransientError, "service_unavailable"),
    ("shopify.create_discount", {"code": "sandbox_declined", "percent_off": 5}, PermanentError,
     "unprocessable_entity"),
    ("crm.upsert_contact", {"email": "sandbox_declined@example.com", "properties": {}},
     PermanentError,
     "validation_error"),
    ("crm.delete_contact", {"contact_ids": ["c_1", "c_sandbox_unavailable"]}, TransientError,
     "service_unavailable"),
]


@pytest.mark.parametrize(("tool", "params", "error", "code"), MAGIC,
                         ids=[f"{t}-{c}" for t, _, _, c in MAGIC])
def test_magic_values_fail_the_call_and_record_nothing(
    registry: Registry, tool: str, params: dict[str, Any], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as failed:
        registry.execute(tool, params, idempotency_key="dec_magic")
    assert type(failed.value) is error and failed.value.code == code  # type: ignore[attr-defined]
    if code == "service_unavailable":
        assert failed.value.retry_after == 1.0  # type: ignore[attr-defined]
    assert registry.call_ledger.calls() == []


def test_magic_words_outside_the_id_fields_are_ordinary_text(registry: Registry) -> None:
    note = {"record_id": "c_1", "body": "the charge ch_sandbox_declined failed yesterday"}
    assert registry.execute("crm.log_note", note, idempotency_key="k").replayed is False
