"""The served OpenAPI document, the docs page and the operator endpoints (health, readiness,
Prometheus metrics), over real HTTP."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                response_schema_conformance, status_code_conformance)

from dsl import builtin_policy_dir
from gateway.http.problems import PROBLEM_JSON
from gateway_server import Server, module_server, note, refund, server_config, start_server

#: DESIGN.md's HTTP table as built (and compensation, ARCHITECTURE.md's departures): path →
#: methods; True when the route needs a token.
ROUTES: dict[str, tuple[set[str], bool]] = {
    "/v1/actions": ({"post"}, True),
    "/v1/actions/evaluate": ({"post"}, True),
    "/v1/actions/{decision_id}": ({"get"}, True),
    "/v1/actions/{decision_id}/compensate": ({"post"}, True),
    "/v1/actions/{decision_id}/replay": ({"get"}, True),
    "/v1/tools": ({"get"}, True),
    "/v1/approvals": ({"get"}, True),
    "/v1/approvals/{decision_id}/approve": ({"post"}, True),
    "/v1/approvals/{decision_id}/reject": ({"post"}, True),
    "/v1/kill-switch": ({"get", "post"}, True),
    "/v1/incidents": ({"get"}, True),
    "/v1/audit/checkpoint": ({"get"}, True),
    "/v1/audit/entries": ({"get"}, True),
    "/v1/audit/proofs/inclusion": ({"get"}, True),
    "/v1/audit/proofs/consistency": ({"get"}, True),
    "/v1/events": ({"get"}, True),
    "/v1/webhooks": ({"get"}, True),
    "/v1/webhooks/{endpoint_id}/deliveries": ({"get"}, True),
    "/healthz": ({"get"}, False),
    "/readyz": ({"get"}, False),
    "/metrics": ({"get"}, False),
}
PACKET_PROBLEMS = {"400", "401", "403", "409", "413", "415", "422"}
#: Routes whose answer is a stream that never ends: not fuzzed here (a request would wait for its
#: end); tests/api/test_api_events.py checks their errors and their events.
STREAMS = {"/v1/events"}


def refs(node: Any) -> set[str]:
    """Every `$ref` in a JSON document."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                found.add(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def openapi(server: Server) -> dict[str, Any]:
    response = server.client().get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def check_document(warden_server: Server) -> None:
    """The document lists every route of the HTTP table with its methods, the packet schema and
    the problems of the packet routes; every reference resolves; the docs page serves it."""
    doc = openapi(warden_server)
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "Warden"
    paths = doc["paths"]
    assert set(paths) == set(ROUTES)
    for path, (methods, _auth) in ROUTES.items():
        assert set(paths[path]) == methods, path
        for method, operation in paths[path].items():
            assert "200" in operation["responses"], (method, path)

    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path in ("/v1/actions", "/v1/actions/evaluate"):
        operation = paths[path]["post"]
        assert operation["requestBody"]["required"] is True
        assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Packet"}
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Decision"}
        documented = set(operation["responses"])
        assert PACKET_PROBLEMS <= documented, (path, documented)
        for status in PACKET_PROBLEMS:
            assert PROBLEM_JSON in operation["responses"][status]["content"], (path, status)
            assert "`" in operation["responses"][status]["description"]  # names the codes
    assert "202" in paths["/v1/actions"]["post"]["responses"]
    assert "`packet_id_reused`" in paths["/v1/actions"]["post"]["responses"]["409"]["description"]

    packet = schemas["Packet"]
    assert set(packet["required"]) == {"packet_id", "agent", "action"}
    assert set(packet["properties"]) == {"packet_id", "agent", "action", "evidence", "proof", "context"}
    assert packet["additionalProperties"] is False
    assert schemas["Decision"]["properties"]["status"]["enum"] or schemas["Decision"]["properties"]["status"]
    assert set(schemas["ProblemDetail"]["required"]) >= {"type", "title", "status", "detail", "code"}
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}

    docs = warden_server.client().get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_every_route_documents_its_problem_responses(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        doc = openapi(server)
    finally:
        stop()
    missing: list[str] = []
    for path, (methods, auth) in ROUTES.items():
        for method in methods:
            operation = doc["paths"][path][method]
            responses = operation["responses"]
            if auth:
                missing += [f"{method} {path}: {s}" for s in ("401", "403") if s not in responses]
                if not operation.get("security") and not doc.get("security"):
                    missing.append(f"{method} {path}: no security requirement")
            for status, response in responses.items():
                if status.startswith(("4", "5")) and PROBLEM_JSON not in response.get("content", {}):
                    missing.append(f"{method} {path}: {status} is not problem+json")
    assert missing == []


#: Who the document is fuzzed as: the gateway_server identity whose token is sent (None: no token).
FUZZ_ROLES = {"agent": "a2", "founder": "founder", "approver": "approver", "auditor": "auditor",
              "viewer": "viewer", "anonymous": None}
#: Examples per operation, role and database, for each generation mode: data that fits the
#: document, and data that does not (operations without parameters or body: the first only).
FUZZ_EXAMPLES = 10
FUZZ_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]
#: The shipped example packets: real tools with valid params, to reach the policies and the ledger.
SHIPPED_EXAMPLES = [json.loads(path.read_text()) for path in sorted((builtin_policy_dir() / "examples").glob("*.json"))]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=6)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "fuzz")


