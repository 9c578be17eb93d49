"""Connectors: the only way Warden acts on the outside world (Stripe, Shopify, the CRM).

    base.py      the interface: ToolSpec, ExecutionResult, Connector, the error tree
    fields.py    field types shared by params models (money, currency, ids)
    stripe.py    stripe.refund, stripe.transfer, stripe.payout
    shopify.py   shopify.update_price, .publish_listing, .create_discount, .adjust_inventory
    crm.py       crm.log_note, .upsert_contact, .update_deal_stage, .delete_contact,
                 .send_business_case
    sandbox.py   sandbox mode: the base of the sandbox connectors (no network, real-shaped
                 answers, magic values that fail a call)
    call_ledger.py  the sandbox's durable record of every call, keyed by idempotency key
    faults.py    fault injection for sandbox tests (WARDEN_SANDBOX_FAULTS)
    registry.py  Registry (specs, validate, execute) and build_registry(mode, ...)

Live mode (the real APIs, credentials from the environment) is not available yet:
`build_registry("live")` says so.
"""

from connectors.base import (
    Connector,
    ConnectorConfigError,
    ConnectorError,
    ExecutionResult,
    PermanentError,
    ToolSpec,
    TransientError,
)
from connectors.faults import FaultSpecError, SandboxFaults
from connectors.registry import (
    CATALOG,
    ParamsError,
    Registry,
    build_registry,
    catalog_tool_names,
)
from connectors.call_ledger import CallRecord, SandboxCallLedger

__all__ = [
    "CATALOG",
    "CallRecord",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "ExecutionResult",
    "FaultSpecError",
    "ParamsError",
    "PermanentError",
    "Registry",
    "SandboxCallLedger",
    "SandboxFaults",
    "ToolSpec",
    "TransientError",
    "build_registry",
    "catalog_tool_names",
]
