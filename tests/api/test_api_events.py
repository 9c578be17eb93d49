"""`GET /v1/events`: server-sent events filtered by kind and by role, resumed from Last-Event-ID."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from event_stream import EventReader
from gateway.store.records import record_incident
from gateway_server import Server, eventually, note


def _settled_note(server: Server, agent: str) -> str:
    response = server.client(agent).post("/v1/actions", json=note(agent))
    assert response.status_code == 200, response.text
    decision_id = str(response.json()["decision_id"])
    eventually(lambda: server.client(agent).get(f"/v1/actions/{decision_id}").json()["status"] == "executed",
               "the note executed")
    return decision_id


def _incident(server: Server, decision_id: str, agent: str) -> None:
    runtime = server.runtime
    runtime.writer.run(lambda conn: record_incident(conn, runtime.ledger, kind="connector_failure",
                                                    summary="the CRM refused", detail={}, now=time.time(),
                                                    agent=agent, decision_id=decision_id))


def _read_all(server: Server, who: str, **params: Any) -> list[dict[str, Any]]:
    """Every event the log holds for `who`, read from the start, once the stream is quiet."""
    reader = EventReader(server.base_url, server.tokens[who], params={"after": -1, **params})
    try:
        seen = -1
        while True:  # until nothing more arrives for a while
            time.sleep(0.4)
            if len(reader.events) == seen:
                return list(reader.events)
            seen = len(reader.events)
    finally:
        reader.close()


def test_events_are_filtered_by_role_and_kind(warden_server: Server) -> None:
    mine = _settled_note(warden_server, "a2")
    theirs = _settled_note(warden_server, "a3")
    _incident(warden_server, mine, "a2")
    assert warden_server.client("founder").post("/v1/kill-switch", json={"engaged": True, "reason": "drill"}).status_code == 200

    founder = _read_all(warden_server, "founder")
    kinds = [e["event"] for e in founder]
    assert {"decision", "execution", "incident", "kill_switch", "policy_activated"} <= set(kinds)
    assert [int(e["id"]) for e in founder] == sorted(int(e["id"]) for e in founder)
    for event in founder:  # the id is the entry's seq; the leaf hash is the entry's
        assert event["data"]["seq"] == int(event["id"]) and event["data"]["id"] == f"evt_{event['id']}"
        assert len(event["data"]["leaf_hash"]) == 64
    executed = [e["data"] for e in founder if e["event"] == "execution" and e["data"]["decision_id"] == mine]
    assert executed and executed[-1]["data"]["outcome"] == "succeeded" and executed[-1]["agent"] == "a2"
    decided = next(e["data"] for e in founder if e["event"] == "decision" and e["data"]["decision_id"] == mine)
    assert decided["data"]["tool"] == "crm.log_note" and "params" not in str(decided["data"])

    agent = _read_all(warden_server, "a2")
    assert agent and {e["data"]["decision_id"] for e in agent} == {mine}
    assert {e["event"] for e in agent} == {"decision", "execution"}  # no incident, kill switch or policy
    assert theirs in {e["data"]["decision_id"] for e in _read_all(warden_server, "a3")}

    viewer = _read_all(warden_server, "viewer")
    assert "incident" not in {e["event"] for e in viewer} and "kill_switch" in {e["event"] for e in viewer}
    assert "incident" in {e["event"] for e in _read_all(warden_server, "auditor")}

    only = _read_all(warden_server, "founder", kinds="incident,kill_switch")
    assert [e["event"] for e in only] == ["incident", "kill_switch"]


def test_resume_from_last_event_id_then_live(warden_server: Server) -> None:
    first = _settled_note(warden_server, "a2")
    events = _read_all(warden_server, "a2")
    last = events[-1]["id"]
    assert events[-1]["data"]["decision_id"] == first
    reader = EventReader(warden_server.base_url, warden_server.tokens["a2"], headers={"Last-Event-ID": last})
    try:
        time.sleep(0.3)
        assert reader.events == []  # nothing after the last one received
        second = _settled_note(warden_server, "a2")  # live
        got = reader.wait_for(2)
        assert [e["event"] for e in got[:2]] == ["decision", "execution"]
        assert {e["data"]["decision_id"] for e in got} == {second}
    finally:
        reader.close()
    # a reconnect from the first event gets everything after it, in order
    replay = _read_all(warden_server, "a2", after=int(events[0]["id"]))
    assert [e["id"] for e in replay] == [e["id"] for e in events[1:]] + [e["id"] for e in got]


def test_bad_filters_are_refused(warden_server: Server) -> None:
    client = warden_server.client("founder")
    response = client.get("/v1/events", params={"kinds": "decision,nonsense"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert "nonsense" in response.json()["detail"]
    response = client.get("/v1/events", headers={"Last-Event-ID": "twelve"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    response = client.get("/v1/events", params={"after": 10**9})
    assert response.status_code == 422
    assert httpx.get(f"{warden_server.base_url}/v1/events").status_code == 401


@pytest.mark.parametrize("who", ["viewer"])
def test_a_slow_reader_catches_up_from_the_log(warden_server: Server, who: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subscriber whose queue overflows reads what it missed from the log: nothing is lost."""
    import gateway.events.hub as hub

    monkeypatch.setattr(hub, "QUEUE", 1)
    reader = EventReader(warden_server.base_url, warden_server.tokens[who], params={"kinds": "decision"})
    try:
        ids = [warden_server.client("a2").post("/v1/actions", json=note("a2")).json()["decision_id"]
               for _ in range(12)]
        got = reader.wait_for(12)
        assert [e["data"]["decision_id"] for e in got] == ids
    finally:
        reader.close()


def test_a_revoked_caller_s_stream_ends(warden_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.http.routes.events as route
    from gateway.store.identities import revoke_agent

    monkeypatch.setattr(route, "RECHECK", 0.3)
    reader = EventReader(warden_server.base_url, warden_server.tokens["a4"])
    try:
        runtime = warden_server.runtime
        runtime.writer.run(lambda conn: revoke_agent(conn, runtime.ledger, "a4", time.time(), "test"))
        eventually(lambda: not reader._thread.is_alive(), "the stream ended")
        assert reader.status == 200 and reader.events == []
    finally:
        reader.close()
