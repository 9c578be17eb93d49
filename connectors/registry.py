"""The tool registry: every tool of the catalog, its params model and the connector behind it.

    registry = build_registry("sandbox", data_dir=Path("warden-data"))
    params = registry.validate("stripe.refund", raw)          # ParamsError → HTTP 422
    result = registry.execute("stripe.refund", params, idempotency_key=decision_id)

Warden's own connectors (Stripe, Shopify, the CRM) are registered exactly as another connector
would be: `Registry(connectors)` takes anything that follows `connectors.base.Connector`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from connectors import crm, shopify, stripe
from connectors.base import (
    Compensation,
    Connector,
    ConnectorConfigError,
    ConnectorError,
    ExecutionResult,
    Mode,
    NotReversible,
    PermanentError,
    ToolSpec,
)
from connectors.call_ledger import SandboxCallLedger
from connectors.faults import SandboxFaults
from connectors.live.base import Unconfigured
from connectors.live.config import LiveConfig
from connectors.live.runner import CallRunner
from connectors.live.throttle import OnWait
from connectors.sandbox import SandboxConnector

#: The sandbox call ledger's file name inside the gateway's data directory.
SANDBOX_CALLS_FILE = "sandbox-calls.db"

#: The shipped catalog, in DESIGN.md's order; the sandbox connector class of each system.
CATALOG: tuple[ToolSpec, ...] = (*stripe.TOOLS, *shopify.TOOLS, *crm.TOOLS)
SANDBOX_CONNECTORS: tuple[type[SandboxConnector], ...] = (
    stripe.StripeSandbox, shopify.ShopifySandbox, crm.CrmSandbox)


def catalog_tool_names() -> frozenset[str]:
    """The names of the shipped tools, without setting up any connector (for the linter)."""
    return frozenset(spec.name for spec in CATALOG)


@dataclass(frozen=True)
class ConnectorCheck:
    """What a connector's read-only call showed: `ok`, and what it saw or why it failed."""

    connector: str
    ok: bool
    detail: str
    code: str | None = None


class ParamsError(ValueError):
    """A tool's params do not validate. `errors` is JSON-able: `[{"loc": [...], "msg": ...,
    "type": ...}]`, pydantic's list without the input values (they may be large or secret)."""

    def __init__(self, tool: str, errors: list[dict[str, Any]]) -> None:
        self.tool = tool
        self.errors = errors
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(part) for part in first["loc"]) or "params"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{tool}: {where}: {first['msg']}{more}")

    @classmethod
    def from_validation(cls, tool: str, exc: ValidationError) -> ParamsError:
        errors = [{"loc": [p if isinstance(p, int) else str(p) for p in error["loc"]],
                   "msg": str(error["msg"]), "type": str(error["type"])}
                  for error in exc.errors(include_url=False, include_input=False)]
        return cls(tool, errors)


class Registry:
    """The tools of some connectors, all in one mode; safe to share between threads."""

    def __init__(self, connectors: Iterable[Connector], *,
                 call_ledger: SandboxCallLedger | None = None,
                 faults: SandboxFaults | None = None,
                 runner: CallRunner | None = None) -> None:
        self.connectors: tuple[Connector, ...] = tuple(connectors)
        if not self.connectors:
            raise ConnectorConfigError("a registry needs at least one connector")
        modes = {c.mode for c in self.connectors}
        if len(modes) != 1:
            raise ConnectorConfigError(f"connectors in different modes: {sorted(modes)}")
        self.mode: Mode = modes.pop()
        specs: dict[str, ToolSpec] = {}
        owners: dict[str, Connector] = {}
        for connector in self.connectors:
            for spec in connector.tools:
                if spec.name in specs:
                    raise ConnectorConfigError(f"tool {spec.name!r} is declared twice")
                specs[spec.name] = spec
                owners[spec.name] = connector
        self.specs: Mapping[str, ToolSpec] = MappingProxyType(specs)
        self._owners = owners
        self._known = frozenset(specs)
        self.call_ledger = call_ledger  # sandbox mode: every call, for tests and operators
        self.faults = faults
        self.runner = runner  # live mode: the loop the calls run on, closed with the registry

    def spec(self, name: str) -> ToolSpec | None:
        return self.specs.get(name)

    def known_tools(self) -> frozenset[str]:
        return self._known

    def validate(self, tool: str, params: Any) -> dict[str, Any]:
        """The params, validated and normalised (JSON-able; absent optional fields left out).
        Raises ParamsError, also for an unknown tool (`loc: ["tool"]`)."""
        spec = self.specs.get(tool)
        if spec is None:
            raise ParamsError(tool, [{"loc": ["tool"], "msg": f"unknown tool {tool!r}",
                                      "type": "unknown_tool"}])
        try:
            model = spec.params.model_validate(params)
        except ValidationError as exc:
            raise ParamsError.from_validation(tool, exc) from None
        return model.model_dump(mode="json", exclude_none=True)

    def execute(self, tool: str, params: Mapping[str, Any], *,
                idempotency_key: str) -> ExecutionResult:
        """Run `tool` through its connector. The params are validated again (the outbox runs
        what was stored): bad ones, or an unknown tool, are a PermanentError."""
        connector, clean = self._route(tool, params)
        return connector.execute(tool, clean, idempotency_key=idempotency_key)

    async def execute_async(self, tool: str, params: Mapping[str, Any], *,
                            idempotency_key: str) -> ExecutionResult:
        """`execute` on an event loop: awaited when the connector can be (`AsyncConnector`),
        else run on a thread."""
        connector, clean = self._route(tool, params)
        awaitable = getattr(connector, "execute_async", None)
        if awaitable is not None:
            result: ExecutionResult = await awaitable(tool, clean, idempotency_key=idempotency_key)
            return result
        return await asyncio.to_thread(connector.execute, tool, clean, idempotency_key=idempotency_key)

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        """What the provider holds for a call whose outcome is unknown: the effect
        (`reconciled=True`) or None when it shows none. A connector without `reconcile` answers
        None: its `execute` promises that the same key never acts twice, so sending is safe."""
        connector, clean = self._route(tool, params)
        finder = getattr(connector, "reconcile", None)
        if finder is None:
            return None
        found: ExecutionResult | None = finder(tool, clean, idempotency_key=idempotency_key,
                                               first_attempt_at=first_attempt_at)
        return found

    def check(self) -> dict[str, ConnectorCheck]:
        """A read-only call per connector with its credentials: what works."""
        results: dict[str, ConnectorCheck] = {}
        for connector in self.connectors:
            probe = getattr(connector, "check", None)
            if probe is None:
                results[connector.name] = ConnectorCheck(connector.name, True, "no check offered")
                continue
            try:
                results[connector.name] = ConnectorCheck(connector.name, True, str(probe()))
            except ConnectorError as exc:
                results[connector.name] = ConnectorCheck(connector.name, False, str(exc), exc.code)
            except Exception as exc:  # a check never raises: it reports
                results[connector.name] = ConnectorCheck(connector.name, False, type(exc).__name__, "unexpected_error")
        return results

    def compensation(self, tool: str, params: Mapping[str, Any], external_id: str,
                     summary: Mapping[str, Any]) -> Compensation:
        """The action that undoes an executed one (NotReversible says why there is none)."""
        spec = self.specs.get(tool)
        if spec is None:
            raise NotReversible(f"{tool} is not a tool of this gateway")
        compensation = spec.compensate(params, external_id, summary)
        if compensation.tool not in self.specs:
            raise NotReversible(f"{tool} is undone by {compensation.tool}, which this gateway does not have")
        return compensation

    def _route(self, tool: str, params: Mapping[str, Any]) -> tuple[Connector, dict[str, Any]]:
        connector = self._owners.get(tool)
        if connector is None:
            raise PermanentError(f"no tool {tool!r}", code="unknown_tool")
        try:
            return connector, self.validate(tool, params)
        except ParamsError as exc:
            raise PermanentError(str(exc), code="invalid_params") from None

    def close(self) -> None:
        if self.call_ledger is not None:
            self.call_ledger.close()
        if self.runner is not None:
            connectors = self.connectors

            async def close_clients() -> None:
                for connector in connectors:
                    closing = getattr(connector, "aclose", None)
                    if closing is not None:
                        await closing()

            self.runner.close(close_clients)