def packets_from(agent: str, generated: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    """Generated packets sent as `agent`, half of them carrying a shipped example's action with
    its evidence keys holding any JSON value: without this nearly every packet stops at the
    agent check or at an unknown tool."""

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        case = draw(generated)
        case.body["agent"] = agent
        if draw(st.booleans()):
            example = draw(st.sampled_from(SHIPPED_EXAMPLES))
            case.body["action"] = example["action"]
            case.body["evidence"] = {key: draw(st.just(value) | JSON_VALUES) for key, value in example["evidence"].items()}
        return case

    return build()


@pytest.mark.parametrize("role", FUZZ_ROLES)
def test_the_api_answers_as_its_openapi_document_says(fuzz_server: Server, role: str) -> None:
    """Fuzz every operation of the served document, as each role and without a token: never a
    5xx, and every answer is one the document lists (its status code, content type, headers and
    body schema). All operations are fuzzed; every failure is reported, with a curl command."""
    schema = schemathesis.openapi.from_dict(openapi(fuzz_server))
    who = FUZZ_ROLES[role]
    headers = {"Authorization": f"Bearer {fuzz_server.tokens[who]}"} if who else {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.lower(), op.path) for op in operations} == {
        (method, path) for path, (methods, _auth) in ROUTES.items() for method in methods}
    operations = [op for op in operations if op.path not in STREAMS]
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    with requests.Session() as session:
        for operation in operations:
            has_input = any(len(list(part)) for part in (operation.path_parameters, operation.query, operation.headers,
                                                         operation.cookies, operation.body))
            modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_input else [GenerationMode.POSITIVE]
            for mode in modes:
                cases = operation.as_strategy(generation_mode=mode)
                if who == FUZZ_ROLES["agent"] and mode is GenerationMode.POSITIVE \
                        and operation.path in ("/v1/actions", "/v1/actions/evaluate") and operation.method.lower() == "post":
                    cases = packets_from(who, cases)

                @hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                                     suppress_health_check=list(hypothesis.HealthCheck))
                @hypothesis.given(case=cases)
                def call(case: Case) -> None:
                    response = case.call(base_url=fuzz_server.base_url, session=session, headers=headers, timeout=30)
                    answered.setdefault(operation.label, set()).add(response.status_code)
                    case.validate_response(response, checks=FUZZ_CHECKS, headers=headers)

                try:
                    call()
                except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - collected, reported below
                    failures.append(f"{operation.label} as {role} ({mode.value} data): {failure}")
    assert failures == [], "\n\n".join(failures)
    assert set(answered) == {operation.label for operation in operations}


