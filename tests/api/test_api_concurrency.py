"""Races through real HTTP: the same packet from many threads at once, one packet_id with two
bodies, an approval against a rejection, two approvals at once. Whatever the interleaving, there
is one decision per packet_id, one outcome per decision and one execution per allowed action."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from gateway_server import Server, audit, module_server, refund

THREADS = 16
ROUNDS = 10
SMALL, LARGE = 2_500, 60_000  # cents: an L1 refund, an L2 one (one approver)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway per database; each test races on packets and decisions of its own."""
    yield from module_server(request, tmp_path_factory, "concurrency")


# ---------------------------------------------------------------------------------- helpers


def at_once(server: Server, calls: list[tuple[str, Callable[[httpx.Client], httpx.Response]]]) -> list[httpx.Response]:
    """Run each (identity, call) in its own thread with its own connection, released together."""
    clients = [httpx.Client(base_url=server.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {server.tokens[who]}"}) for who, _ in calls]
    start = threading.Barrier(len(calls))
    answers: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            start.wait(timeout=30)
            answers[index] = calls[index][1](clients[index])
        except BaseException as exc:  # reported below, in the test's thread
            answers[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        for client in clients:
            client.close()
    for answer in answers:
        if not isinstance(answer, httpx.Response):
            raise AssertionError(f"a concurrent request did not answer: {answer!r}")
    return answers  # type: ignore[return-value]


def executions(server: Server) -> dict[str, int]:
    return server.calls.executions_by_key()


def settled(server: Server, decision_id: str) -> dict[str, Any]:
    """The decision once it is no longer executing (the outbox may still be running it)."""
    client = server.client("approver")
    decision = client.get(f"/v1/actions/{decision_id}").json()
    for _ in range(15):
        if decision["status"] != "executing":
            break
        decision = client.get(f"/v1/actions/{decision_id}", params={"wait": 1}).json()
    return dict(decision)


def post(path: str, body: dict[str, Any] | None = None) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(path, json=body)


# ---------------------------------------------------------------------------------- packets


def test_same_packet_from_sixteen_threads_is_decided_and_executed_once(gateway: Server) -> None:
    sent = refund("a2", SMALL)
    answers = at_once(gateway, [("a2", post("/v1/actions", sent))] * THREADS)

    assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers]
    ids = {a.json()["decision_id"] for a in answers}
    assert len(ids) == 1
    [decision_id] = ids
    assert settled(gateway, decision_id)["status"] == "executed"
    assert executions(gateway).get(decision_id) == 1
    if gateway.fakes is None:
        assert gateway.runtime.registry.call_ledger.count(decision_id) == 1  # no replay either
    else:  # one request reached the provider with this key: no replay either
        assert len([s for s in gateway.fakes.stripe.requests("POST /v1/refunds")
                    if s.headers.get("idempotency-key") == decision_id]) == 1
    recorded = [e for e in audit(gateway, "decision") if e["data"]["packet"]["packet_id"] == sent["packet_id"]]
    assert [e["subject"] for e in recorded] == [decision_id]
    assert len([e for e in audit(gateway, "execution") if e["subject"] == decision_id]) == 1


def test_one_packet_id_with_two_bodies_gets_one_decision(gateway: Server) -> None:
    first = refund("a2", SMALL)
    second = refund("a2", SMALL + 100, packet_id=first["packet_id"])
    bodies = [first if i % 2 else second for i in range(THREADS)]
    answers = at_once(gateway, [("a2", post("/v1/actions", body)) for body in bodies])

    decided = [(i, a) for i, a in enumerate(answers) if a.status_code in (200, 202)]
    refused = [(i, a) for i, a in enumerate(answers) if a.status_code == 409]
    assert len(decided) + len(refused) == THREADS, [a.text for a in answers]
    assert {a.json()["code"] for _, a in refused} <= {"packet_id_reused"}
    assert len({a.json()["decision_id"] for _, a in decided}) == 1
    recorded = [e for e in audit(gateway, "decision") if e["data"]["packet"]["packet_id"] == first["packet_id"]]
    assert len(recorded) == 1
    winner = recorded[0]["data"]["packet"]["action"]["params"]["amount"]
    # every thread that sent the winning body got the decision; every other one got the 409
    assert {bodies[i]["action"]["params"]["amount"] for i, _ in decided} == {winner}
    assert {bodies[i]["action"]["params"]["amount"] for i, _ in refused} <= {SMALL, SMALL + 100} - {winner}
    decision_id = decided[0][1].json()["decision_id"]
    assert settled(gateway, decision_id)["status"] == "executed"
    assert executions(gateway).get(decision_id) == 1


# ---------------------------------------------------------------------------------- approvals


def pending_decisions(server: Server, count: int) -> list[str]:
    answers = at_once(server, [("a2", post("/v1/actions", refund("a2", LARGE, packet_id=f"race-{uuid4()}")))
                               for _ in range(count)])
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    return [a.json()["decision_id"] for a in answers]


def test_approve_and_reject_at_once_one_wins(gateway: Server) -> None:
    ids = pending_decisions(gateway, ROUNDS)
    calls = []
    for decision_id in ids:  # every decision raced by both people, all decisions at once
        calls += [("approver", post(f"/v1/approvals/{decision_id}/approve", {"comment": "yes"})),
                  ("approver2", post(f"/v1/approvals/{decision_id}/reject", {"reason": "no"}))]
    answers = at_once(gateway, calls)

    approvals = [e["subject"] for e in audit(gateway, "approval")]
    rejections = [e["subject"] for e in audit(gateway, "rejection")]
    counted = executions(gateway)
    for n, decision_id in enumerate(ids):
        approve, reject = answers[2 * n], answers[2 * n + 1]
        won = [r for r in (approve, reject) if r.status_code in (200, 202)]
        lost = [r for r in (approve, reject) if r.status_code == 409]
        assert (len(won), len(lost)) == (1, 1), (approve.text, reject.text)
        assert lost[0].json()["code"] == "not_pending"
        final = settled(gateway, decision_id)["status"]
        if won[0] is approve:
            assert final == "executed"
            assert (approvals.count(decision_id), rejections.count(decision_id)) == (1, 0)
            assert executions(gateway).get(decision_id) == 1
        else:
            assert final == "rejected"
            assert (approvals.count(decision_id), rejections.count(decision_id)) == (0, 1)
            assert decision_id not in counted


def test_two_approvers_at_once_execute_once(gateway: Server) -> None:
    ids = pending_decisions(gateway, ROUNDS // 2)
    calls = []
    for decision_id in ids:
        calls += [("approver", post(f"/v1/approvals/{decision_id}/approve")),
                  ("approver2", post(f"/v1/approvals/{decision_id}/approve"))]
    answers = at_once(gateway, calls)

    for n, decision_id in enumerate(ids):
        pair = answers[2 * n: 2 * n + 2]
        assert sorted(a.status_code for a in pair) in ([200, 409], [202, 409]), [a.text for a in pair]
        assert [a.json()["code"] for a in pair if a.status_code == 409] == ["not_pending"]
        assert settled(gateway, decision_id)["status"] == "executed"
    counted = executions(gateway)
    assert [counted.get(d) for d in ids] == [1] * len(ids)
    approvals = [e["subject"] for e in audit(gateway, "approval")]
    assert [approvals.count(d) for d in ids] == [1] * len(ids)


# ---------------------------------------------------------------------------------- kill switch

def test_release_racing_rejections_answers_every_request(gateway: Server) -> None:
    """Every decision-changing write takes the log's head lock first: a release settling approved
    decisions and rejections of the same decisions queue instead of deadlocking (PostgreSQL)."""
    ids = pending_decisions(gateway, 2 * ROUNDS)
    founder = gateway.client("founder")
    assert founder.post("/v1/kill-switch", json={"engaged": True, "reason": "drill"}).status_code == 200
    try:
        for decision_id in ids:  # fully approved, held by the switch
            assert gateway.client("approver").post(f"/v1/approvals/{decision_id}/approve").status_code == 202
        answers = at_once(gateway, [("founder", post("/v1/kill-switch", {"engaged": False, "reason": "drill over"}))]
                          + [("approver2", post(f"/v1/approvals/{d}/reject", {"reason": "no"})) for d in ids])
        release, rejections = answers[0], answers[1:]
        assert release.status_code == 200, release.text
        assert [r.status_code for r in rejections if r.status_code not in (200, 409)] == [], \
            [r.text for r in rejections if r.status_code not in (200, 409)]
        counted = executions(gateway)
        for decision_id, rejection in zip(ids, rejections, strict=True):
            final = settled(gateway, decision_id)["status"]
            if rejection.status_code == 200:
                assert (final, counted.get(decision_id)) == ("rejected", None)
            else:
                assert rejection.json()["code"] == "not_pending"
                assert (final, executions(gateway).get(decision_id)) == ("executed", 1)
        assert gateway.client("viewer").get("/v1/kill-switch").json()["engaged"] is False
    finally:
        for _ in range(5):  # leave the shared gateway released, whatever happened above
            if founder.post("/v1/kill-switch", json={"engaged": False, "reason": "cleanup"}).status_code == 200:
                break
