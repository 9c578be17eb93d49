"""`governed` against a real gateway: the body runs only when Warden allows it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from loops import run
from gateway_server import Server

from warden_sdk import ApprovalRequired, AsyncWardenClient, Decision, Denied, Failed, WardenClient
from warden_sdk.governed import governed


def test_execute_mode_runs_the_body_after_warden_executed(client: WardenClient, gateway: Server) -> None:
    ran: list[Decision] = []

    @governed(client, "crm.log_note")
    def log_note(record_id: str, body: str, decision: Decision) -> str:
        ran.append(decision)
        assert decision.execution is not None
        return f"note {decision.execution.external_id} logged on {record_id}"

    assert list(inspect.signature(log_note).parameters) == ["record_id", "body"]
    answer = log_note("rec_9", "spoke to the customer")
    [decision] = ran
    assert decision.status == "executed" and answer.endswith("logged on rec_9")
    assert decision.decision_id is not None and gateway.calls.executed(decision.decision_id) == 1


def test_execute_mode_refusals_never_run_the_body(client: WardenClient) -> None:
    ran: list[Any] = []

    @governed(client, "stripe.refund", params_from=lambda charge, amount: {"charge": charge, "amount": amount,
                                                                          "currency": "usd"},
              evidence_from=lambda charge, amount: {"reconciled": False, "order_total": amount},
              claims_from=lambda charge, amount: {"refund_reconciled": "PASS"})
    def refund(charge: str, amount: int) -> None:
        ran.append(charge)

    with pytest.raises(Denied, match="invariant does not hold"):
        refund("ch_g", 1200)

    @governed(client, "crm.upsert_contact")
    def upsert(email: str, properties: dict[str, str]) -> None:
        ran.append(email)

    with pytest.raises(Failed):
        upsert("bo@example.com", {})
    assert ran == []


def test_gate_mode_runs_the_body_only_when_a_dry_run_allows(client: WardenClient, gateway: Server) -> None:
    ran: list[int] = []
    calls_before = gateway.calls.total()

    @governed(client, "stripe.refund", mode="gate",
              params_from=lambda amount: {"charge": "ch_gate", "amount": amount, "currency": "usd"},
              evidence_from=lambda amount: {"reconciled": True, "order_total": amount})
    def refund_elsewhere(amount: int) -> int:
        ran.append(amount)
        return amount

    assert refund_elsewhere(1500) == 1500
    with pytest.raises(ApprovalRequired, match="pending_approval"):
        refund_elsewhere(90000)
    assert ran == [1500] and gateway.calls.total() == calls_before


def test_an_async_function_is_governed_by_the_async_client(gateway: Server) -> None:
    async def scenario() -> str:
        async with AsyncWardenClient(gateway.base_url, gateway.tokens["a2"], "a2") as sdk:
            @governed(sdk, "crm.log_note")
            async def log_note(record_id: str, body: str) -> str:
                return f"logged {record_id}"

            return await log_note("rec_async", "hello")

    assert run(scenario()) == "logged rec_async"


def test_an_a0_agent_drafts_and_the_body_does_not_run(gateway: Server) -> None:
    with WardenClient(gateway.base_url, gateway.tokens["a0"], "a0") as sdk:
        @governed(sdk, "crm.log_note")
        def log_note(record_id: str, body: str) -> str:
            raise AssertionError("must not run")

        with pytest.raises(ApprovalRequired, match="drafted"):
            log_note("rec_a0", "draft only")


def test_a_client_of_the_wrong_kind_or_a_bad_mode_is_refused(client: WardenClient) -> None:
    async def coroutine() -> None:
        return None

    with pytest.raises(TypeError, match="AsyncWardenClient"):
        governed(client, "crm.log_note")(coroutine)
    with pytest.raises(ValueError, match="mode"):
        governed(client, "crm.log_note", mode="maybe")  # type: ignore[arg-type]


def test_the_public_surface() -> None:
    import warden_sdk

    for name in warden_sdk.__all__:
        assert hasattr(warden_sdk, name), name
    assert {"WardenClient", "AsyncWardenClient", "governed", "verify_receipt", "verify_webhook",
            "Denied", "Rejected", "Expired", "Failed"} <= set(warden_sdk.__all__)
