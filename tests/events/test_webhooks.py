"""Webhooks: signed deliveries a receiver verifies with `standardwebhooks`; a receiver that is
down then up gets every event, in order per decision; an endpoint failing past the cap is
disabled with an incident; the API shows the attempts. A real gateway on loopback, SQLite and
PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.events.webhooks import add_endpoint
from gateway_server import Server, eventually, note, server_config, start_server
from webhook_receiver import Receiver


@pytest.fixture
def gateway(db_url: str, tmp_path: Path) -> Iterator[Server]:
    server, stop = start_server(server_config(db_url, tmp_path, webhook_backoff_base_seconds=0.05,
                                              webhook_backoff_max_seconds=0.4, webhook_max_attempts=3))
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.stop()


def register(server: Server, url: str, *kinds: str) -> tuple[str, str]:
    runtime = server.runtime
    endpoint, secret = runtime.writer.run(lambda conn: add_endpoint(conn, runtime.ledger, url, list(kinds),
                                                                    "founder@test.local", time.time()))
    return endpoint.id, secret


def settled_notes(server: Server, count: int, agent: str = "a2") -> list[str]:
    ids = []
    for _ in range(count):
        response = server.client(agent).post("/v1/actions", json=note(agent))
        assert response.status_code == 200, response.text
        ids.append(response.json()["decision_id"])
    for decision_id in ids:
        eventually(lambda: server.client(agent).get(f"/v1/actions/{decision_id}").json()["status"] == "executed",
                   "the note executed")
    return ids


def delivered(server: Server, endpoint_id: str, count: int) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are recorded as delivered (and no more)."""
    def check() -> list[dict[str, Any]] | None:
        listed = server.client("founder").get(f"/v1/webhooks/{endpoint_id}/deliveries").json()
        return listed if [d["state"] for d in listed] == ["delivered"] * count else None

    found: list[dict[str, Any]] = eventually(check, f"{count} deliveries recorded")
    return found


def test_deliveries_are_signed_and_verify(gateway: Server, receiver: Receiver) -> None:
    receiver.start()
    endpoint_id, receiver.secret = register(gateway, receiver.url, "decision", "execution")
    assert receiver.secret.startswith("whsec_")
    ids = settled_notes(gateway, 3)
    eventually(lambda: len(receiver.unique()) >= 6, "six deliveries")
    assert receiver.rejected == 0
    got = receiver.unique()
    assert [d["body"]["type"] for d in got] == ["decision", "execution"] * 3
    assert [d["body"]["decision_id"] for d in got] == [i for i in ids for _ in range(2)]
    for delivery in got:  # the id is the event's; the body names the entry's seq and leaf hash
        body = delivery["body"]
        assert delivery["id"] == body["id"] == f"evt_{body['seq']}" and len(body["leaf_hash"]) == 64
        assert delivery["headers"]["content-type"] == "application/json"
    # the seq and leaf hash are the audit entry's, as an auditor reads it
    seq = got[0]["body"]["seq"]
    entry = gateway.client("auditor").get("/v1/audit/entries", params={"from": seq, "to": seq + 1}).json()["entries"][0]
    assert (entry["seq"], entry["leaf_hash"], entry["entry"]["subject"]) == (seq, got[0]["body"]["leaf_hash"], ids[0])

    hook, first = Webhook(receiver.secret), got[0]
    assert hook.verify(first["raw"], first["headers"])["id"] == first["id"]
    tampered = {**first["headers"], "webhook-timestamp": str(int(first["headers"]["webhook-timestamp"]) - 60)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        hook.verify(first["raw"], tampered)  # a signature is for its own timestamp
    old = datetime.now(UTC) - timedelta(minutes=10)
    replayed = {**first["headers"], "webhook-timestamp": str(int(old.timestamp())),
                "webhook-signature": hook.sign(first["id"], old, first["raw"])}
    with pytest.raises(WebhookVerificationError, match="too old"):
        hook.verify(first["raw"], replayed)  # a replay of an old delivery, even correctly signed
    with pytest.raises(WebhookVerificationError):
        Webhook(register(gateway, receiver.url, "decision")[1]).verify(first["raw"], first["headers"])

    listed = delivered(gateway, endpoint_id, 6)
    assert all(d["attempts"][-1]["status_code"] == 200 for d in listed)
    metrics = gateway.client().get("/metrics").text
    assert 'warden_webhook_deliveries_total{outcome="delivered"} 6.0' in metrics
    endpoints = gateway.client("founder").get("/v1/webhooks").json()
    assert endpoint_id in {e["id"] for e in endpoints} and "secret" not in str(endpoints)
    assert receiver.secret not in str(endpoints)


def test_a_receiver_down_then_up_gets_every_event_in_order(gateway: Server, receiver: Receiver) -> None:
    endpoint_id, receiver.secret = register(gateway, receiver.url, "decision", "execution")
    gateway.runtime.webhooks.sender.max_attempts = 1000  # down for a while: never disabled here
    ids = settled_notes(gateway, 5)

    def failed_attempts() -> int:
        listed = gateway.client("founder").get(f"/v1/webhooks/{endpoint_id}/deliveries").json()
        return sum(1 for d in listed for a in d["attempts"] if a["status_code"] is None)

    eventually(lambda: failed_attempts() >= 2, "attempts at a receiver that is down")
    receiver.start()
    eventually(lambda: len(receiver.unique()) >= 10, "every event, once the receiver is up", timeout=30)
    got = receiver.unique()
    assert len(got) == 10 and receiver.rejected == 0
    for decision_id in ids:  # in order per decision: the decision, then its execution
        assert [d["body"]["type"] for d in got if d["body"]["decision_id"] == decision_id] == ["decision", "execution"]
    assert [d["body"]["seq"] for d in got] == sorted(d["body"]["seq"] for d in got)
    listed = delivered(gateway, endpoint_id, 10)
    assert listed[0]["attempts"][0]["error"] and listed[0]["attempts"][-1]["status_code"] == 200


def test_an_endpoint_failing_past_the_cap_is_disabled_with_an_incident(gateway: Server, receiver: Receiver) -> None:
    receiver.status = 500
    receiver.start()
    endpoint_id, receiver.secret = register(gateway, receiver.url, "decision")
    settled_notes(gateway, 1)

    def state() -> Any:
        endpoints = {e["id"]: e for e in gateway.client("founder").get("/v1/webhooks").json()}
        return endpoints[endpoint_id]["state"] == "disabled" and endpoints[endpoint_id]

    disabled = eventually(state, "the endpoint disabled")
    assert "failed 3 times" in disabled["disabled_reason"] and disabled["pending"] == 1
    incidents = gateway.client("auditor").get("/v1/incidents", params={"kind": "webhook_disabled"}).json()
    assert len(incidents) == 1 and endpoint_id in incidents[0]["summary"]
    listed = gateway.client("founder").get(f"/v1/webhooks/{endpoint_id}/deliveries").json()
    assert [a["status_code"] for a in listed[0]["attempts"]] == [500, 500, 500]
    time.sleep(0.5)  # disabled: nothing more is sent
    assert len(gateway.client("founder").get(f"/v1/webhooks/{endpoint_id}/deliveries").json()[0]["attempts"]) == 3


def test_who_may_read_webhooks(gateway: Server) -> None:
    assert gateway.client("viewer").get("/v1/webhooks").json()["code"] == "forbidden_role"
    assert gateway.client("a2").get("/v1/webhooks").status_code == 403
    missing = gateway.client("founder").get("/v1/webhooks/whk_nope/deliveries")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
