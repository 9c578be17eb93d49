"""The MCP front over streamable HTTP at /mcp, driven by the `mcp` SDK's own client against a real
gateway on loopback (SQLite and PostgreSQL): the catalog as tools per allowlist, a call as a
governed packet (executed, denied, pending then approved by an approver over the API), the
status tool, retries, bad tokens and malformed arguments."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from gateway_server import Server, audit, eventually
from mcp_front_support import http_session, run, text

REFUND = {"charge": "ch_test", "currency": "usd"}
GOOD_EVIDENCE = {"reconciled": True, "order_total": 60000}


def test_tools_list_shows_only_what_the_allowlist_permits(mcp_server: Server) -> None:
    async def main() -> tuple[Any, Any]:
        async with http_session(mcp_server, mcp_server.tokens["narrow"]) as narrow:
            narrow_tools = (await narrow.list_tools()).tools
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as a2:
            a2_tools = (await a2.list_tools()).tools
        return narrow_tools, a2_tools

    narrow_tools, a2_tools = run(main)
    catalog = set(mcp_server.runtime.registry.specs)
    assert {t.name for t in narrow_tools} == {n for n in catalog if n.startswith("crm.")} | {"warden.status"}
    assert {t.name for t in a2_tools} == catalog | {"warden.status"}
    refund = next(t for t in a2_tools if t.name == "stripe.refund")
    schema = refund.input_schema
    params = mcp_server.runtime.registry.spec("stripe.refund").params_schema()  # type: ignore[union-attr]
    assert set(params["properties"]) <= set(schema["properties"])
    assert {"evidence", "claims", "context", "wait", "packet_id"} <= set(schema["properties"])
    assert schema["required"] == params["required"]
    assert "Policies read `evidence`" in (refund.description or "")
    assert "`evidence.<name>`" in schema["properties"]["evidence"]["description"]
    assert "proof mismatch" in schema["properties"]["claims"]["description"]


def test_a_call_executes_as_a_packet_of_the_agent(mcp_server: Server) -> None:
    async def main() -> Any:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            return await session.call_tool("crm.log_note", {"record_id": "rec_1", "body": "called the customer",
                                                            "context": {"task_id": "t-9"}})

    result = run(main)
    assert not result.is_error, text(result)
    decision = result.structured_content
    assert decision["status"] == "executed"
    assert text(result).startswith("Executed crm.log_note")
    assert decision["execution"]["summary"]["record_id"] == "rec_1"
    stored = mcp_server.client("a2").get(f"/v1/actions/{decision['decision_id']}").json()
    assert stored["status"] == "executed" and stored["audit"] == decision["audit"]
    entry = audit(mcp_server, "decision", decision["decision_id"])[0]
    assert entry["actor"] == "a2"
    assert entry["data"]["packet"]["context"] == {"task_id": "t-9"}


def test_a_retry_with_the_same_packet_id_acts_once(mcp_server: Server) -> None:
    args = {"record_id": "rec_1", "body": "once", "packet_id": "mcp-retry-1"}

    async def main() -> tuple[Any, Any]:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            first = await session.call_tool("crm.log_note", args)
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            return first, await session.call_tool("crm.log_note", args)

    first, again = run(main)
    assert first.structured_content["decision_id"] == again.structured_content["decision_id"]
    assert mcp_server.calls.executed(first.structured_content["decision_id"]) == 1


def test_a_denied_call_is_an_error_result_with_the_reasons_in_words(mcp_server: Server) -> None:
    async def main() -> Any:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            return await session.call_tool("stripe.refund", {**REFUND, "amount": 2500,
                                                             "evidence": {"reconciled": False, "order_total": 2500}})

    result = run(main)
    assert result.is_error
    assert result.structured_content["status"] == "denied"
    words = text(result)
    assert words.startswith("Denied: Warden did not run stripe.refund")
    assert "refund_reconciled" in words
    assert mcp_server.calls.executed(result.structured_content["decision_id"]) == 0


def _approve_when_pending(server: Server, found: dict[str, str]) -> threading.Thread:
    def approve() -> None:
        queue = eventually(lambda: server.client("approver").get(
            "/v1/approvals", params={"status": "pending"}).json(), "a pending approval")
        found["decision_id"] = queue[0]["decision_id"]
        response = server.client("approver").post(f"/v1/approvals/{found['decision_id']}/approve",
                                                  json={"comment": "fine"})
        assert response.status_code == 200, response.text

    thread = threading.Thread(target=approve)
    thread.start()
    return thread


def test_a_call_pending_approval_waits_with_progress_until_approved(mcp_server: Server) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def main() -> Any:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            return await session.call_tool("stripe.refund", {**REFUND, "amount": 60000, "evidence": GOOD_EVIDENCE,
                                                             "wait": 60}, progress_callback=on_progress)

    found: dict[str, str] = {}
    thread = _approve_when_pending(mcp_server, found)
    result = run(main)
    thread.join()
    assert not result.is_error, text(result)
    assert result.structured_content["decision_id"] == found["decision_id"]
    assert result.structured_content["status"] == "executed"
    assert result.structured_content["approval"]["approvals"][0]["approver"] == "approver@test.local"
    assert progress and progress[0][1] == 60 and "approval by 1 more approver" in (progress[0][2] or "")
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)


def test_a_call_pending_approval_answers_with_the_id_and_the_status_tool_tells_the_outcome(mcp_server: Server) -> None:
    async def pending() -> Any:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            return await session.call_tool("stripe.refund", {**REFUND, "amount": 60000, "evidence": GOOD_EVIDENCE})

    first = run(pending)
    assert not first.is_error
    decision_id = first.structured_content["decision_id"]
    assert first.structured_content["status"] == "pending_approval"
    assert "warden.status" in text(first) and decision_id in text(first)

    async def status(who: str, wait: float) -> Any:
        async with http_session(mcp_server, mcp_server.tokens[who]) as session:
            return await session.call_tool("warden.status", {"decision_id": decision_id, "wait": wait})

    assert run(lambda: status("a2", 0)).structured_content["status"] == "pending_approval"
    other = run(lambda: status("a3", 0))
    assert other.is_error and "No decision" in text(other)
    approved = mcp_server.client("approver").post(f"/v1/approvals/{decision_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    final = run(lambda: status("a2", 10))
    assert final.structured_content["status"] == "executed" and not final.is_error


def test_a_disallowed_tool_is_invisible_and_refused_by_name(mcp_server: Server) -> None:
    async def main() -> MCPError:
        async with http_session(mcp_server, mcp_server.tokens["narrow"]) as session:
            with pytest.raises(MCPError) as refused:
                await session.call_tool("stripe.refund", {**REFUND, "amount": 100})
            with pytest.raises(MCPError) as unknown:
                await session.call_tool("stripe.nothing", {})
            assert unknown.value.message == "unknown tool: 'stripe.nothing'"
            return refused.value

    error = run(main)
    assert error.message == "unknown tool: 'stripe.refund'"
    refusals = [e for e in audit(mcp_server, "refusal") if e["actor"] == "narrow"]
    assert refusals and refusals[-1]["data"]["code"] == "tool_not_allowed"


@pytest.mark.parametrize("token", ["", "wdn_agent_not-a-token", "person"])
def test_a_bad_token_gets_401_pointing_at_the_resource_metadata(mcp_server: Server, token: str) -> None:
    bearer = mcp_server.tokens["approver"] if token == "person" else token
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    response = httpx.post(mcp_server.base_url + "/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = mcp_server.base_url + "/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge
    metadata = httpx.get(metadata_url).json()
    assert metadata["resource"] == mcp_server.base_url + "/mcp"
    assert metadata["authorization_servers"] == [mcp_server.base_url]
    assert metadata["bearer_methods_supported"] == ["header"]

    async def main() -> None:
        async with http_session(mcp_server, bearer):
            return

    with pytest.raises(BaseException):  # the SDK's client cannot even initialise
        run(main)


def test_malformed_arguments_get_an_mcp_error_and_the_server_carries_on(mcp_server: Server) -> None:
    async def main() -> list[Any]:
        async with http_session(mcp_server, mcp_server.tokens["a2"]) as session:
            results = [
                await session.call_tool("crm.log_note", {"record_id": 5}),
                await session.call_tool("crm.log_note", {"record_id": "r", "body": "b", "evidence": "yes"}),
                await session.call_tool("crm.log_note", {"record_id": "r", "body": "b", "wait": -1}),
                await session.call_tool("crm.log_note", {"record_id": "r", "body": "b",
                                                         "claims": [{"id": "x", "status": "MAYBE"}]}),
                await session.call_tool("crm.log_note", {"record_id": "r", "body": "b", "packet_id": "no spaces"}),
                await session.call_tool("warden.status", {}),
            ]
            results.append(await session.call_tool("crm.log_note", {"record_id": "r", "body": "after"}))
            return results

    *bad, after = run(main)
    for result in bad:
        assert result.is_error and "do not fit" in text(result) or "Refused before any decision" in text(result)
    assert "record_id" in text(bad[0]) and "body" in text(bad[0])
    assert "evidence" in text(bad[1])
    assert "wait" in text(bad[2])
    assert "claims" in text(bad[3])
    assert "packet_id" in text(bad[4])
    assert "decision_id" in text(bad[5])
    assert after.structured_content["status"] == "executed"
    raw = httpx.post(mcp_server.base_url + "/mcp", headers={
        "Authorization": f"Bearer {mcp_server.tokens['a2']}", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25"},
        json={"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "crm.log_note", "arguments": [1]}})
    assert raw.status_code in (200, 400), raw.text
    assert '"code":-32602' in raw.text.replace(" ", "")
