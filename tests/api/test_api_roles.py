"""Who may call what (DESIGN.md "HTTP surface", the role lists in gateway/app.py), checked for
every endpoint and every kind of caller over real HTTP; and no token ever shows in an answer or
in the audit log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from gateway.http.problems import PROBLEM_JSON
from gateway_server import Server, audit_log, note, refund, server_config, start_server

AGENT = "a2"
CALLERS = (AGENT, "founder", "approver", "auditor", "viewer", None)
EVERYONE = frozenset({"agent", "founder", "approver", "auditor", "viewer"})
PUBLIC = None  # no token needed

#: (method, path, who may call; None: anyone, even without a token). `{decision}` is a pending
#: decision of a2; approvals name a decision that does not exist, so nothing changes state.
TABLE: list[tuple[str, str, frozenset[str] | None]] = [
    ("POST", "/v1/actions", frozenset({"agent"})),
    ("POST", "/v1/actions/evaluate", frozenset({"agent"})),
    ("GET", "/v1/actions/{decision}", EVERYONE),
    ("GET", "/v1/actions/{decision}?wait=0", EVERYONE),
    ("GET", "/v1/tools", EVERYONE),
    ("GET", "/v1/approvals?status=pending", frozenset({"approver", "founder", "viewer"})),
    ("POST", "/v1/approvals/dec_missing/approve", frozenset({"approver", "founder"})),
    ("POST", "/v1/approvals/dec_missing/reject", frozenset({"approver", "founder"})),
    ("POST", "/v1/kill-switch", frozenset({"founder"})),
    ("GET", "/v1/kill-switch", EVERYONE),
    ("GET", "/v1/incidents", frozenset({"approver", "founder", "auditor"})),
    ("GET", "/v1/audit/checkpoint", EVERYONE),
    ("GET", "/v1/audit/entries?from=0&to=5", frozenset({"auditor", "founder"})),
    ("GET", "/v1/audit/proofs/inclusion?seq=0", frozenset({"agent", "auditor", "founder"})),
    ("GET", "/v1/audit/proofs/consistency?from=1", frozenset({"agent", "auditor", "founder"})),
    ("GET", "/healthz", PUBLIC),
    ("GET", "/readyz", PUBLIC),
    ("GET", "/metrics", PUBLIC),
    ("GET", "/openapi.json", PUBLIC),
]


def role_of(server: Server, caller: str | None) -> str | None:
    if caller is None:
        return None
    return "agent" if caller.startswith("a") and caller[1:].isdigit() else caller


def body_for(path: str) -> dict[str, Any] | None:
    if path.startswith("/v1/actions") and not path.startswith("/v1/actions/dec"):
        return note(AGENT)
    if path == "/v1/kill-switch":
        return {"engaged": False, "reason": "checking who may release the kill switch"}
    if path.endswith("/approve"):
        return {"comment": "ok"}
    if path.endswith("/reject"):
        return {"reason": "no"}
    return None


def test_every_endpoint_admits_exactly_its_roles(warden_server: Server) -> None:
    server = warden_server
    pending = server.client(AGENT).post("/v1/actions", json=refund(AGENT, 60000))
    assert pending.status_code == 202, pending.text
    decision_id = pending.json()["decision_id"]
    answers: list[httpx.Response] = [pending]

    for method, template, allowed in TABLE:
        path = template.replace("{decision}", decision_id)
        for caller in CALLERS:
            response = server.client(caller).request(method, path, json=body_for(path)) \
                if method == "POST" else server.client(caller).request(method, path)
            answers.append(response)
            where = f"{method} {path} as {caller or 'nobody'}"
            role = role_of(server, caller)
            if allowed is PUBLIC:
                assert response.status_code == 200, f"{where}: {response.status_code} {response.text[:300]}"
            elif role is None:
                assert response.status_code == 401, where
                assert response.json()["code"] == "missing_token", where
                assert response.headers["www-authenticate"] == "Bearer"
            elif role in allowed:
                assert response.status_code not in (401, 403), f"{where}: {response.text[:300]}"
                assert response.status_code < 500, where
            else:
                assert response.status_code == 403, f"{where}: {response.status_code} {response.text[:300]}"
                assert response.headers["content-type"] == PROBLEM_JSON
                assert response.json()["code"] == "forbidden_role", where

    # allowed callers of the approval routes got past the role check to the lookup
    for who in ("approver", "founder"):
        missing = server.client(who).post("/v1/approvals/dec_missing/approve")
        assert (missing.status_code, missing.json()["code"]) == (404, "decision_not_found")

    # an agent reads its own decisions only; another agent's look like they do not exist
    own = server.client(AGENT).get(f"/v1/actions/{decision_id}")
    assert own.status_code == 200 and own.json()["decision_id"] == decision_id
    for other in ("a3", "narrow"):
        theirs = server.client(other).get(f"/v1/actions/{decision_id}", params={"wait": 1})
        assert (theirs.status_code, theirs.json()["code"]) == (404, "decision_not_found")
        missing = server.client(other).get("/v1/actions/dec_missing")
        assert missing.json()["detail"].replace("dec_missing", "X") == theirs.json()["detail"].replace(decision_id, "X")
        answers += [theirs, missing]
    # people may read every decision
    for who in ("founder", "approver", "auditor", "viewer"):
        assert server.client(who).get(f"/v1/actions/{decision_id}").json() == own.json()

    # an agent's tool list is its allowlist
    narrow_tools = server.client("narrow").get("/v1/tools").json()
    assert narrow_tools and all(t["name"].startswith("crm.") for t in narrow_tools)
    assert len(server.client(AGENT).get("/v1/tools").json()) > len(narrow_tools)

    # no token, raw or hashed, in any answer or audit entry
    entries = audit_log(server)
    texts = [r.text for r in answers] + [json.dumps(entries)]
    assert {e["entry"]["kind"] for e in entries} >= {"agent_registered", "user_added", "decision", "kill_switch"}
    secrets = list(server.tokens.values())
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in secrets]
    for text in texts:
        assert "wdn_" not in text
        for secret in secrets + hashes:
            assert secret not in text


def test_authentication_comes_before_the_body(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        bad = {"content": b"{", "headers": {"content-type": "application/json"}}
        for path in ("/v1/approvals/dec_x/approve", "/v1/approvals/dec_x/reject", "/v1/kill-switch"):
            assert server.client().post(path, **bad).status_code == 401, path
            assert server.client("viewer").post(path, **bad).status_code == 403, path
    finally:
        stop()