def build_registry(mode: str = "sandbox", *, data_dir: Path | None = None,
                   faults: str | SandboxFaults | None = None,
                   latency_ms: float = 0.0, live: LiveConfig | None = None,
                   on_wait: OnWait | None = None) -> Registry:
    """The shipped connectors in `mode`.

    sandbox: no network; calls are recorded in `<data_dir>/sandbox-calls.db` (in memory when
    `data_dir` is None); `faults` is a `SandboxFaults` or a spec string (`connectors.faults`,
    from WARDEN_SANDBOX_FAULTS); `latency_ms` delays every answer.
    live: the real APIs, as `live` configures them (a system it leaves None refuses every call:
    "not configured"); `on_wait` hears of every client-side rate-limit wait.
    """
    if mode == "live":
        return _live_registry(live if live is not None else LiveConfig(), on_wait)
    if mode != "sandbox":
        raise ConnectorConfigError(f"unknown connector mode {mode!r}: expected sandbox or live")
    if latency_ms < 0:
        raise ConnectorConfigError(f"sandbox latency must be 0 ms or more, not {latency_ms}")
    if isinstance(faults, str):
        faults = SandboxFaults.parse(faults)
    faults = faults if faults is not None else SandboxFaults()
    ledger = SandboxCallLedger(data_dir / SANDBOX_CALLS_FILE if data_dir is not None else None)
    connectors = [cls(ledger, faults=faults, latency_ms=latency_ms)
                  for cls in SANDBOX_CONNECTORS]
    return Registry(connectors, call_ledger=ledger, faults=faults)


def _live_registry(config: LiveConfig, on_wait: OnWait | None) -> Registry:
    # Imported here: the Stripe SDK and the HTTP stack load only when live mode is asked for.
    from connectors.live.crm import CrmLive
    from connectors.live.shopify import ShopifyLive
    from connectors.live.stripe import StripeLive

    if config.timeout_seconds <= 0:
        raise ConnectorConfigError(f"the connector timeout must be positive, not {config.timeout_seconds}")
    runner = CallRunner()
    timeout = config.timeout_seconds
    connectors: list[Connector] = [
        StripeLive(config.stripe, runner=runner, timeout=timeout, on_wait=on_wait) if config.stripe else
        Unconfigured("stripe", stripe.TOOLS, "set WARDEN_STRIPE_API_KEY or WARDEN_STRIPE_API_KEY_FILE"),
        ShopifyLive(config.shopify, runner=runner, timeout=timeout, on_wait=on_wait) if config.shopify else
        Unconfigured("shopify", shopify.TOOLS, "set shopify_shop and WARDEN_SHOPIFY_ACCESS_TOKEN (or _FILE)"),
        CrmLive(config.crm, runner=runner, timeout=timeout, on_wait=on_wait) if config.crm else
        Unconfigured("crm", crm.TOOLS, "set WARDEN_CRM_ACCESS_TOKEN or WARDEN_CRM_ACCESS_TOKEN_FILE"),
    ]
    return Registry(connectors, runner=runner)
