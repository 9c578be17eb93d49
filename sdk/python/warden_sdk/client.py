"""`WardenClient`: the synchronous client an agent acts through.

    client = WardenClient("http://127.0.0.1:8080", token, agent="refund-bot")
    decision = client.act("stripe.refund", {"charge": "ch_1", "amount": 2500, "currency": "usd"},
                          evidence={"reconciled": True}, claims={"refund_reconciled": "PASS"})

`submit`, `evaluate`, `get` and `wait` return the decision whatever its status (statuses are
data: `decision.raise_for_status()` turns a refusal into its exception); `act` returns only an
action that happened (`executed`, or `drafted` for an A0 agent, where nothing runs) and raises
`Denied`, `Rejected`, `Expired`, `Failed` or `StillPending` otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from warden_sdk.api import Call, Deadline, Settings, read_decision, read_json, read_text
from warden_sdk.errors import StillPending
from warden_sdk.models import Decision
from warden_sdk.packets import ClaimsArg, Packet
from warden_sdk.retries import Retries, retryable_error

__all__ = ["WardenClient"]


class WardenClient:
    """A synchronous client for one agent (its name and its token).

    `timeout` bounds each request (a long-poll gets its `wait` on top); `retries` says how often
    a dropped connection or a 502/503/504 is tried again: always with the same bytes, so a
    submitted packet keeps its `packet_id` and can never become a second decision.
    `http_client` lets the caller bring an `httpx.Client` (its own transport, proxies, TLS);
    its base URL is set to `base_url`.
    """

    def __init__(self, base_url: str, token: str, agent: str, *, timeout: float = 10.0,
                 retries: Retries | None = None, http_client: httpx.Client | None = None) -> None:
        self.settings = Settings(base_url.rstrip("/"), token, agent, timeout, retries or Retries())
        self._own = http_client is None
        self._http = http_client or httpx.Client()
        self._http.base_url = httpx.URL(self.settings.base_url)
        self._http.headers.update(self.settings.headers())

    @property
    def agent(self) -> str:
        return self.settings.agent

    # -- the agent's calls ---------------------------------------------------------------

    def submit(self, tool: str, params: Mapping[str, Any], *, evidence: Mapping[str, Any] | None = None,
               claims: ClaimsArg = None, context: Mapping[str, Any] | None = None,
               packet_id: str | None = None) -> Decision:
        """Send a packet (`POST /v1/actions`); the decision as it stands: final, or
        `pending_approval` / `executing`. A `packet_id` is generated when none is given."""
        packet = Packet(self.agent, tool, params, evidence=evidence, claims=claims, context=context,
                        packet_id=packet_id)
        return read_decision(self._send(Call.submit(packet)))

    def evaluate(self, tool: str, params: Mapping[str, Any], *, evidence: Mapping[str, Any] | None = None,
                 claims: ClaimsArg = None, context: Mapping[str, Any] | None = None,
                 packet_id: str | None = None) -> Decision:
        """A dry run (`POST /v1/actions/evaluate`): the decision this packet would get, `allowed`
        where a real one executes. Nothing is recorded or executed."""
        packet = Packet(self.agent, tool, params, evidence=evidence, claims=claims, context=context,
                        packet_id=packet_id)
        return read_decision(self._send(Call.evaluate(packet)))

    def get(self, decision_id: str) -> Decision:
        """The decision as it stands now."""
        return read_decision(self._send(Call.decision(decision_id)))

    def wait(self, decision_id: str, timeout: float | None = 300.0) -> Decision:
        """Long-poll until the decision is final; `StillPending` after `timeout` seconds (None:
        no limit). A refusal is returned, not raised (see `Decision.raise_for_status`)."""
        deadline = Deadline(timeout)
        decision = self.get(decision_id)
        while not decision.final:
            if deadline.passed():
                raise StillPending(decision, timeout or 0.0)
            decision = read_decision(self._send(Call.decision(decision_id, deadline.chunk())))
        return decision

    def act(self, tool: str, params: Mapping[str, Any], *, evidence: Mapping[str, Any] | None = None,
            claims: ClaimsArg = None, context: Mapping[str, Any] | None = None,
            packet_id: str | None = None, timeout: float | None = 300.0) -> Decision:
        """Submit, wait until final (approvals included, up to `timeout`), and return the decision
        of an action that happened; raise `Denied`, `Rejected`, `Expired`, `Failed` or
        `StillPending` otherwise. Calling it again with the same `packet_id` picks up the same
        decision."""
        decision = self.submit(tool, params, evidence=evidence, claims=claims, context=context,
                               packet_id=packet_id)
        if not decision.final:
            assert decision.decision_id is not None
            decision = self.wait(decision.decision_id, timeout)
        return decision.raise_for_status()

    # -- reads for receipts and tools -------------------------------------------------------

    def tools(self) -> list[dict[str, Any]]:
        """The tools this agent may call: base risk, reversibility, params JSON Schema."""
        found: list[dict[str, Any]] = read_json(self._send(Call("GET", "/v1/tools")))
        return found

    def checkpoint(self) -> str:
        """The latest signed checkpoint of the audit log (a C2SP signed note)."""
        return read_text(self._send(Call("GET", "/v1/audit/checkpoint")))

    def inclusion_proof(self, seq: int, size: int) -> dict[str, Any]:
        """The gateway's inclusion proof of entry `seq` in the tree of `size` (unchecked: see
        `warden_sdk.receipts.verify_receipt`)."""
        proof: dict[str, Any] = read_json(self._send(Call("GET", "/v1/audit/proofs/inclusion",
                                                          {"seq": seq, "size": size})))
        return proof

    # -- sending -----------------------------------------------------------------------------

    def _send(self, call: Call) -> httpx.Response:
        retries = self.settings.retries
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(self.settings.request(self._http, call))
            except httpx.TransportError as exc:
                if not retryable_error(exc) or attempt >= retries.attempts:
                    raise self.settings.gave_up(call, exc) from exc
                time.sleep(retries.delay(attempt))
                continue
            if not self.settings.should_retry(response, attempt):
                return response
            time.sleep(retries.delay(attempt, response.headers.get("Retry-After")))

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> WardenClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
