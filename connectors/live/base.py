"""The base of every live connector: a system's calls written once as coroutines, run on the
process's connector loop (`connectors.live.runner`) with the gateway-side deadline.

A subclass implements three coroutines and `aclose`:

    call(tool, params, idempotency_key)   carry the action out; the idempotency key is sent
                                          wherever the API takes one (else: read before write,
                                          or a write that can safely be applied twice)
    find(tool, params, idempotency_key,   what the provider shows for that key: the effect, or
         first_attempt_at)                None when it shows none (reconciliation)
    read_only()                           a read-only call with the credentials (`connectors check`)

and raises the connector errors of `connectors.base` (transient, unknown outcome, permanent,
idempotency conflict), with messages scrubbed of credentials (`connectors.live.http.redact`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from connectors.base import ExecutionResult, Mode, PermanentError, ToolSpec
from connectors.live.runner import CallRunner
from connectors.live.throttle import OnWait


class LiveConnector:
    """One provider, for real."""

    name: ClassVar[str]
    tools: ClassVar[tuple[ToolSpec, ...]]
    mode: Mode = "live"

    def __init__(self, *, runner: CallRunner, timeout: float, on_wait: OnWait | None = None) -> None:
        if timeout <= 0:
            raise ValueError("a live connector needs a positive timeout")
        self.runner = runner
        self.timeout = timeout
        self.on_wait = on_wait
        self._tool_names = frozenset(spec.name for spec in self.tools)

    # -- what a subclass implements ------------------------------------------------------------

    async def call(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        raise NotImplementedError

    async def find(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                   first_attempt_at: float) -> ExecutionResult | None:
        raise NotImplementedError

    async def read_only(self) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the clients (on the runner's loop)."""

    # -- the Connector interface ---------------------------------------------------------------

    def _checked(self, tool: str, idempotency_key: str) -> None:
        if tool not in self._tool_names:
            raise PermanentError(f"{self.name} has no tool {tool!r}", code="unknown_tool")
        if not idempotency_key:
            raise PermanentError("an idempotency key is required", code="idempotency_key_missing")

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        self._checked(tool, idempotency_key)
        return self.runner.run(lambda: self.call(tool, params, idempotency_key=idempotency_key),
                               timeout=self.timeout, what=tool)

    async def execute_async(self, tool: str, params: Mapping[str, Any], *,
                            idempotency_key: str) -> ExecutionResult:
        self._checked(tool, idempotency_key)
        return await self.runner.run_async(
            lambda: self.call(tool, params, idempotency_key=idempotency_key), timeout=self.timeout, what=tool)

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        self._checked(tool, idempotency_key)
        found = self.runner.run(
            lambda: self.find(tool, params, idempotency_key=idempotency_key, first_attempt_at=first_attempt_at),
            timeout=self.timeout, what=f"{tool} (reconciliation)")
        return None if found is None else dataclasses.replace(found, reconciled=True)

    def check(self) -> str:
        return self.runner.run(self.read_only, timeout=self.timeout, what=f"{self.name} check")


class Unconfigured:
    """A system whose live credentials are not set: its tools are known (policies name them) and
    every call is refused, before anything is sent."""

    mode: Mode = "live"

    def __init__(self, name: str, tools: tuple[ToolSpec, ...], why: str) -> None:
        self.name = name
        self.tools = tools
        self.why = why

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        raise PermanentError(f"{tool}: {self.name} is not configured ({self.why})", code="not_configured")

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        return None  # nothing can have been sent

    def check(self) -> str:
        raise PermanentError(f"{self.name} is not configured ({self.why})", code="not_configured")
