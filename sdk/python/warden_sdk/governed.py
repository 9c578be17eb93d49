"""`governed`: a Python function that runs only if Warden allows it.

Agent frameworks call plain Python functions as tools. `governed` puts Warden in front of one:
each call becomes a packet for a catalog tool, built from the call's arguments, and the function
body runs only on the decision's say-so. Warden acts through its own connectors, so there are
two honest ways to govern a function, and the choice is explicit:

``mode="execute"`` (the default): Warden performs the action.
    The call is `client.act(tool, params)`: decided under the policies, recorded in the audit
    log, sent to an approver when the policies say so (waiting up to `timeout`), and executed by
    Warden's connector. The function body runs afterwards, only when the status is `executed`,
    and must not perform the action again: it turns the outcome into what the caller wants (a
    sentence for the model, say). If it declares a `decision` parameter it receives the
    `Decision`; that parameter is hidden from the wrapper's signature, so the framework does not
    offer it to the model. Refusals raise `Denied`, `Rejected`, `Expired` or `Failed`;
    an A0 agent's `drafted` raises `ApprovalRequired` (nothing ran).

``mode="gate"``: the function performs the action; Warden only says whether it may.
    The call is `client.evaluate(tool, params)`, a dry run: the function runs only when the
    answer is `allowed`. `denied` raises `Denied`; `pending_approval` or `drafted` raises
    `ApprovalRequired` (a dry run cannot be approved: submit the packet for that). A dry run
    records nothing, so Warden's log does not show that the function ran: use it for effects
    Warden has no connector for, and prefer `execute` wherever it does.

`params_from` (and `evidence_from`, `claims_from`, `context_from`) take the function's own
arguments and return that part of the packet; without `params_from` the params are the call's
arguments by name. A sync function needs a `WardenClient`, an `async def` an `AsyncWardenClient`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, cast

from warden_sdk.aio import AsyncWardenClient
from warden_sdk.client import WardenClient
from warden_sdk.errors import ApprovalRequired, outcome_error
from warden_sdk.models import Decision

__all__ = ["governed"]

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["execute", "gate"]
PartOf = Callable[..., Any] | None


class _Call:
    """How one decorated function turns its arguments into a packet's parts."""

    def __init__(self, fn: Callable[..., Any], params_from: PartOf, evidence_from: PartOf,
                 claims_from: PartOf, context_from: PartOf) -> None:
        self.signature = inspect.signature(fn)
        self.takes_decision = "decision" in self.signature.parameters
        self.public = self.signature.replace(parameters=[
            p for name, p in self.signature.parameters.items() if name != "decision"])
        self.params_from, self.evidence_from = params_from, evidence_from
        self.claims_from, self.context_from = claims_from, context_from

    def packet(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
        bound = self.public.bind(*args, **kwargs)
        bound.apply_defaults()
        params = self.params_from(*args, **kwargs) if self.params_from else dict(bound.arguments)
        parts: dict[str, Any] = {}
        for name, part in (("evidence", self.evidence_from), ("claims", self.claims_from),
                           ("context", self.context_from)):
            if part is not None:
                parts[name] = part(*args, **kwargs)
        return params, parts

    def allowed(self, decision: Decision, mode: Mode) -> None:
        """Raise unless the decision lets the body run."""
        wanted = "executed" if mode == "execute" else "allowed"
        if decision.status == wanted:
            return
        if decision.status in ("pending_approval", "drafted"):
            raise ApprovalRequired(decision, f"{decision.status}: the function did not run; {decision.explain()}")
        if decision.status in ("denied", "rejected", "expired", "failed"):
            raise outcome_error(decision)
        raise ApprovalRequired(decision, f"{decision.status}: the function did not run")

    def arguments(self, kwargs: dict[str, Any], decision: Decision) -> dict[str, Any]:
        return {**kwargs, "decision": decision} if self.takes_decision else kwargs


def governed(client: WardenClient | AsyncWardenClient, tool: str, *, params_from: PartOf = None,
             evidence_from: PartOf = None, claims_from: PartOf = None, context_from: PartOf = None,
             mode: Mode = "execute", timeout: float | None = 300.0) -> Callable[[F], F]:
    """Govern a function by Warden's decision on `tool` (see the module for the two modes)."""
    if mode not in ("execute", "gate"):
        raise ValueError(f"mode must be 'execute' or 'gate', not {mode!r}")

    def decorate(fn: F) -> F:
        call = _Call(fn, params_from, evidence_from, claims_from, context_from)
        if inspect.iscoroutinefunction(fn):
            if not isinstance(client, AsyncWardenClient):
                raise TypeError(f"{fn.__qualname__} is async: govern it with an AsyncWardenClient")
            async_client = client

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                params, parts = call.packet(args, kwargs)
                if mode == "execute":
                    decision = await async_client.submit(tool, params, **parts)
                    if not decision.final and decision.decision_id is not None:
                        decision = await async_client.wait(decision.decision_id, timeout)
                else:
                    decision = await async_client.evaluate(tool, params, **parts)
                call.allowed(decision, mode)
                return await fn(*args, **call.arguments(kwargs, decision))

            run_async.__signature__ = call.public  # type: ignore[attr-defined]
            return cast(F, run_async)
        if not isinstance(client, WardenClient):
            raise TypeError(f"{fn.__qualname__} is not async: govern it with a WardenClient")
        sync_client = client

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            params, parts = call.packet(args, kwargs)
            if mode == "execute":
                decision = sync_client.submit(tool, params, **parts)
                if not decision.final and decision.decision_id is not None:
                    decision = sync_client.wait(decision.decision_id, timeout)
            else:
                decision = sync_client.evaluate(tool, params, **parts)
            call.allowed(decision, mode)
            return fn(*args, **call.arguments(kwargs, decision))

        run.__signature__ = call.public  # type: ignore[attr-defined]
        return cast(F, run)

    return decorate
