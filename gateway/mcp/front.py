"""The MCP server over a running gateway: the catalog as tools, a call as a packet of the caller.

    tools/list   the catalog tools the calling agent's allowlist permits, and warden.status
    tools/call   a packet from that agent through the pipeline (`Gateway.submit_async`):
                 executed   ─► the execution summary
                 denied, rejected, expired, failed ─► an error result, the reasons in words
                 pending approval ─► waits up to `wait` s (progress notifications meanwhile),
                                     or answers at once with the decision id for warden.status

Who calls is the transport's to say (`Caller`): over stdio the agent whose token the process
was started with, over HTTP the agent whose bearer token the request carried
(`gateway.mcp.http`). A tool outside the allowlist is invisible, and calling it by name is
refused like an unknown tool (and recorded, like any refused packet). Arguments that do not fit
get an error result naming each field; a call the protocol cannot even parse gets the SDK's
JSON-RPC error. Warden's token is the agent's business with Warden: it is never passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from gateway.engine.agents import Agent
from gateway.engine.models import Decision, Packet
from gateway.mcp.catalog import (
    STATUS_DESCRIPTION, STATUS_SCHEMA, STATUS_TOOL, BadArguments, Waits, description, input_schema, split_call,
    status_call,
)
from gateway.pipeline.errors import DecisionNotFound, PipelineError, ToolNotAllowed, UnknownTool, shown
from gateway.runtime.runtime import Runtime
from gateway.store.schema import decisions
from ledger.database import read_only

log = logging.getLogger("warden.mcp")

#: Who is calling, for one request; None when the transport has no agent (refused).
Caller = Callable[[ServerRequestContext[Any, Any]], Awaitable[Agent | None]]

#: Statuses that may still change: a call waits on them, `warden.status` reports them as open.
OPEN = frozenset({"pending_approval", "executing"})
#: Statuses answered as an error result: the action did not (and will not) happen.
REFUSED = frozenset({"denied", "rejected", "expired", "failed"})
#: How often a waiting call re-reads its decision (a change of this process wakes it at once).
POLL_SECONDS = 0.25
#: How often a waiting call tells the client it is still waiting.
PROGRESS_SECONDS = 1.0


class Front:
    """The handlers of Warden's MCP server over one runtime."""

    def __init__(self, runtime: Runtime, caller: Caller, waits: Waits) -> None:
        self.runtime = runtime
        self.caller = caller
        self.waits = waits

    def server(self) -> Server[Any]:
        return Server(
            "warden", version="1.0", title="Warden",
            instructions=("Every tool here is an action Warden governs: it runs only if Warden's policies "
                          "allow it, or once a person approves it. Denials come with the reasons; correct "
                          f"what they name and call again. {STATUS_TOOL} tells where an action stands."),
            on_list_tools=self.list_tools, on_call_tool=self.call_tool,
        )

    async def _agent(self, ctx: ServerRequestContext[Any, Any]) -> Agent:
        agent = await self.caller(ctx)
        if agent is None:
            raise MCPError(INVALID_PARAMS, "no agent: the token is unknown or was revoked")
        return agent

    # ---------------------------------------------------------------- tools/list

    async def list_tools(self, ctx: ServerRequestContext[Any, Any],
                         _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        agent = await self._agent(ctx)
        tools = [
            types.Tool(name=spec.name, title=spec.summary, description=description(spec),
                       input_schema=input_schema(spec, self.waits),
                       annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=not spec.reversible,
                                                         open_world_hint=True))
            for spec in self.runtime.registry.specs.values() if agent.may_use(spec.name)
        ]
        tools.append(types.Tool(name=STATUS_TOOL, title="Where an action stands", description=STATUS_DESCRIPTION,
                                input_schema=STATUS_SCHEMA,
                                annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False)))
        return types.ListToolsResult(tools=tools)

    # ---------------------------------------------------------------- tools/call

    async def call_tool(self, ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        agent = await self._agent(ctx)
        try:
            if params.name == STATUS_TOOL:
                decision_id, wait = status_call(params.arguments, self.waits)
                return await self._status(ctx, agent, decision_id, wait)
            return await self._act(ctx, agent, params.name, params.arguments)
        except BadArguments as exc:
            return _error(f"The arguments do not fit {params.name}: {_field_errors(exc.errors)}. "
                          "Correct them and call again.", {"errors": exc.errors})
        except DBAPIError:
            log.exception("database error during an MCP call")
            return _error("Warden's database cannot be reached; nothing was recorded or executed. "
                          "Try again later with the same packet_id.")

    async def _act(self, ctx: ServerRequestContext[Any, Any], agent: Agent, tool: str,
                   arguments: dict[str, Any] | None) -> types.CallToolResult:
        spec = self.runtime.registry.spec(tool)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"unknown tool: {shown(tool)}")
        call = split_call(spec, arguments, self.waits)
        try:
            packet = Packet.model_validate(call.packet(agent.name, tool))
        except ValidationError as exc:
            raise BadArguments("the packet does not validate", [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)]) from exc
        try:
            decision = await self.runtime.gateway.submit_async(agent, packet)
        except (ToolNotAllowed, UnknownTool) as exc:  # recorded as a refusal; invisible all the same
            raise MCPError(INVALID_PARAMS, f"unknown tool: {shown(tool)}") from exc
        except PipelineError as exc:
            errors = exc.payload().get("errors")
            detail = f": {_field_errors(errors)}" if errors else ""
            return _error(f"Refused before any decision ({exc.code}): {exc.message}{detail}. Nothing was "
                          "recorded as an action; correct the call and try again.",
                          {"code": exc.code, **exc.payload()})
        if decision.status in OPEN and call.wait > 0:
            decision = await self._wait(ctx, decision, call.wait)
        return result(decision, tool)

    async def _status(self, ctx: ServerRequestContext[Any, Any], agent: Agent, decision_id: str,
                      wait: float) -> types.CallToolResult:
        gateway = self.runtime.gateway
        if await asyncio.to_thread(gateway.decision_agent, decision_id) != agent.name:
            return _error(f"No decision {shown(decision_id)} of yours.")
        try:
            decision = await asyncio.to_thread(gateway.get, decision_id)
        except DecisionNotFound:
            return _error(f"No decision {shown(decision_id)} of yours.")
        if decision.status in OPEN and wait > 0:
            decision = await self._wait(ctx, decision, wait)
        tool = await asyncio.to_thread(_tool_of, self.runtime, decision_id)
        return result(decision, tool)

    async def _wait(self, ctx: ServerRequestContext[Any, Any], decision: Decision, seconds: float) -> Decision:
        """Until the decision leaves `OPEN` or `seconds` pass; a progress notification every second
        (when the client asked for progress), saying what it waits for."""
        assert decision.decision_id is not None
        started = time.monotonic()
        deadline = started + seconds
        next_progress = started
        while decision.status in OPEN:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_progress:
                await ctx.session.report_progress(round(now - started, 3), seconds, _waiting_for(decision))
                next_progress = now + PROGRESS_SECONDS
            await self.runtime.changes.wait(decision.decision_id, min(POLL_SECONDS, deadline - now))
            decision = await asyncio.to_thread(self.runtime.gateway.get, decision.decision_id)
        return decision


