"""`warden mcp` over stdio, as an MCP client starts it: a process of its own over the gateway's
database, the agent's token in $WARDEN_AGENT_TOKEN, driven by the `mcp` SDK's stdio client.
Approvals of what it holds pending come from an approver over the other gateway's HTTP API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from gateway_server import Server, eventually
from mcp_front_support import run, text

ROOT = Path(__file__).resolve().parents[2]


def environment(server: Server, token: str) -> dict[str, str]:
    """The gateway's settings for the `warden mcp` process, and the agent's token."""
    settings = server.runtime.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(PYTHONPATH=str(ROOT), WARDEN_DATABASE_URL=settings.database_url,
               WARDEN_DATA_DIR=str(settings.data_dir), WARDEN_SIGNING_KEY_FILE=str(settings.signing_key_file),
               WARDEN_POLICY_RELOAD="false", WARDEN_OUTBOX_WORKERS="1", WARDEN_AGENT_TOKEN=token)
    return env


def params(server: Server, who: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "gateway.cli", "mcp"],
                                 env=environment(server, server.tokens[who]), cwd=str(ROOT))


def test_stdio_lists_calls_and_denies_as_the_agent_of_the_token(mcp_server: Server) -> None:
    async def main() -> tuple[Any, ...]:
        async with stdio_client(params(mcp_server, "narrow")) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            executed = await session.call_tool("crm.log_note", {"record_id": "rec_1", "body": "over stdio"})
            denied = await session.call_tool("crm.log_note", {"record_id": "rec_1",
                                                              "body": "card 4242 4242 4242 4242, exp 12/29"})
            with pytest.raises(MCPError) as refused:
                await session.call_tool("stripe.refund", {"charge": "ch_1", "amount": 5, "currency": "usd"})
            bad = await session.call_tool("crm.log_note", {"record_id": ["x"]})
            return tools, executed, denied, refused.value, bad

    tools, executed, denied, refused, bad = run(main)
    assert {t.name for t in tools} == {n for n in mcp_server.runtime.registry.specs if n.startswith("crm.")} | {
        "warden.status"}
    assert not executed.is_error and executed.structured_content["status"] == "executed", text(executed)
    stored = mcp_server.client("narrow").get(f"/v1/actions/{executed.structured_content['decision_id']}")
    assert stored.json()["status"] == "executed"
    assert denied.is_error and denied.structured_content["status"] == "denied"
    assert text(denied).startswith("Denied") and "card_number_in_note" in text(denied)
    assert refused.message == "unknown tool: 'stripe.refund'"
    assert bad.is_error and "record_id" in text(bad)


def test_stdio_waits_for_an_approver_over_http(mcp_server: Server) -> None:
    progress: list[float] = []

    async def on_progress(value: float, _total: float | None, _message: str | None) -> None:
        progress.append(value)

    def approve() -> None:
        queue = eventually(lambda: [d for d in mcp_server.client("approver").get(
            "/v1/approvals", params={"status": "pending"}).json() if d["packet_id"] == "stdio-wait-1"],
            "the stdio call's pending approval", timeout=60)
        response = mcp_server.client("approver").post(f"/v1/approvals/{queue[0]['decision_id']}/approve", json={})
        assert response.status_code == 200, response.text

    async def main() -> Any:
        async with stdio_client(params(mcp_server, "a2")) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("stripe.refund", {
                "charge": "ch_test", "amount": 60000, "currency": "usd", "packet_id": "stdio-wait-1",
                "evidence": {"reconciled": True, "order_total": 60000}, "wait": 60}, progress_callback=on_progress)

    thread = threading.Thread(target=approve)
    thread.start()
    result = run(main)
    thread.join()
    assert result.structured_content["status"] == "executed", text(result)
    assert progress


def test_stdio_refuses_to_start_without_an_agent_token(mcp_server: Server) -> None:
    for token in ("", "wdn_agent_unknown", mcp_server.tokens["approver"]):
        env = environment(mcp_server, token)
        done = subprocess.run([sys.executable, "-m", "gateway.cli", "mcp"], env=env, cwd=ROOT, input="",
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr.strip().splitlines()[-1].startswith("warden mcp: ")
        assert "WARDEN_AGENT_TOKEN" in done.stderr
