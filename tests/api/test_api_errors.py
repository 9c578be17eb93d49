"""Every error a client can cause, over real HTTP: an RFC 9457 problem with its stable code, and
nothing executed; bad packets are recorded nowhere, refusals only as a `refusal` audit entry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.store import identities
from gateway.http.problems import CODES, PROBLEM_JSON, TYPE_BASE
from gateway.store.schema import decisions
from gateway_server import Server, note, packet, policies_with, refund, server_config, start_server
from passkey_authenticator import SoftwareAuthenticator


def register_passkey(server: Server, email: str) -> SoftwareAuthenticator:
    """A passkey for `email`, registered through the store as the console does."""
    from gateway.store import passkeys

    auth, runtime = SoftwareAuthenticator(), server.runtime
    with runtime.db.connect() as conn:
        options, challenge = passkeys.registration_options(conn, email, email, "127.0.0.1", "Warden")
    response = auth.create(options, server.base_url)
    runtime.writer.run(lambda conn: passkeys.register_passkey(conn, runtime.ledger, email, response, challenge,
                                                              "127.0.0.1", server.base_url, time.time()))
    return auth

#: Codes no client request can cause on a healthy gateway (the database or start-up failing).
SERVER_SIDE = {"database_unavailable", "not_ready", "internal_error"}
#: The codes each test below causes; together, every code a client can cause.
PACKET_CODES = {"malformed_json", "invalid_packet", "unsupported_media_type", "packet_too_large",
                "packet_too_deep", "unknown_tool", "invalid_params", "agent_mismatch",
                "tool_not_allowed", "packet_id_reused", "invalid_unicode", "duplicate_key"}
ACCESS_CODES = {"missing_token", "invalid_token", "forbidden_role", "decision_not_found", "not_found",
                "method_not_allowed", "invalid_request", "malformed_json", "body_too_large"}
COMPENSATION_CODES = {"not_compensable", "not_reversible", "reserved_name"}
APPROVAL_CODES = {"own_agent", "role_not_allowed", "already_approved", "not_pending",
                  "approval_expired", "decision_not_found", "forbidden_role", "passkey_required",
                  "passkey_invalid"}


def test_the_tests_cover_every_client_error_code() -> None:
    assert PACKET_CODES | ACCESS_CODES | APPROVAL_CODES | COMPENSATION_CODES == set(CODES) - SERVER_SIDE


def assert_problem(response: httpx.Response, code: str, seen: set[str] | None = None) -> dict[str, Any]:
    status, title = CODES[code]
    assert response.status_code == status, f"{code}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["type"] == TYPE_BASE + code
    assert body["title"] == title
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if seen is not None:
        seen.add(code)
    return body


class Ledgers:
    """What a request may have changed: decision rows, audit entries, connector calls."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.last = self.read()

    def read(self) -> tuple[int, int, int]:
        runtime = self.server.runtime
        with runtime.db.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
        size = self.server.client("auditor").get("/v1/audit/entries", params={"from": 0, "to": 0}).json()["size"]
        return int(rows), int(size), self.server.calls.total()

    def unchanged(self, what: str) -> None:
        now = self.read()
        assert now == self.last, f"{what}: (decisions, audit entries, connector calls) {self.last} -> {now}"

    def refusal(self, what: str, code: str, packet_id: str) -> None:
        """One `refusal` audit entry, nothing else."""
        rows, size, calls = self.read()
        assert (rows, calls) == (self.last[0], self.last[2]), what
        assert size == self.last[1] + 1, what
        entry = self.server.client("auditor").get("/v1/audit/entries", params={"from": size - 1}).json()
        entry = entry["entries"][0]["entry"]
        assert (entry["kind"], entry["subject"], entry["data"]["code"]) == ("refusal", packet_id, code)
        self.last = (rows, size, calls)

    def accept(self) -> None:
        self.last = self.read()


def post_raw(client: httpx.Client, content: bytes | Iterator[bytes], media: str = "application/json",
             path: str = "/v1/actions") -> httpx.Response:
    return client.post(path, content=content, headers={"content-type": media})


