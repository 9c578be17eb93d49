"""Packets as the agent sends them: the body of `POST /v1/actions` and of a dry run.

A packet is serialised once, to bytes, and those bytes are what every attempt sends: a retry
is the same packet under the same `packet_id`, so the gateway answers it with the decision it
stored the first time (the same id with another body would be a `409 packet_id_reused`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from warden_sdk.models import Claim

__all__ = ["ClaimsArg", "Packet", "new_packet_id"]

ClaimsArg = Mapping[str, str] | Sequence[Claim | Mapping[str, Any]] | None
"""Claims as `{"refund_reconciled": "PASS"}`, or a list of `Claim` (or dicts with id, status, value)."""

_PACKET_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_packet_id() -> str:
    """A fresh packet id: `sdk-` and 32 hex digits of a random UUID."""
    return f"sdk-{uuid.uuid4().hex}"


def _claims(claims: ClaimsArg) -> list[dict[str, Any]]:
    if not claims:
        return []
    if isinstance(claims, Mapping):
        items: list[Claim] = [Claim(id=k, status=v) for k, v in claims.items()]  # type: ignore[arg-type]
    else:
        items = [c if isinstance(c, Claim) else Claim.model_validate(c) for c in claims]
    return [c.model_dump(exclude_none=True) for c in items]


class Packet:
    """One packet, its id fixed and its body serialised once."""

    __slots__ = ("body", "packet_id", "tool")

    def __init__(self, agent: str, tool: str, params: Mapping[str, Any], *,
                 evidence: Mapping[str, Any] | None = None, claims: ClaimsArg = None,
                 context: Mapping[str, Any] | None = None, packet_id: str | None = None) -> None:
        self.packet_id = packet_id or new_packet_id()
        if not _PACKET_ID.match(self.packet_id):
            raise ValueError(f"packet_id {self.packet_id!r} must be 1-128 of A-Z a-z 0-9 . _ : -")
        self.tool = tool
        document = {
            "packet_id": self.packet_id,
            "agent": agent,
            "action": {"tool": tool, "params": dict(params)},
            "evidence": dict(evidence or {}),
            "proof": {"invariant_checks": _claims(claims)},
            "context": dict(context or {}),
        }
        self.body: bytes = json.dumps(document, ensure_ascii=False, allow_nan=False,
                                      separators=(",", ":")).encode()
