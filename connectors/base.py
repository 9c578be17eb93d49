"""The connector interface: what every external system's module declares and implements.

A connector module (`connectors/stripe.py`, `shopify.py`, `crm.py`) declares its tools as
`ToolSpec`s and implements `Connector.execute`. The gateway never calls an external API any other
way: the outbox worker calls `execute(tool, params, idempotency_key=decision_id)`.

Errors a connector raises, and what the worker does with them:

    ConnectorError
     ├ TransientError   retry with exponential backoff and jitter (honouring `retry_after`)
     └ PermanentError   record the execution as failed; never retry

Anything else a connector raises is treated as transient (it might have been a network blip),
bounded by the worker's attempt limit.

Setting connectors up can fail too, before any call: `ConnectorConfigError` (a mode that is not
available, a bad sandbox fault spec). The gateway refuses to start with its message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from dsl.model import Risk

Mode = Literal["sandbox", "live"]


@dataclass(frozen=True)
class ToolSpec:
    """One tool of the catalog (DESIGN.md, "Tool catalog").

    `params` validates and documents the tool's parameters (served as JSON Schema by
    `GET /v1/tools`); `base_risk` is the tool's base tier; `reversible` says whether an executed
    action can be undone, and `compensation` names how (e.g. "stripe.refund of the transfer").
    """

    name: str
    params: type[BaseModel]
    base_risk: Risk
    summary: str
    reversible: bool
    compensation: str | None = None

    @property
    def connector(self) -> str:
        return self.name.split(".", 1)[0]

    def params_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()


@dataclass(frozen=True)
class ExecutionResult:
    """What the external system answered: its id for the object created or changed, and a short
    summary safe to record in the audit log (ids, amounts, statuses; never credentials)."""

    external_id: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    replayed: bool = False  # the idempotency key had been seen: this is the first answer again
    #: the API's whole answer, as the external system returned it; may be large (a listing's
    #: HTML): record `summary` in the audit log, not this
    response: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class ConnectorError(Exception):
    """The connector could not carry out the action."""

    def __init__(self, message: str, *, code: str = "connector_error") -> None:
        super().__init__(message)
        self.code = code


class TransientError(ConnectorError):
    """Worth retrying: timeouts, 429, 5xx. `retry_after` (seconds) when the API said so."""

    def __init__(
        self, message: str, *, code: str = "transient", retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying cannot help: the API refused the request (4xx other than 429)."""


class ConnectorConfigError(Exception):
    """The connectors cannot be set up as configured (raised at start-up, never by a call)."""


class Connector(Protocol):
    """One external system, in one mode."""

    @property
    def name(self) -> str:
        """The system's name, e.g. "stripe"."""
        ...

    @property
    def mode(self) -> Mode: ...

    @property
    def tools(self) -> tuple[ToolSpec, ...]: ...

    def execute(
        self, tool: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> ExecutionResult:
        """Carry out `tool` with validated `params`. The same `idempotency_key` twice must not
        act twice: the second call returns the first call's result (`replayed=True`)."""
        ...


class AsyncConnector(Connector, Protocol):
    """A connector that can also be awaited on an event loop without a thread of its own (the
    request path's first attempt; `Registry.execute_async` uses `execute_async` when a connector
    has it, else runs `execute` on a thread). The same contract as `execute`."""

    async def execute_async(
        self, tool: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> ExecutionResult: ...
