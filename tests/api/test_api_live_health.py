"""A live gateway whose provider credentials are refused: `/readyz` says which connector and why
(without the credential), and is not ready; the other connectors' checks still show. Metrics name
each connector's calls, reconciliations and rate-limit waits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.crm import TOKEN as CRM_TOKEN
from fakes.crm import FakeHubSpot
from fakes.stripe import DEFAULT_KEY, FakeStripe
from gateway_server import audit_log, eventually, note, refund, server_config, start_server
from log_capture import captured

WRONG_KEY = "sk_test_51ThisKeyWasRevokedLastWeek00000000000000000qrst"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    yield from captured("debug")


@pytest.fixture
def providers() -> Iterator[tuple[FakeStripe, FakeHubSpot]]:
    fakes = (FakeStripe().start(), FakeHubSpot(autocreate=True).start())
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.stop()


def _live(tmp_path: Path, stripe: FakeStripe, crm: FakeHubSpot, key: str) -> dict[str, object]:
    return {"connectors_mode": "live", "connector_timeout_seconds": 2.0, "stripe_api_key": key,
            "stripe_api_base": stripe.base_url, "crm_access_token": CRM_TOKEN, "crm_api_base": crm.base_url}


def test_refused_credentials_make_the_gateway_not_ready(tmp_path: Path, providers: tuple[FakeStripe, FakeHubSpot],
                                                        logs: io.StringIO) -> None:
    stripe, crm = providers
    server, stop = start_server(server_config(f"sqlite:///{tmp_path / 'w.db'}", tmp_path,
                                              **_live(tmp_path, stripe, crm, WRONG_KEY)))
    try:
        anonymous = server.client()
        ready = eventually(lambda: (r := anonymous.get("/readyz")).status_code == 503 and r, "the first connector check")
        body = ready.json()
        assert body["code"] == "not_ready" and "connectors" in body["detail"]
        assert body["checks"]["connectors"] is False
        connectors = body["connectors"]["connectors"]
        assert (connectors["stripe"]["ok"], connectors["stripe"]["code"]) == (False, "credentials_refused")
        assert connectors["crm"]["ok"] is True
        assert (connectors["shopify"]["ok"], connectors["shopify"]["code"]) == (False, "not_configured")
        assert WRONG_KEY not in ready.text and CRM_TOKEN not in ready.text
        # a refused key refuses the calls too, explained and recorded; the CRM still works
        failed = server.client("a3").get(f"/v1/actions/{server.client('a3').post('/v1/actions', json=refund('a3', 300)).json()['decision_id']}",
                                         params={"wait": 10}).json()
        assert failed["status"] == "failed" and failed["execution"]["error"]["code"] == "credentials_refused"
        assert WRONG_KEY[8:] not in str(failed)
        assert server.client("a3").post("/v1/actions", json=note("a3")).json()["status"] == "executed"
        # the credentials are nowhere: not in a log line, the audit log, an incident or a metric
        written = logs.getvalue() + str(audit_log(server)) + server.client("founder").get("/v1/incidents").text \
            + server.client().get("/metrics").text
        assert "credentials_refused" in written  # the failure is explained...
        for secret in (WRONG_KEY, WRONG_KEY[8:], CRM_TOKEN):
            assert secret not in written  # ...without the credential
    finally:
        stop()


def test_good_credentials_are_ready_and_calls_are_measured_per_connector(
    tmp_path: Path, providers: tuple[FakeStripe, FakeHubSpot]
) -> None:
    stripe, crm = providers
    server, stop = start_server(server_config(f"sqlite:///{tmp_path / 'w.db'}", tmp_path,
                                              **_live(tmp_path, stripe, crm, DEFAULT_KEY)))
    try:
        eventually(lambda: server.client().get("/readyz").json().get("connectors", {}).get("checked_at"), "a check")
        assert server.client().get("/readyz").status_code == 200
        # the answer to the first refund is lost after Stripe made it: reconciled, not sent again
        stripe.fail("POST /v1/refunds", kind="drop_after")
        sent = server.client("a3").post("/v1/actions", json=refund("a3", 400)).json()
        done = server.client("a3").get(f"/v1/actions/{sent['decision_id']}", params={"wait": 15}).json()
        assert done["status"] == "executed" and done["execution"]["reconciled"] is True
        assert stripe.effects_by_key() == {sent["decision_id"]: 1}
        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(server.client().get("/metrics").text) for s in f.samples}
        assert metrics[("warden_connector_reconciliations_total",
                        (("connector", "stripe"), ("result", "found"), ("tool", "stripe.refund")))] == 1
        assert metrics[("warden_connector_failures_total",
                        (("connector", "stripe"), ("kind", "unknown_outcome"), ("tool", "stripe.refund")))] == 1
        assert DEFAULT_KEY not in server.client().get("/metrics").text
    finally:
        stop()
