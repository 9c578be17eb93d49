"""The in-process metrics: names, labels and values as Prometheus reads them."""

from __future__ import annotations

import os

from prometheus_client.parser import text_string_to_metric_families

from dsl.model import Risk
from gateway.runtime import process
from gateway.runtime.metrics import OUTCOMES, Metrics


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → [(labels, value)], parsed from the exposition text."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    for found, v in samples.get(name, []):
        if all(found.get(k) == want for k, want in labels.items()):
            return v
    return None


def test_decisions_counted_by_status_tool_and_risk() -> None:
    m = Metrics(process=False)
    m.observe_decision("executed", "stripe.refund", Risk.L1, 0.0012)
    m.observe_decision("executed", "stripe.refund", Risk.L1, 0.0008)
    m.observe_decision("pending_approval", "stripe.refund", 2, 0.003)
    m.observe_decision("denied", "crm.move_deal", "L3", 0.2)
    s = scrape(m)
    assert value(s, "warden_decisions_total", status="executed", tool="stripe.refund", risk="L1") == 2
    assert value(s, "warden_decisions_total", status="pending_approval", tool="stripe.refund", risk="L2") == 1
    assert value(s, "warden_decisions_total", status="denied", tool="crm.move_deal", risk="L3") == 1
    assert value(s, "warden_decision_seconds_count") == 4
    assert value(s, "warden_decision_seconds_bucket", le="0.001") == 1
    assert value(s, "warden_decision_seconds_bucket", le="0.0005") == 0
    assert value(s, "warden_decision_seconds_bucket", le="1.0") == 4


def test_requests_counted_by_route_template() -> None:
    m = Metrics(process=False)
    m.observe_request("get", "/v1/actions/{decision_id}", 200, 0.004)
    m.observe_request("GET", "/v1/actions/{decision_id}", 200, 0.004)
    m.observe_request("POST", "/v1/actions", 202)
    m.observe_request("BREW", "/v1/actions", 405)
    s = scrape(m)
    assert value(s, "warden_http_requests_total", method="GET", route="/v1/actions/{decision_id}", code="200") == 2
    assert value(s, "warden_http_requests_total", method="POST", route="/v1/actions", code="202") == 1
    assert value(s, "warden_http_requests_total", method="other", route="/v1/actions", code="405") == 1
    assert value(s, "warden_http_request_seconds_count", method="GET", route="/v1/actions/{decision_id}") == 2


def test_connector_calls_failures_and_durations() -> None:
    m = Metrics(process=False)
    for outcome in OUTCOMES:
        m.on_call("stripe", "stripe.refund", outcome, 0.12)
    m.observe_connector_call("stripe", "stripe.refund", "transient_error", 0.3)
    m.observe_connector_call("crm", "crm.move_deal", "exploded", 0.3)
    s = scrape(m)
    for outcome in OUTCOMES:
        expected = 2 if outcome == "transient_error" else 1
        assert value(s, "warden_connector_calls_total", connector="stripe", tool="stripe.refund", outcome=outcome) == expected
    assert value(s, "warden_connector_calls_total", connector="crm", outcome="other") == 1
    assert value(s, "warden_connector_failures_total", connector="stripe", kind="transient") == 2
    assert value(s, "warden_connector_failures_total", connector="stripe", kind="permanent") == 1
    assert value(s, "warden_connector_failures_total", connector="stripe", kind="unknown_outcome") == 1
    assert value(s, "warden_connector_failures_total", connector="stripe", kind="idempotency_conflict") == 1
    assert value(s, "warden_connector_failures_total", connector="crm") is None
    # breaker_open, kill_switch and lease_lost made no call, so they have no duration
    assert value(s, "warden_connector_seconds_count", connector="stripe") == 6