def _tool_of(runtime: Runtime, decision_id: str) -> str:
    with read_only(runtime.db.connect()) as conn:
        found = conn.execute(select(decisions.c.tool).where(decisions.c.decision_id == decision_id)).scalar_one()
    return str(found)


def _waiting_for(decision: Decision) -> str:
    if decision.status == "executing":
        return "allowed; waiting for the system to confirm the execution"
    approval = decision.approval
    if approval is None:
        return "waiting for an approver"
    have = len(approval.approvals)
    return f"waiting for approval by {approval.count - have} more {approval.required_role}(s)"


def _field_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])) or 'arguments'}: {e.get('msg', 'invalid')}"
                     for e in errors[:10])


def _error(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured,
                                is_error=True)


def _reasons(decision: Decision) -> str:
    enforced = [r for r in decision.reasons if r.enforced]
    if not enforced:
        return ""
    return " Reasons: " + " ".join(f"{r.message.rstrip('.')} ({r.policy}.{r.rule})." for r in enforced)


def result(decision: Decision, tool: str) -> types.CallToolResult:
    """A decision as a tool result: what happened in words, and the decision itself as structure."""
    ref = f"decision {decision.decision_id}"
    execution = decision.execution or {}
    status = decision.status
    if status == "executed":
        summary = json.dumps(execution.get("summary", {}), sort_keys=True)
        text = (f"Executed {tool}: {execution.get('external_id')} ({ref}, risk {decision.risk.name}). "
                f"The system answered: {summary}")
    elif status == "pending_approval":
        approval = decision.approval
        who = (f"{approval.count} {approval.required_role}(s) before {approval.expires_at.isoformat()}"
               if approval else "an approver")
        text = (f"Waiting for approval by {who} ({ref}). Nothing has happened yet. Call {STATUS_TOOL} "
                f"with decision_id {decision.decision_id} (and wait) to learn the outcome.{_reasons(decision)}")
    elif status == "executing":
        text = (f"Allowed; {tool} is being executed ({ref}). Call {STATUS_TOOL} with decision_id "
                f"{decision.decision_id} to see what the system answered.")
    elif status == "drafted":
        text = (f"Drafted, not executed: your autonomy level lets you propose {tool}, not run it ({ref})."
                f"{_reasons(decision)}")
    elif status == "denied":
        text = f"Denied: Warden did not run {tool} ({ref}).{_reasons(decision)}"
    elif status == "rejected":
        text = f"Rejected by an approver: {tool} was not run ({ref}).{_reasons(decision)}"
    elif status == "expired":
        text = f"Expired: nobody approved {tool} in time, so it was not run ({ref}).{_reasons(decision)}"
    elif status == "failed":
        error = execution.get("error") or {}
        what = error.get("message") or error.get("code") or "the system refused it"
        text = f"Allowed, but the execution of {tool} failed: {what} ({ref})."
    else:
        text = f"{tool}: {status} ({ref}).{_reasons(decision)}"
    return types.CallToolResult(content=[types.TextContent(text=text)],
                                structured_content=decision.model_dump(mode="json"),
                                is_error=status in REFUSED)
