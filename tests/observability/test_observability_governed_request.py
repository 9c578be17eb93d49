"""A governed request is one log line: `http_request` carrying its decision, no `decision` line.

On a real gateway (uvicorn on loopback, SQLite). A decision made outside an HTTP request (the
pipeline called directly) still writes a `decision` line of its own.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.engine.models import Packet
from gateway.logs import REDACTED
from gateway.store.identities.agents import get_agent
from gateway_server import Server, eventually, refund, server_config, start_server
from log_capture import captured


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    yield from captured("info")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    handle, stop = start_server(server_config(f"sqlite:///{tmp_path / 'warden.db'}", tmp_path))
    try:
        yield handle
    finally:
        stop()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The `http_request` lines, once there is one: the line is written after the response."""
    return eventually(lambda: [r for r in records(stream) if r["msg"] == "http_request"], "the request line")


DECISION_FIELDS = ("decision_id", "packet_id", "tool", "status", "risk", "autonomy")


def test_a_governed_request_writes_one_line_with_its_decision(server: Server, lines: io.StringIO) -> None:
    token = server.tokens["a2"]
    response = server.client("a2").post("/v1/actions", json=refund("a2", 1000, packet_id="p-one-line"),
                                        headers={"X-Request-ID": "governed-1"})
    assert response.status_code == 200, response.text
    decision = response.json()
    (line,) = request_lines(lines)
    found = records(lines)
    assert not [r for r in found if r["msg"] == "decision"]
    assert [r for r in found if r.get("request_id") == "governed-1"] == [line]
    assert line["msg"] == "http_request" and line["logger"] == "warden.http"
    assert line["method"] == "POST" and line["route"] == "/v1/actions" and line["code"] == 200
    assert line["actor"] == "a2"
    assert {k: line[k] for k in DECISION_FIELDS} == {
        "decision_id": decision["decision_id"], "packet_id": "p-one-line", "tool": "stripe.refund",
        "status": decision["status"], "risk": decision["risk"], "autonomy": "A2"}
    assert 0 <= line["decision_ms"] <= line["duration_ms"]
    assert [r for r in found if r.get("decision_id") == decision["decision_id"]] == [line]
    assert token.split("_")[-1] not in lines.getvalue()


def test_a_token_on_the_request_line_is_masked(server: Server, lines: io.StringIO) -> None:
    secret = server.tokens["a3"]  # a real token, sent where it does not belong
    response = server.client("a2").post("/v1/actions", json=refund("a2", 1000), headers={"X-Request-ID": secret[:64]})
    assert response.status_code == 200, response.text
    (line,) = request_lines(lines)
    assert line["request_id"].endswith(REDACTED) and line["decision_id"] == response.json()["decision_id"]
    assert secret[len("wdn_agent_"):][:20] not in lines.getvalue()


def test_a_decision_outside_a_request_writes_its_own_line(server: Server, lines: io.StringIO) -> None:
    with server.runtime.db.connect() as conn:
        agent = get_agent(conn, "a2").agent
    decision = server.runtime.gateway.submit(agent, Packet.model_validate(refund("a2", 1000, packet_id="p-direct")))
    (line,) = [r for r in records(lines) if r["msg"] == "decision"]
    assert line["logger"] == "warden.decisions" and "request_id" not in line
    assert {k: line[k] for k in DECISION_FIELDS} == {
        "decision_id": decision.decision_id, "packet_id": "p-direct", "tool": "stripe.refund",
        "status": decision.status, "risk": decision.risk.name, "autonomy": "A2"}
    assert line["duration_ms"] >= 0
    assert not [r for r in records(lines) if r["msg"] == "http_request"]