def nested(depth: int) -> Any:
    """`depth` nested objects (the outermost counts as 1)."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_bad_packets_are_refused_and_recorded_nowhere(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    ledgers = Ledgers(warden_server)
    seen: set[str] = set()
    limit = warden_server.runtime.packet_limits.max_bytes

    def refused(response: httpx.Response, code: str, what: str) -> dict[str, Any]:
        body = assert_problem(response, code, seen)
        ledgers.unchanged(what)
        return body

    for path in ("/v1/actions", "/v1/actions/evaluate"):
        refused(post_raw(agent, b'{"packet_id": "p-1", ', path=path), "malformed_json", "truncated JSON")
    refused(post_raw(agent, b"\xff\xfe{}"), "malformed_json", "not UTF-8")
    refused(post_raw(agent, b""), "malformed_json", "empty body")
    for body in (b"[1, 2]", b'"packet"', b"null", b"42"):
        refused(post_raw(agent, body), "invalid_packet", f"non-object JSON {body!r}")
    good = json.dumps(note("a2")).encode()
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        refused(post_raw(agent, good, media), "unsupported_media_type", media)

    # size: declared, and streamed without a Content-Length (chunked)
    big = note("a2")
    big["context"]["reasoning"] = "x" * limit
    refused(agent.post("/v1/actions", json=big), "packet_too_large", "declared over the limit")

    def chunks() -> Iterator[bytes]:
        data = json.dumps(big).encode()
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    request = agent.build_request("POST", "/v1/actions", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    refused(agent.send(request), "packet_too_large", "chunked over the limit")

    # depth and collection sizes
    deep = note("a2")
    deep["evidence"] = nested(17)
    refused(agent.post("/v1/actions", json=deep), "packet_too_deep", "17 levels")
    params_deep = note("a2")
    params_deep["action"]["params"]["body"] = nested(16)  # action(1) > params(2) > 16 more
    refused(agent.post("/v1/actions", json=params_deep), "packet_too_deep", "deep params")
    brackets = 30_000  # fits the size limit, far past the JSON parser's recursion limit
    pathological = b'{"packet_id": "p-deep", "agent": "a2", "evidence": {"x": ' + b"[" * brackets + b"]" * brackets + b"}}"
    assert len(pathological) < limit
    refused(post_raw(agent, pathological), "packet_too_deep", "30000 levels")
    for items in ({"xs": list(range(1001))}, {f"k{i}": i for i in range(1001)}):
        wide = note("a2")
        wide["evidence"] = items
        refused(agent.post("/v1/actions", json=wide), "packet_too_large", "1001 items")

    # schema
    base = note("a2", packet_id="p-schema")
    broken: list[tuple[str, dict[str, Any], str]] = [
        ("missing action", {k: v for k, v in base.items() if k != "action"}, "action"),
        ("missing packet_id", {k: v for k, v in base.items() if k != "packet_id"}, "packet_id"),
        ("packet_id not a string", {**base, "packet_id": 7}, "packet_id"),
        ("packet_id with a space", {**base, "packet_id": "p 1"}, "packet_id"),
        ("evidence a list", {**base, "evidence": [1]}, "evidence"),
        ("extra field", {**base, "priority": "high"}, "priority"),
        ("extra action field", {**base, "action": {**base["action"], "dry": True}}, "action"),
        ("tool not a name", {**base, "action": {"tool": "Stripe Refund", "params": {}}}, "action"),
        ("claim not PASS/FAIL", {**base, "proof": {"invariant_checks": [{"id": "x", "status": "OK"}]}}, "proof"),
        ("integer 2**53", {**base, "action": {"tool": "stripe.refund", "params": {
            "charge": "ch_1", "amount": 2**53, "currency": "usd"}}}, "action"),
        ("integer -2**53 in evidence", {**base, "evidence": {"n": -(2**53)}}, "evidence"),
    ]
    for what, sent, field in broken:
        body = refused(agent.post("/v1/actions", json=sent), "invalid_packet", what)
        assert body["errors"] and any(e["loc"][0] == field for e in body["errors"]), (what, body)
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        raw = json.dumps({**base, "evidence": {"score": "HERE"}}).encode().replace(b'"HERE"', literal)
        refused(post_raw(agent, raw), "invalid_packet", literal.decode())

    # I-JSON (RFC 7493): unique keys, Unicode text only
    raw = json.dumps({**base, "evidence": {"score": "HERE"}}).encode()
    refused(post_raw(agent, raw.replace(b'"HERE"', rb'"\ud800"')), "invalid_unicode", "lone surrogate")
    refused(post_raw(agent, raw.replace(b'"score": "HERE"', b'"n": 1, "n": 2')), "duplicate_key", "duplicate key")

    # tools and params
    refused(agent.post("/v1/actions", json=packet("a2", "stripe.teleport", {})), "unknown_tool", "unknown tool")
    refused(agent.post("/v1/actions/evaluate", json=packet("a2", "stripe.teleport", {})), "unknown_tool", "dry run")
    bad_params = packet("a2", "stripe.refund", {"charge": "nope", "amount": "ten", "colour": "red"})
    body = refused(agent.post("/v1/actions", json=bad_params), "invalid_params", "bad params")
    assert {e["loc"][0] for e in body["errors"]} == {"charge", "amount", "currency", "colour"}, body
    assert "ten" not in json.dumps(body["errors"])  # the input values are not echoed

    # refusals: recorded as such, never decided
    other = note("a3")
    assert_problem(agent.post("/v1/actions", json=other), "agent_mismatch", seen)
    ledgers.refusal("agent_mismatch", "agent_mismatch", other["packet_id"])
    outside = refund("narrow", 2500)
    assert_problem(warden_server.client("narrow").post("/v1/actions", json=outside), "tool_not_allowed", seen)
    ledgers.refusal("tool_not_allowed", "tool_not_allowed", outside["packet_id"])
    assert [t["name"].split(".")[0] for t in warden_server.client("narrow").get("/v1/tools").json()] == ["crm"] * 6

    # the same packet_id: the same body replays, another body is a conflict
    first = note("a2", packet_id="p-once")
    answered = agent.post("/v1/actions", json=first)
    assert answered.status_code in (200, 202), answered.text
    ledgers.accept()
    replay = agent.post("/v1/actions", json=json.loads(json.dumps(first)))
    assert replay.json()["decision_id"] == answered.json()["decision_id"]
    ledgers.unchanged("replay")
    changed = {**first, "context": {"task_id": "t-2"}}
    refused(agent.post("/v1/actions", json=changed), "packet_id_reused", "packet_id reused")
    # another agent may use the same packet_id
    assert warden_server.client("a3").post("/v1/actions", json={**first, "agent": "a3"}).status_code in (200, 202)
    ledgers.accept()

    # at the limits exactly: accepted
    edge = note("a2")
    edge["evidence"] = {"deep": nested(15), "xs": list(range(1000))}  # evidence(1) + 15 = 16
    accepted = agent.post("/v1/actions", json=edge)
    assert accepted.status_code in (200, 202), accepted.text

    assert seen == PACKET_CODES


def test_compensation_errors_change_nothing(warden_server: Server) -> None:
    server = warden_server
    seen: set[str] = set()
    agent, approver = server.client("a3"), server.client("approver")
    refunded = agent.post("/v1/actions", json=refund("a3", 500))
    pending = server.client("a1").post("/v1/actions", json=packet("a1", "crm.update_deal_stage",
                                                                   {"deal_id": "d_2", "stage": "closedwon"}))
    assert refunded.json()["status"] == "executed" and pending.json()["status"] == "pending_approval"
    ledgers = Ledgers(server)
    assert_problem(approver.post(f"/v1/actions/{refunded.json()['decision_id']}/compensate"), "not_reversible", seen)
    ledgers.unchanged("an irreversible action")
    assert_problem(approver.post(f"/v1/actions/{pending.json()['decision_id']}/compensate"), "not_compensable", seen)
    ledgers.unchanged("a pending action")
    forged = note("a3", packet_id="compensate.dec_0000")
    assert_problem(agent.post("/v1/actions", json=forged), "reserved_name", seen)
    forged = note("a3")
    forged["context"] = {"compensation": {"of": "dec_0000"}}
    assert_problem(agent.post("/v1/actions/evaluate", json=forged), "reserved_name", seen)
    ledgers.unchanged("a forged compensation")
    assert seen == COMPENSATION_CODES


def test_access_and_route_errors(warden_server: Server) -> None:
    server = warden_server
    ledgers = Ledgers(server)
    seen: set[str] = set()
    anonymous = server.client()
    base = server.base_url

    assert_problem(anonymous.post("/v1/actions", json=note("a2")), "missing_token", seen)
    assert_problem(anonymous.get("/v1/approvals"), "missing_token", seen)
    for header in ("Bearer nonsense", "Bearer wdn_agent_notatoken", "Bearer wdn_user_notatoken",
                   "Basic YTpi", "Bearer", "bearer"):
        with httpx.Client(base_url=base, headers={"Authorization": header}) as client:
            assert_problem(client.post("/v1/actions", json=note("a2")), "invalid_token", seen)
            assert_problem(client.get("/v1/incidents"), "invalid_token", seen)

    # revoked identities: their tokens stop working (neither was used before, so no process
    # can hold them in a cache of recently checked tokens)
    now = time.time()
    server.runtime.writer.run(lambda conn: identities.revoke_agent(conn, server.runtime.ledger, "a4", now, "test"))
    server.runtime.writer.run(lambda conn: identities.revoke_user(conn, server.runtime.ledger, "viewer@test.local", now, "test"))
    ledgers.accept()
    assert_problem(server.client("a4").post("/v1/actions", json=note("a4")), "invalid_token", seen)
    assert_problem(server.client("viewer").get("/v1/approvals"), "invalid_token", seen)

    # wrong role
    assert_problem(server.client("approver").post("/v1/actions", json=note("a2")), "forbidden_role", seen)
    assert_problem(server.client("a2").get("/v1/approvals"), "forbidden_role", seen)
    assert_problem(server.client("auditor").post("/v1/approvals/dec_x/approve"), "forbidden_role", seen)
    assert_problem(server.client("approver").post("/v1/kill-switch", json={"engaged": True, "reason": "x"}),
                   "forbidden_role", seen)

    # unknown things
    for who in ("a2", "approver"):
        assert_problem(server.client(who).get("/v1/actions/dec_missing"), "decision_not_found", seen)
    assert_problem(server.client("approver").post("/v1/approvals/dec_missing/approve"), "decision_not_found", seen)
    assert_problem(server.client("approver").post("/v1/approvals/dec_missing/reject", json={"reason": "no"}),
                   "decision_not_found", seen)
    for path in ("/v1/nothing", "/v2/actions", "/", "/v1/actions/dec_1/extra"):
        assert_problem(anonymous.get(path), "not_found", seen)
    for method, path in (("DELETE", "/v1/actions"), ("PUT", "/v1/kill-switch"), ("GET", "/v1/actions/evaluate/x"),
                         ("PATCH", "/v1/approvals"), ("POST", "/healthz")):
        response = server.client("founder").request(method, path)
        if path == "/v1/actions/evaluate/x":
            assert_problem(response, "not_found", seen)
        else:
            assert_problem(response, "method_not_allowed", seen)

    # requests (not packets) that do not match the API
    founder = server.client("founder")
    for body in ({"engaged": "maybe", "reason": "x"}, {"engaged": True}, {"engaged": True, "reason": ""}):
        problem = assert_problem(founder.post("/v1/kill-switch", json=body), "invalid_request", seen)
        assert problem["errors"], problem
    assert_problem(founder.post("/v1/kill-switch", content=b"{", headers={"content-type": "application/json"}),
                   "malformed_json", seen)
    assert_problem(founder.post("/v1/kill-switch", json={"engaged": True, "reason": "x", "extra": 1}),
                   "invalid_request", seen)
    assert_problem(server.client("approver").get("/v1/approvals", params={"status": "done"}), "invalid_request", seen)
    assert_problem(server.client("auditor").get("/v1/audit/entries", params={"from": -1}), "invalid_request", seen)
    assert_problem(server.client("auditor").get("/v1/audit/entries", params={"from": 10**6}), "invalid_request", seen)
    assert_problem(server.client("auditor").get("/v1/audit/proofs/inclusion", params={"seq": 10**6}), "invalid_request", seen)
    assert_problem(server.client("a2").get("/v1/actions/dec_x", params={"wait": -1}), "invalid_request", seen)
    assert_problem(server.client("approver").post("/v1/approvals/dec_x/approve", json={"comment": "x" * 2001}),
                   "invalid_request", seen)
    assert_problem(server.client("approver").post("/v1/approvals/dec_x/approve", json={"comment": "x" * 20_000}),
                   "body_too_large", seen)

    ledgers.unchanged("access errors")
    assert seen == ACCESS_CODES


def test_approval_errors(db_url: str, tmp_path: Path) -> None:
    """Two-person refunds and 1 s deletion approvals, in a copy of the shipped policies."""
    policy_dir = policies_with(tmp_path, {
        "payments.policy": ('from role "approver" when params.amount > 50000',
                            'from role "approver" count 2 when params.amount > 50000'),
        "crm.policy": ('require approval deletion_approval from role "approver"',
                       'require approval deletion_approval from role "approver" expires in 1s'),
    })
    server, stop = start_server(server_config(db_url, tmp_path, policy_dir=policy_dir))
    seen: set[str] = set()
    try:
        agent, approver, approver2 = server.client("a2"), server.client("approver"), server.client("approver2")
        calls = server.calls
        pending = agent.post("/v1/actions", json=refund("a2", 60000))
        assert pending.status_code == 202, pending.text
        decision_id = pending.json()["decision_id"]
        assert pending.json()["approval"]["count"] == 2
        url = f"/v1/approvals/{decision_id}"

        assert_problem(server.client("owner").post(f"{url}/approve"), "own_agent", seen)
        assert_problem(server.client("owner").post(f"{url}/reject"), "own_agent", seen)
        assert_problem(server.client("viewer").post(f"{url}/approve"), "forbidden_role", seen)
        assert_problem(server.client("auditor").post(f"{url}/reject"), "forbidden_role", seen)
        assert_problem(server.client("a3").post(f"{url}/approve"), "forbidden_role", seen)
        one = approver.post(f"{url}/approve", json={"comment": "first"})
        assert one.status_code == 202 and one.json()["status"] == "pending_approval", one.text
        assert_problem(approver.post(f"{url}/approve", json={"comment": "again"}), "already_approved", seen)
        assert len(agent.get(f"/v1/actions/{decision_id}").json()["approval"]["approvals"]) == 1
        assert calls.executions_by_key() == {}
        two = approver2.post(f"{url}/approve")
        assert two.status_code in (200, 202), two.text
        done = agent.get(f"/v1/actions/{decision_id}", params={"wait": 20}).json()
        assert done["status"] == "executed", done
        problem = assert_problem(approver.post(f"{url}/approve"), "not_pending", seen)
        assert problem["decision"]["status"] == "executed"
        assert_problem(approver.post(f"{url}/reject"), "not_pending", seen)
        assert calls.executions_by_key() == {decision_id: 1}

        # a founder's decision: an approver's yes is not enough
        payout = packet("a2", "stripe.payout", {"amount": 1000, "currency": "usd"},
                        evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.1, "cash_runway_days": 60})
        founder_only = agent.post("/v1/actions", json=payout)
        assert founder_only.status_code == 202
        assert_problem(approver.post(f"/v1/approvals/{founder_only.json()['decision_id']}/approve"), "role_not_allowed", seen)
        assert_problem(approver.post(f"/v1/approvals/{founder_only.json()['decision_id']}/reject"), "role_not_allowed", seen)
        # a founder with a passkey signs with it: without one, or with a passkey not theirs, refused
        founder_id = founder_only.json()["decision_id"]
        register_passkey(server, "founder@test.local")
        founder = server.client("founder")
        assert_problem(founder.post(f"/v1/approvals/{founder_id}/approve"), "passkey_required", seen)
        stranger = SoftwareAuthenticator().get_for(b"\x00" * 32, "127.0.0.1", server.base_url)
        assert_problem(founder.post(f"/v1/approvals/{founder_id}/approve", json={"passkey": json.loads(stranger)}),
                       "passkey_invalid", seen)
        assert calls.executions_by_key() == {decision_id: 1}
        # decisions that never waited for anyone
        drafted = server.client("a0").post("/v1/actions", json=note("a0")).json()
        assert_problem(approver.post(f"/v1/approvals/{drafted['decision_id']}/approve"), "not_pending", seen)
        assert_problem(approver.post("/v1/approvals/dec_unknown/approve"), "decision_not_found", seen)

        # an approval after the deadline: 409, and the decision is expired (whether this request
        # or the housekeeping loop found it overdue first)
        late = agent.post("/v1/actions", json=packet("a2", "crm.delete_contact", {"contact_ids": ["c_9"]}))
        assert late.status_code == 202, late.text
        late_id = late.json()["decision_id"]
        deadline = datetime.fromisoformat(late.json()["approval"]["expires_at"]).timestamp()
        time.sleep(max(0.0, deadline - time.time()) + 0.05)
        problem = assert_problem(approver.post(f"/v1/approvals/{late_id}/approve"), "approval_expired", seen)
        assert problem["decision"]["status"] == "expired"
        assert agent.get(f"/v1/actions/{late_id}").json()["status"] == "expired"
        assert_problem(approver.post(f"/v1/approvals/{late_id}/reject"), "approval_expired", seen)
        assert_problem(approver.post(f"/v1/approvals/{late_id}/approve"), "approval_expired", seen)
        assert calls.executions_by_key() == {decision_id: 1}
    finally:
        stop()
    assert seen == APPROVAL_CODES


# ---------------------------------------------------------------- fuzzing

TOOLS = ["crm.log_note", "stripe.refund", "stripe.payout", "shopify.update_price", "crm.delete_contact",
         "nope.tool", "Bad Tool", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
packets = st.fixed_dictionaries(
    {"packet_id": st.one_of(st.just("f-1"), st.from_regex(r"\Af-[a-z0-9]{1,8}\Z"), st.text(max_size=5)),
     "agent": st.sampled_from(["a2", "a3", "narrow", "", "a2 "]),
     "action": st.fixed_dictionaries({"tool": st.sampled_from(TOOLS)},
                                     optional={"params": st.dictionaries(
                                         st.sampled_from(["charge", "amount", "currency", "record_id", "body", "x"]),
                                         json_values, max_size=4)})},
    optional={"evidence": json_values, "proof": json_values, "context": json_values, "extra": json_values},
)


def test_random_bodies_never_cause_a_server_error(db_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(db_url, tmp_path, max_packet_bytes=262_144))
    agent = server.client("a2")

    def check(response: httpx.Response) -> None:
        assert response.status_code < 500, response.text
        if response.status_code in (200, 202):
            assert response.headers["content-type"] == "application/json"
            assert response.json()["status"] in {"executed", "executing", "allowed", "pending_approval",
                                                 "denied", "drafted", "failed"}
        else:
            assert_problem(response, response.json().get("code", "?"))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=st.one_of(packets, json_values), raw=st.binary(max_size=200),
           path=st.sampled_from(["/v1/actions", "/v1/actions/evaluate"]))
    def fuzz(body: Any, raw: bytes, path: str) -> None:
        check(agent.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}))
        check(agent.post(path, content=raw, headers={"content-type": "application/json"}))

    try:
        # 100 000 levels fit a larger limit and still meet no recursion
        deep = b"[" * 100_000 + b"]" * 100_000
        assert_problem(post_raw(agent, deep), "packet_too_deep")
        assert_problem(post_raw(agent, b'{"evidence": ' + deep + b"}"), "packet_too_deep")
        fuzz()
    finally:
        stop()


def test_submit_is_served_by_the_hot_route_with_the_routes_template(warden_server: Server) -> None:
    """`POST /v1/actions` is answered by `gateway.http.hotpath` (not FastAPI's routing): its
    request is logged and counted under the route's template, and other methods and the path
    with a trailing slash still get the framework's answers."""
    agent = warden_server.client("a2")
    answer = agent.post("/v1/actions", json=refund("a2", 500, packet_id="hot-1"))
    assert answer.status_code == 200 and answer.json()["status"] == "executed", answer.text
    metrics = warden_server.client("auditor").get("/metrics").text
    assert 'warden_http_requests_total{code="' in metrics
    assert any(line.startswith('warden_http_requests_total{') and 'route="/v1/actions"' in line
               and 'method="POST"' in line for line in metrics.splitlines()), metrics[:2000]
    assert_problem(agent.get("/v1/actions"), "method_not_allowed")
    assert agent.post("/v1/actions/", json=refund("a2", 500, packet_id="hot-2")).status_code in (307, 404, 405)