def samples(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = server.client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_openapi_health_readiness_and_metrics(warden_server: Server) -> None:
    """One server for the read-only document checks and the operator endpoints."""
    check_document(warden_server)
    anonymous = warden_server.client()
    health = anonymous.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    live = {"connectors": True} if warden_server.fakes is not None else {}  # live: the connectors' credentials
    assert ready.json()["checks"] == {"database": True, "policies": True, "signing_key": True, **live}
    assert ready.json()["process"] == {"worker": 1, "workers": 1, "pid": os.getpid()}  # the server runs in this process

    before = samples(warden_server)
    assert before["warden_pending_approvals"] == [({}, 0.0)]
    assert before["warden_kill_switch_engaged"] == [({}, 0.0)]
    assert not any(v for _labels, v in before.get("warden_decisions_total", []))

    agent = warden_server.client("a2")
    executed = agent.post("/v1/actions", json=note("a2"))
    assert executed.status_code in (200, 202), executed.text
    executed = agent.get(f"/v1/actions/{executed.json()['decision_id']}", params={"wait": 20})
    assert executed.json()["status"] == "executed"
    assert agent.post("/v1/actions", json=refund("a2", 60000)).status_code == 202
    size = warden_server.client("auditor").get("/v1/audit/entries", params={"from": 0, "to": 0}).json()["size"]

    after = samples(warden_server)
    decided = {(labels["status"], labels["tool"]): value for labels, value in after["warden_decisions_total"]}
    # the executed note: its status label, test_an_executed_decision_is_counted_as_executed
    assert sum(v for (_status, tool), v in decided.items() if tool == "crm.log_note") == 1.0, decided
    assert decided[("pending_approval", "stripe.refund")] == 1.0
    assert after["warden_pending_approvals"] == [({}, 1.0)]
    assert after["warden_audit_log_entries"] == [({}, float(size))]
    calls = after["warden_connector_calls_total"]
    assert sum(v for labels, v in calls if labels.get("outcome") == "succeeded") == 1.0, calls

    engaged = warden_server.client("founder").post("/v1/kill-switch", json={"engaged": True, "reason": "drill"})
    assert engaged.status_code == 200 and engaged.json()["engaged"] is True
    assert samples(warden_server)["warden_kill_switch_engaged"] == [({}, 1.0)]


def test_an_executed_decision_is_counted_as_executed(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        assert server.client("a2").post("/v1/actions", json=note("a2")).status_code in (200, 202)
        decided = {(labels["status"], labels["tool"]): value
                   for labels, value in samples(server)["warden_decisions_total"]}
        assert decided == {("executed", "crm.log_note"): 1.0}
    finally:
        stop()


def test_small_body_routes_document_their_body_problems(sqlite_url: str, tmp_path: Path) -> None:
    """Approve, reject and the kill switch read JSON bodies: the document lists what reading one
    can answer, and the packet routes list the I-JSON problems."""
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        paths = openapi(server)["paths"]
    finally:
        stop()
    expected = {"400": ["malformed_json"], "413": ["body_too_large"], "415": ["unsupported_media_type"],
                "422": ["invalid_request", "invalid_unicode", "duplicate_key"]}
    for path in ("/v1/approvals/{decision_id}/approve", "/v1/approvals/{decision_id}/reject", "/v1/kill-switch"):
        responses = paths[path]["post"]["responses"]
        for status, codes in expected.items():
            for code in codes:
                assert f"`{code}`" in responses[status]["description"], (path, status, code)
            assert PROBLEM_JSON in responses[status]["content"]
    for path in ("/v1/actions", "/v1/actions/evaluate"):
        described = paths[path]["post"]["responses"]["422"]["description"]
        assert "`invalid_unicode`" in described and "`duplicate_key`" in described
    for path in ("/v1/approvals/{decision_id}/approve", "/v1/approvals/{decision_id}/reject"):
        [param] = [p for p in paths[path]["post"]["parameters"] if p["name"] == "decision_id"]
        assert param["schema"]["maxLength"] == 64


ASSET_TYPES = {".css": "text/css", ".js": "javascript", ".png": "image/png"}


def test_docs_pages_load_only_local_assets(sqlite_url: str, tmp_path: Path) -> None:
    """/docs and /redoc work without internet access: every script, style and icon they name is
    served by the gateway itself, with its content type, and nothing points elsewhere."""
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        client = server.client()
        seen: set[str] = set()
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
            html = response.text
            assert "://" not in html and "'//" not in html and '"//' not in html, page
            assert "/openapi.json" in html
            assets = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert assets and all(a.startswith("/docs/assets/") for a in assets), (page, assets)
            seen |= set(assets)
        assert {a.rsplit(".", 1)[1] for a in seen} == {"css", "js", "png"}
        for asset in sorted(seen):
            served = client.get(asset)
            assert served.status_code == 200, asset
            expected = ASSET_TYPES["." + asset.rsplit(".", 1)[1]]
            assert expected in served.headers["content-type"], (asset, served.headers["content-type"])
            assert len(served.content) > 1000, asset
        assert client.get("/docs/assets/missing.js").json()["code"] == "not_found"
    finally:
        stop()
