"""Retries keep the packet_id: a dropped answer or a 503 is tried again with the same bytes, and
the gateway answers the retry with the decision it stored, so nothing is decided or executed twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from loops import run
from faulty_proxy import FaultyProxy, Mode
from gateway_server import Server, footprint

from warden_sdk import AsyncWardenClient, ConnectionFailed, Retries, Unavailable, WardenClient

NOTE = {"record_id": "rec_retry", "body": "called back"}
FAST = Retries(attempts=4, backoff=0.01, max_backoff=0.05)


@pytest.fixture
def proxies() -> Iterator[list[FaultyProxy]]:
    started: list[FaultyProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def proxy(gateway: Server, proxies: list[FaultyProxy], mode: Mode, times: int = 1) -> FaultyProxy:
    started = FaultyProxy(gateway.port, mode, times).start()
    proxies.append(started)
    return started


@pytest.mark.parametrize("mode", ["drop", "unavailable"])
def test_a_retried_submit_is_one_decision_executed_once(gateway: Server, proxies: list[FaultyProxy], mode: Mode) -> None:
    front = proxy(gateway, proxies, mode)
    rows_before = footprint(gateway)[0]
    with WardenClient(front.base_url, gateway.tokens["a2"], "a2", retries=FAST) as sdk:
        decision = sdk.act("crm.log_note", NOTE)
    assert front.faulted == 1 and front.packet_ids == [decision.packet_id]
    assert decision.status == "executed" and decision.decision_id is not None
    assert footprint(gateway)[0] == rows_before + 1
    assert gateway.calls.executed(decision.decision_id) == 1


def test_the_async_client_retries_with_the_same_packet_id(gateway: Server, proxies: list[FaultyProxy]) -> None:
    front = proxy(gateway, proxies, "drop")
    rows_before = footprint(gateway)[0]

    async def act() -> str:
        async with AsyncWardenClient(front.base_url, gateway.tokens["a2"], "a2", retries=FAST) as sdk:
            decision = await sdk.act("crm.log_note", NOTE)
            assert decision.status == "executed" and decision.decision_id is not None
            return decision.decision_id

    decision_id = run(act())
    assert front.faulted == 1 and len(front.packet_ids) == 1
    assert footprint(gateway)[0] == rows_before + 1
    assert gateway.calls.executed(decision_id) == 1


def test_retries_run_out_into_typed_errors(gateway: Server, proxies: list[FaultyProxy]) -> None:
    dropping = proxy(gateway, proxies, "drop", times=5)
    with WardenClient(dropping.base_url, gateway.tokens["a2"], "a2", retries=Retries(2, 0.01, 0.01)) as sdk, \
            pytest.raises(ConnectionFailed, match="after 2 attempt"):
        sdk.submit("crm.log_note", NOTE)
    assert len(set(dropping.packet_ids)) == 1 and len(dropping.packet_ids) == 2
    unavailable = proxy(gateway, proxies, "unavailable", times=5)
    with WardenClient(unavailable.base_url, gateway.tokens["a2"], "a2", retries=Retries(3, 0.01, 0.01)) as sdk, \
            pytest.raises(Unavailable) as raised:
        sdk.submit("crm.log_note", NOTE)
    assert (raised.value.status, raised.value.code) == (503, "database_unavailable")
    assert unavailable.faulted == 3


def test_the_async_client_long_polls_through_an_approval(gateway: Server) -> None:
    async def scenario() -> None:
        async with AsyncWardenClient(gateway.base_url, gateway.tokens["a2"], "a2") as sdk:
            pending = await sdk.submit("stripe.refund", {"charge": "ch_a", "amount": 65000, "currency": "usd"},
                                       evidence={"reconciled": True, "order_total": 65000},
                                       claims=[{"id": "refund_reconciled", "status": "PASS"}])
            assert pending.status == "pending_approval" and pending.decision_id is not None
            decision_id = pending.decision_id
            waiting = asyncio.create_task(sdk.wait(decision_id, timeout=30))
            await asyncio.sleep(0.2)
            answer = await asyncio.to_thread(
                gateway.client("approver").post, f"/v1/approvals/{decision_id}/approve", json={})
            assert answer.status_code in (200, 202), answer.text
            final = await waiting
            assert final.status == "executed"
            dry = await sdk.evaluate("crm.log_note", NOTE)
            assert dry.status == "allowed"

    run(scenario())
