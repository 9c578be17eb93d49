"""Asking OPA over its REST data API (`gateway.delegation.opa`), against the fake OPA server of
tests/fakes/opa.py, which evaluates real Rego: every way a query can end, each with the answer
the engine then reads, the budget held, and only what a statement reads sent."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dsl import compile_sources
from fakes.opa import FakeOpa
from gateway.delegation.opa import OpaDelegate
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated, read_answer
from gateway.engine.models import Packet
from own_thread import on_own_thread

BUDGET = 0.3
POLICIES = """
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  opa finance "warden/refunds/decision" reads params.amount, evidence.risk_score
}
policy plain {
  applies to tool "stripe.refund"
  opa "warden/refunds/allow"
}
"""
ENGINE = Decider(compile_sources({"r.policy": POLICIES}))
DELEGATIONS = ENGINE.delegations_for("stripe.refund")
DECISION, ALLOW = (d.path for d in DELEGATIONS)
AGENT = Agent(name="bot", autonomy="A2", owner="owner@test.local")


def refund(amount: int, risk_score: int = 10) -> Packet:
    return Packet.model_validate({
        "packet_id": "p-1", "agent": "bot",
        "action": {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": amount, "currency": "usd"}},
        "evidence": {"reconciled": True, "risk_score": risk_score, "customer_notes": "private"},
        "context": {"customer_email": "someone@example.com"},
    })


@pytest.fixture
def heard() -> list[str]:
    return []


@pytest.fixture
def delegate(opa: FakeOpa, heard: list[str]) -> Iterator[OpaDelegate]:
    opa.clear_faults()
    client = OpaDelegate(opa.base_url, timeout=BUDGET, on_answer=lambda outcome, _s: heard.append(outcome))
    try:
        yield client
    finally:
        client.close()


def ask(delegate: OpaDelegate, packet: Packet) -> dict[str, Delegated]:
    return delegate.ask(DELEGATIONS, packet, AGENT)


def test_an_allow_comes_back_as_opa_gave_it(delegate: OpaDelegate, heard: list[str]) -> None:
    answers = ask(delegate, refund(1000))
    assert answers == {DECISION: Delegated({"allow": True}), ALLOW: Delegated(True)}
    assert heard == ["allow", "allow"]
    assert ENGINE.decide(refund(1000), AGENT, delegated=answers).status == "executed"


def test_a_deny_with_reasons(delegate: OpaDelegate, heard: list[str]) -> None:
    answers = ask(delegate, refund(300000, risk_score=90))
    assert answers[DECISION].answer == {"allow": False, "reasons": [
        "refunds over $2,000 are signed off by finance",
        "the customer's risk score is too high for an automatic refund"]}
    # the boolean rule has no value when it does not allow: undefined, which denies too
    assert answers[ALLOW] == Delegated.failed("undefined", ALLOW)
    assert heard == ["deny", "undefined"]
    decision = ENGINE.decide(refund(300000, risk_score=90), AGENT, delegated=answers)
    assert decision.status == "denied"
    assert any("signed off by finance" in r.message for r in decision.violations)


def test_a_risk_escalation(delegate: OpaDelegate) -> None:
    answers = ask(delegate, refund(40000))
    assert answers[DECISION].answer == {"allow": True, "risk": "L2"}
    assert ENGINE.decide(refund(40000), AGENT, delegated=answers).status == "pending_approval"


def test_only_what_the_statement_reads_is_sent(opa: FakeOpa, delegate: OpaDelegate) -> None:
    ask(delegate, refund(1234))  # an amount of its own: a query another test gave up on may arrive late

    def sent(path: str) -> list[Any]:
        return [i for i in opa.inputs(path) if i["params"]["amount"] == 1234]

    assert sent(DECISION) == [{"tool": "stripe.refund", "params": {"amount": 1234}, "evidence": {"risk_score": 10}}]
    assert sent(ALLOW) == [
        {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": 1234, "currency": "usd"},
         "agent": {"name": "bot", "autonomy": "A2", "owner": "owner@test.local"}}]
    sent = repr(opa.received)
    assert "customer_notes" not in sent and "someone@example.com" not in sent and "reconciled" not in sent


def test_a_slow_opa_is_a_timeout_within_the_budget(opa: FakeOpa, delegate: OpaDelegate, heard: list[str]) -> None:
    opa.fail("POST /v1/data/*", kind="hang_before", seconds=2, times=2)
    started = time.monotonic()
    answers = ask(delegate, refund(1000))
    assert time.monotonic() - started < BUDGET + 0.2
    assert {a.failure for a in answers.values()} == {"timeout"}
    assert heard == ["timeout", "timeout"]
    assert read_answer(answers[DECISION]).verdict == "ERROR"


def test_a_500_is_an_error_with_opas_message(opa: FakeOpa, delegate: OpaDelegate, heard: list[str]) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", status=500,
             body={"code": "internal_error", "message": "1 error occurred: eval_conflict_error"})
    answers = ask(delegate, refund(1000))
    assert answers[DECISION] == Delegated.failed("status", "500 internal_error: 1 error occurred: eval_conflict_error")
    assert heard == ["status", "allow"]


def test_a_400_names_opas_code(opa: FakeOpa, delegate: OpaDelegate) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", status=400,
             body={"code": "invalid_parameter", "message": "body contains malformed input document"})
    assert ask(delegate, refund(1000))[DECISION].detail == (
        "400 invalid_parameter: body contains malformed input document")


@pytest.mark.parametrize("body, failure", [
    (b"<html>gateway</html>", "malformed"),
    ([1, 2], "malformed"),
    ({"decision": True}, "undefined"),
])
def test_a_body_that_is_not_an_answer(opa: FakeOpa, delegate: OpaDelegate, body: Any, failure: str) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", status=200, body=body)
    assert ask(delegate, refund(1000))[DECISION].failure == failure


def test_an_answer_of_the_wrong_shape_is_recorded_as_it_came(opa: FakeOpa, delegate: OpaDelegate,
                                                             heard: list[str]) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", status=200, body={"result": "yes"})
    answers = ask(delegate, refund(1000))
    assert answers[DECISION] == Delegated("yes")
    assert heard[0] == "wrong_shape"
    assert ENGINE.decide(refund(1000), AGENT, delegated=answers).status == "denied"


@pytest.mark.parametrize("result", [{"allow": True, "n": 2**60}, {"allow": False, "reasons": ["x" * 100] * 200}])
def test_an_answer_the_log_cannot_keep_as_it_came_is_malformed(opa: FakeOpa, delegate: OpaDelegate,
                                                               result: Any) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", status=200, body={"result": result})
    answer = ask(delegate, refund(1000))[DECISION]
    assert answer.failure == "malformed" and answer.answer is None


def test_a_dropped_connection_is_unreachable(opa: FakeOpa, delegate: OpaDelegate) -> None:
    opa.fail(f"POST /v1/data/{DECISION}", kind="drop_before")
    assert ask(delegate, refund(1000))[DECISION].failure == "unreachable"


def test_opa_down_is_unreachable(heard: list[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        down = OpaDelegate(f"http://127.0.0.1:{port}", timeout=BUDGET,
                           on_answer=lambda outcome, _s: heard.append(outcome))
        try:
            answers = ask(down, refund(1000))
            assert not down.healthy()
        finally:
            down.close()
    assert {a.failure for a in answers.values()} == {"unreachable"}
    assert heard == ["unreachable", "unreachable"]


def test_no_opa_configured_denies_without_a_call(heard: list[str]) -> None:
    none = OpaDelegate("", on_answer=lambda outcome, _s: heard.append(outcome))
    answers = ask(none, refund(1000))
    assert {a.failure for a in answers.values()} == {"not_configured"}
    assert heard == ["not_configured", "not_configured"] and not none.configured and not none.healthy()


def test_health(opa: FakeOpa, delegate: OpaDelegate) -> None:
    assert delegate.healthy()
    opa.fail("GET /health", kind="hang_before", seconds=2)
    assert not delegate.healthy()


def test_the_async_path_holds_the_same_budget(opa: FakeOpa, delegate: OpaDelegate) -> None:
    async def both() -> tuple[dict[str, Delegated], dict[str, Delegated], float]:
        fine = await delegate.ask_async(DELEGATIONS, refund(1000), AGENT)
        opa.fail(f"POST /v1/data/{ALLOW}", kind="hang_before", seconds=2)
        started = time.monotonic()
        slow = await delegate.ask_async(DELEGATIONS, refund(1000), AGENT)
        return fine, slow, time.monotonic() - started

    fine, slow, took = on_own_thread(lambda: asyncio.run(both()))
    assert fine == {DECISION: Delegated({"allow": True}), ALLOW: Delegated(True)}
    assert slow[DECISION] == Delegated({"allow": True}) and slow[ALLOW].failure == "timeout"
    assert took < BUDGET + 0.2


def test_a_url_with_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="opa_url"):
        OpaDelegate("http://127.0.0.1:8181/v1/data")


def test_the_setting_takes_only_a_server_address() -> None:
    from gateway.config import Settings
    from gateway.config.settings import ConfigError

    assert Settings(opa_url="http://127.0.0.1:8181").opa_url == "http://127.0.0.1:8181"
    assert Settings().opa_url == ""
    for wrong in ("ftp://opa:8181", "http://opa:8181/v1/data", "opa:8181"):
        with pytest.raises(ConfigError, match="opa_url"):
            Settings(opa_url=wrong)
