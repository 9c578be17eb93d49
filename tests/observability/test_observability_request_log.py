"""The request log middleware on a real FastAPI app: route templates, request ids, no query.

Requests go to the app in process through httpx's ASGI transport (`AppClient`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client.parser import text_string_to_metric_families

from gateway.http.requestlog import RequestLogMiddleware
from gateway.logs import REDACTED, RequestLine, join_request_line, log_event
from gateway.runtime.metrics import Metrics
from log_capture import captured


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    yield from captured("debug")


def records(stream: io.StringIO, msg: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [r for r in found if msg is None or r["msg"] == msg]


class AppClient:
    """A synchronous client calling an ASGI app in process; with `raise_server_exceptions=False`
    a failing handler is answered with the app's own 500 instead of raising here."""

    def __init__(self, app: FastAPI, raise_server_exceptions: bool = True) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_server_exceptions)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://testserver") as client:
                return await client.get(url, **kwargs)

        # On a thread of its own: a test process may already run an event loop on this one (the
        # browser tests' Playwright keeps one for the whole session).
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, call()).result()


@pytest.fixture
def app_and_metrics() -> tuple[FastAPI, Metrics]:
    metrics = Metrics(process=False)
    app = FastAPI()
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    inner = logging.getLogger("warden.gateway")

    @app.get("/v1/actions/{decision_id}")
    def get_action(decision_id: str, request: Request) -> dict[str, str]:
        request.state.actor = "refund-bot"
        log_event(inner, "lookup", decision_id=decision_id)
        return {"decision_id": decision_id}

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("handler failed")

    @app.get("/v1/decide")
    def decide(request: Request) -> dict[str, bool]:  # a sync route: it runs on a worker thread
        request.state.actor = "refund-bot"
        joined = join_request_line(decision_id="dec_1", packet_id="p-1", tool="stripe.refund",
                                   status="executed", risk="L1", autonomy="A2", decision_ms=1.5,
                                   code=999, note="Authorization: Bearer abc.def-ghi",
                                   reason="token wdn_agent_Secret0123 was used",
                                   headers={"Cookie": "session=s3cr3t", "Host": "warden"}, api_key=42)
        return {"joined": joined}

    @app.get("/metrics")
    def scrape() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app, metrics


def test_one_line_per_request_with_route_template_and_no_query(
    app_and_metrics: tuple[FastAPI, Metrics], lines: io.StringIO
) -> None:
    app, metrics = app_and_metrics
    client = AppClient(app)
    response = client.get("/v1/actions/dec_123?token=wdn_agent_querysecret&wait=5")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    (lookup,) = records(lines, "lookup")
    (request,) = records(lines, "http_request")
    assert lookup["request_id"] == request_id == request["request_id"]
    assert request["route"] == "/v1/actions/{decision_id}"
    assert request["path"] == "/v1/actions/dec_123"
    assert request["method"] == "GET" and request["code"] == 200 and request["actor"] == "refund-bot"
    assert request["duration_ms"] >= 0
    assert "querysecret" not in lines.getvalue() and "wait=5" not in lines.getvalue()

    body = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    key = ("warden_http_requests_total",
           (("code", "200"), ("method", "GET"), ("route", "/v1/actions/{decision_id}")))
    assert samples[key] == 1
    assert not any("dec_123" in str(labels) for _, labels in samples)


def test_request_ids_are_taken_when_well_formed_and_replaced_otherwise(
    app_and_metrics: tuple[FastAPI, Metrics], lines: io.StringIO
) -> None:
    client = AppClient(app_and_metrics[0])
    assert client.get("/v1/actions/a", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/v1/actions/a", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32
    assert [r["request_id"] for r in records(lines, "http_request")] == ["abc-123", replaced]


def test_unmatched_routes_and_failures_are_logged_and_counted(
    app_and_metrics: tuple[FastAPI, Metrics], lines: io.StringIO
) -> None:
    app, metrics = app_and_metrics
    client = AppClient(app, raise_server_exceptions=False)
    assert client.get("/no/such/path/wdn_user_x").status_code == 404
    assert client.get("/v1/boom").status_code == 500
    missing, failed = records(lines, "http_request")
    assert missing["route"] == "<unmatched>" and missing["code"] == 404 and missing["level"] == "info"
    assert failed["route"] == "/v1/boom" and failed["code"] == 500 and failed["level"] == "warning"
    body = metrics.render()[0].decode()
    assert 'route="<unmatched>"' in body and "/no/such/path" not in body
    assert 'warden_http_requests_total{code="500",method="GET",route="/v1/boom"} 1.0' in body


def test_health_and_metrics_requests_log_at_debug(
    app_and_metrics: tuple[FastAPI, Metrics], lines: io.StringIO
) -> None:
    AppClient(app_and_metrics[0]).get("/metrics")
    (line,) = records(lines, "http_request")
    assert line["level"] == "debug" and line["route"] == "/metrics"


def test_fields_joined_while_serving_are_on_the_one_request_line_and_redacted(
    app_and_metrics: tuple[FastAPI, Metrics], lines: io.StringIO
) -> None:
    response = AppClient(app_and_metrics[0]).get("/v1/decide", headers={"X-Request-ID": "wdn_user_RequestIdSecret"})
    assert response.json() == {"joined": True}
    (line,) = [r for r in records(lines) if r["logger"].startswith("warden")]  # one line, no other
    assert line["msg"] == "http_request" and line["route"] == "/v1/decide" and line["actor"] == "refund-bot"
    assert line["code"] == 200  # a joined field never replaces the line's own
    assert {k: line[k] for k in ("decision_id", "packet_id", "tool", "status", "risk", "autonomy")} == {
        "decision_id": "dec_1", "packet_id": "p-1", "tool": "stripe.refund", "status": "executed",
        "risk": "L1", "autonomy": "A2"}
    assert line["decision_ms"] == 1.5 and line["duration_ms"] >= 0
    assert line["note"] == f"Authorization: {REDACTED}"
    assert line["reason"] == f"token wdn_agent_{REDACTED} was used"
    assert line["headers"] == {"Cookie": REDACTED, "Host": "warden"}
    assert line["api_key"] == REDACTED
    assert line["request_id"] == f"wdn_user_{REDACTED}"
    for secret in ("abc.def-ghi", "Secret0123", "s3cr3t", "RequestIdSecret"):
        assert secret not in lines.getvalue()


def test_a_join_outside_a_request_or_after_its_line_is_refused() -> None:
    assert join_request_line(decision_id="dec_1") is False
    line = RequestLine()
    assert line.join({"a": 1}) is True
    assert line.close() == {"a": 1}
    assert line.join({"b": 2}) is False  # written already: the caller logs its own line
    assert line.fields == {"a": 1}