def test_reconciliations_throttle_waits_and_compensations() -> None:
    m = Metrics(process=False)
    m.observe_reconciliation("stripe", "stripe.refund", "found")
    m.observe_reconciliation("stripe", "stripe.refund", "found")
    m.observe_reconciliation("crm", "crm.log_note", "not_found")
    m.observe_reconciliation("crm", "crm.log_note", "nonsense")
    m.observe_throttle_wait("shopify", 0.25)
    m.observe_throttle_wait("shopify", 0.5)
    m.observe_compensation("crm.delete_note", "executed")
    s = scrape(m)
    assert value(s, "warden_connector_reconciliations_total", connector="stripe", result="found") == 2
    assert value(s, "warden_connector_reconciliations_total", connector="crm", result="not_found") == 1
    assert value(s, "warden_connector_reconciliations_total", connector="crm", result="other") == 1
    assert value(s, "warden_connector_throttle_waits_total", connector="shopify") == 2
    assert value(s, "warden_connector_throttle_wait_seconds_total", connector="shopify") == 0.75
    assert value(s, "warden_connector_compensations_total", connector="crm", tool="crm.delete_note",
                 status="executed") == 1


def test_breakers_policy_digest_and_reload_failures() -> None:
    states = {"stripe": True, "crm": False}
    m = Metrics(process=False, breakers=lambda: states, policy_digest=lambda: "sha256:abc")
    m.policy_reload_failed("cash.policy:1:1: error: ...")
    s = scrape(m)
    assert value(s, "warden_circuit_breaker_open", connector="stripe") == 1
    assert value(s, "warden_circuit_breaker_open", connector="crm") == 0
    assert value(s, "warden_policy_info", digest="sha256:abc") == 1
    assert value(s, "warden_policy_reload_failures_total") == 1
    states["stripe"] = False
    assert value(scrape(m), "warden_circuit_breaker_open", connector="stripe") == 0


def test_the_process_that_answers_is_named() -> None:
    """`warden serve --workers N` puts N processes behind one address: a scrape names its process."""
    assert scrape(Metrics(process=False))["warden_process_info"] == [({"worker": "1", "pid": str(os.getpid())}, 1.0)]
    process.set_worker(2, 3)
    try:
        assert value(scrape(Metrics(process=False)), "warden_process_info", worker="2", pid=str(os.getpid())) == 1
    finally:
        process.set_worker(1, 1)


def test_a_failing_source_leaves_its_gauge_out_but_the_scrape_works() -> None:
    def broken() -> dict[str, bool]:
        raise RuntimeError("outbox gone")

    m = Metrics(process=False, breakers=broken, policy_digest=lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    m.observe_decision("denied", "stripe.refund", Risk.L0, 0.001)
    s = scrape(m)
    assert "warden_circuit_breaker_open" not in s
    assert "warden_policy_info" not in s
    assert value(s, "warden_decisions_total", status="denied") == 1


def test_tool_labels_are_bounded() -> None:
    m = Metrics(process=False, max_tools=2)
    for tool in ("a.one", "a.two", "a.three", "a.four", "a.one"):
        m.observe_decision("denied", tool, Risk.L0, 0.001)
    s = scrape(m)
    tools = {labels["tool"]: v for labels, v in s["warden_decisions_total"]}
    assert tools == {"a.one": 2, "a.two": 1, "other": 2}


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # process collectors too: no duplicate registration
    first.observe_decision("executed", "stripe.refund", Risk.L1, 0.001)
    assert value(scrape(first), "warden_decisions_total", status="executed") == 1
    assert value(scrape(second), "warden_decisions_total", status="executed") is None
    assert "process_cpu_seconds_total" in scrape(first) or "python_info" in scrape(first)


def test_database_gauges_without_a_database_are_declared_without_samples() -> None:
    s = scrape(Metrics(process=False))
    assert "warden_pending_approvals" not in s
    assert value(s, "warden_metrics_scrape_errors_total") == 0
    body = Metrics(process=False).render()[0].decode()
    assert "# TYPE warden_pending_approvals gauge" in body
