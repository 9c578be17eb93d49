"""The connector interface: what every external system's module declares and implements.

A connector module (`connectors/stripe.py`, `shopify.py`, `crm.py`) declares its tools as
`ToolSpec`s and implements `Connector.execute`. The gateway never calls an external API any other
way: the outbox worker calls `execute(tool, params, idempotency_key=decision_id)`.

Errors a connector raises, and what the worker does with them:

    ConnectorError
     ├ TransientError          retry with exponential backoff and jitter (honouring `retry_after`)
     │  └ UnknownOutcomeError  the request may have reached the provider and no answer came back
     │                         (a timeout, a connection dropped mid-answer): before any new call,
     │                         the outbox asks the provider what happened (`reconcile`)
     └ PermanentError          record the execution as failed; never retry
        └ IdempotencyConflictError  the provider holds the key for another request: failed,
                                    with an incident of its own

Anything else a connector raises is treated as transient (it might have been a network blip),
bounded by the worker's attempt limit.

Besides `execute`, a connector may offer (the registry looks for them, as for `execute_async`):

    reconcile(tool, params, *, idempotency_key, first_attempt_at) -> ExecutionResult | None
        what the provider shows for this key: the effect (`reconciled=True`), or None when the
        provider shows none (only then is the call sent again); raises a ConnectorError when it
        cannot tell
    check() -> str
        a read-only call with the configured credentials (`warden connectors check`, `/readyz`);
        returns what it saw, raises a ConnectorError when it fails

A tool's compensation (`ToolSpec.compensator`) turns an executed action into the action that
undoes it: a `Compensation` (another tool of the catalog and its params), or `NotReversible`
saying why not.

Setting connectors up can fail too, before any call: `ConnectorConfigError` (a mode that is not
available, a bad sandbox fault spec). The gateway refuses to start with its message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from dsl.model import Risk

Mode = Literal["sandbox", "live"]


@dataclass(frozen=True)
class Compensation:
    """The action that undoes an executed one: a tool of the catalog and its params."""

    tool: str
    params: dict[str, Any]


class NotReversible(Exception):
    """An executed action that cannot be undone through the API; the message says why."""


#: (the executed action's params, the provider's id for it, its recorded summary) → the
#: compensating action; raises NotReversible
Compensator = Callable[[Mapping[str, Any], str, Mapping[str, Any]], Compensation]


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
    compensator: Compensator | None = field(default=None, compare=False, repr=False)

    def compensate(self, params: Mapping[str, Any], external_id: str,
                   summary: Mapping[str, Any]) -> Compensation:
        """The action that undoes an execution of this tool; NotReversible says why not."""
        if not self.reversible or self.compensator is None:
            why = self.compensation or "the tool declares no compensation"
            raise NotReversible(f"{self.name} cannot be undone through Warden: {why}")
        return self.compensator(params, external_id, summary)

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
    reconciled: bool = False  # found at the provider after an unknown outcome, not sent again
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


class UnknownOutcomeError(TransientError):
    """The request may have reached the provider, and no answer came back: it may or may not
    have taken effect. Never re-sent blindly: reconciliation asks the provider first."""

    def __init__(self, message: str, *, code: str = "outcome_unknown",
                 retry_after: float | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)


class PermanentError(ConnectorError):
    """Retrying cannot help: the API refused the request (4xx other than 429)."""


class IdempotencyConflictError(PermanentError):
    """The provider already holds this idempotency key for a different request."""

    def __init__(self, message: str, *, code: str = "idempotency_conflict") -> None:
        super().__init__(message, code=code)


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


class Reconciles(Protocol):
    """A connector that can say what the provider holds for an idempotency key."""

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        """The effect of the call keyed `idempotency_key` (first attempted at `first_attempt_at`,
        epoch seconds) if the provider shows one, `reconciled=True`; None if it shows none."""
        ...


class Checks(Protocol):
    """A connector that can make a read-only call with its credentials."""

    def check(self) -> str:
        """What a read-only call saw ("balance readable: usd, eur"); a ConnectorError if it
        failed."""
        ...
