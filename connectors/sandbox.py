"""Sandbox mode: connectors that never touch the network, answer like the real API, and record
every call in the durable call ledger (`connectors.call_ledger`) keyed by idempotency key.

What a sandbox call does, in order:

    1. an injected fault (`connectors.faults`), if one is due: raise, record nothing
    2. a magic value in the params (below): raise, record nothing
    3. record the call and build its answer, in one call-ledger transaction
    4. sleep `latency_ms` (the answer travelling back: a crash here leaves an executed call
       whose answer the caller never saw, which its retry with the same key must replay);
       a failure in 1 or 2 sleeps the same before it is raised

Magic values, so that a real HTTP test can make a single packet fail without any config. They
are matched in each tool's id fields (listed per connector: `charge` for `stripe.refund`,
`destination` for `stripe.transfer`, `variant_id` for `shopify.update_price`, `record_id` for
`crm.log_note`, any element of `contact_ids`, ...), anywhere in the value:

    sandbox_declined     PermanentError, the tool's refusal code (stripe.refund: card_declined)
    sandbox_refunded     stripe.refund only: PermanentError(code="charge_already_refunded")
    sandbox_unavailable  TransientError(code="service_unavailable", retry_after=1)
    sandbox_timeout      TransientError(code="timeout")

    e.g. {"charge": "ch_sandbox_declined", "amount": 500, "currency": "usd"}
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import string
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from connectors.base import (
    ConnectorError,
    ExecutionResult,
    IdempotencyConflictError,
    Mode,
    PermanentError,
    ToolSpec,
    TransientError,
)
from connectors.call_ledger import Answer, LedgerView, SandboxCallLedger, StoredAnswer, params_hash
from connectors.faults import SandboxFaults, fault_error

def _answer(outcome: StoredAnswer | ConnectorError) -> ExecutionResult:
    if isinstance(outcome, ConnectorError):
        raise outcome
    return ExecutionResult(external_id=outcome.external_id, summary=outcome.summary,
                           replayed=outcome.replayed, response=outcome.response)


# ---------------------------------------------------------------------------------- object ids

_ALPHABET = string.ascii_letters + string.digits
# The sandbox's object ids need to be unique, not secret: a generator seeded from the OS (once,
# and again in a child after fork) spares a system call per id.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_object_id(prefix: str, length: int = 24) -> str:
    """A Stripe-style object id: `re_` + 24 letters and digits."""
    number = _ids.getrandbits(length * 6)  # 62**24 < 2**144: one draw, then base 62
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return prefix + "".join(digits)


def new_number() -> int:
    """A fresh 13-digit object number, as Shopify and HubSpot ids are."""
    return 1_000_000_000_000 + _ids.randrange(9_000_000_000_000)


def stable_number(kind: str, value: object) -> int:
    """The same 13-digit number for the same (kind, value): an id for a name sent by a caller."""
    digest = hashlib.sha256(f"{kind}:{value}".encode()).digest()
    return 1_000_000_000_000 + int.from_bytes(digest[:8], "big") % 9_000_000_000_000


# ---------------------------------------------------------------------------------- connectors

_MAGIC_TRANSIENT = "sandbox_unavailable"
_MAGIC_TIMEOUT = "sandbox_timeout"
_MAGIC_DECLINED = "sandbox_declined"


class SandboxConnector:
    """Base of the sandbox connectors: faults, magic values, the call ledger, latency.

    A subclass names its system and tools, the id fields where magic values are looked for,
    the code of a refusal per tool, and builds each tool's answer in `answer`.
    """

    name: ClassVar[str]
    tools: ClassVar[tuple[ToolSpec, ...]]
    magic_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    declined_codes: ClassVar[Mapping[str, str]] = {}
    mode: Mode = "sandbox"

    def __init__(self, ledger: SandboxCallLedger, *, faults: SandboxFaults | None = None,
                 latency_ms: float = 0.0) -> None:
        self.ledger = ledger
        self.faults = faults if faults is not None else SandboxFaults()
        self.latency = max(0.0, latency_ms) / 1000.0
        self._tool_names = frozenset(spec.name for spec in self.tools)

    def execute(self, tool: str, params: Mapping[str, Any], *,
                idempotency_key: str) -> ExecutionResult:
        outcome = self._act(tool, params, idempotency_key)
        if self.latency:
            time.sleep(self.latency)
        return _answer(outcome)

    async def execute_async(self, tool: str, params: Mapping[str, Any], *,
                            idempotency_key: str) -> ExecutionResult:
        """`execute` on an event loop: the call ledger's short local transaction runs inline,
        the latency is awaited."""
        outcome = self._act(tool, params, idempotency_key)
        if self.latency:
            await asyncio.sleep(self.latency)
        return _answer(outcome)

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        """What the sandbox holds for the key: its recorded answer (`reconciled=True`), or None
        when no call with the key was recorded. A key used for another call is a conflict."""
        stored = self.ledger.answer(idempotency_key)
        if stored is None:
            return None
        if stored.params_hash != params_hash(tool, params):
            raise IdempotencyConflictError(
                f"idempotency key {idempotency_key!r} was already used for a {stored.tool} call with "
                "other params", code="idempotency_mismatch")
        return ExecutionResult(external_id=stored.external_id, summary=stored.summary,
                               replayed=True, reconciled=True, response=stored.response)

    def check(self) -> str:
        return "sandbox: no network, every call recorded in the call ledger"

    def _act(self, tool: str, params: Mapping[str, Any], idempotency_key: str) -> StoredAnswer | ConnectorError:
        """Steps (1) to (3): the error to raise once the latency has passed, or the answer."""
        if tool not in self._tool_names:
            raise PermanentError(f"{self.name} has no tool {tool!r}", code="unknown_tool")
        if not idempotency_key:
            raise PermanentError("an idempotency key is required", code="idempotency_key_missing")
        # (1) injected faults, (2) magic values: both before anything is recorded; a failure
        # takes as long as an answer (a timeout: the whole latency, then no answer at all)
        try:
            rule = self.faults.take(tool)
            if rule is not None:
                raise fault_error(tool, rule)
            self.check_magic(tool, params)
        except ConnectorError as exc:
            return exc
        # (3) record and answer in one transaction; (4) the answer travels back
        return self.ledger.record(idempotency_key, tool, params, lambda view: self.answer(tool, params, view))

    def magic_values(self, tool: str, params: Mapping[str, Any]) -> Iterator[str]:
        for field_name in self.magic_fields.get(tool, ()):
            value = params.get(field_name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    yield item

    def check_magic(self, tool: str, params: Mapping[str, Any]) -> None:
        for value in self.magic_values(tool, params):
            if _MAGIC_DECLINED in value:
                code = self.declined_codes.get(tool, "declined")
                raise PermanentError(f"{tool}: {value!r} was refused ({code})", code=code)
            if _MAGIC_TRANSIENT in value:
                raise TransientError(f"{tool}: the service is unavailable, retry later",
                                     code="service_unavailable", retry_after=1.0)
            if _MAGIC_TIMEOUT in value:
                raise TransientError(f"{tool}: the request timed out", code="timeout")

    def answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        """The real API's answer to this call (runs inside the recording transaction)."""
        raise NotImplementedError
