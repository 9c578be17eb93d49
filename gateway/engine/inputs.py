"""What a decision was made from, besides the packet and the policy set, as its audit entry
records it, so that it can be made again (`warden replay`).

The engine is a function of (packet, agent, policy set, now, kill switch) and the approval
expiry it was built with; a `decision` entry holds the packet, the policy digest and, under
`inputs`:

    {"now": RFC 3339 with microseconds, "kill_switch": bool,
     "agent": {"name", "autonomy", "owner"}, "approval_expiry_seconds": number}

A `reevaluation` entry (the decision made again at its last approval) records the same `inputs`
(its kill switch is always false: the approval waits while the switch is engaged).

`now` is the exact instant handed to the engine (CEL's `now`, an approval's expiry), the agent as
policies see it (its allowlist is the gateway's check, before the engine). Entries written before
`inputs` existed are replayed from what they do hold: the entry's time, the decision's autonomy,
no owner, the kill switch as its reasons say; such inputs are `reconstructed`, and a difference
under them is not proof of a determinism bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dsl.model import DEFAULT_APPROVAL_EXPIRY
from gateway.engine.agents import Agent


@dataclass(frozen=True)
class DecisionInputs:
    now: datetime
    kill_switch: bool
    agent: Agent
    approval_expiry: timedelta = DEFAULT_APPROVAL_EXPIRY
    reconstructed: bool = False


def inputs_record(agent: Agent, now: datetime, kill_switch: bool, approval_expiry: timedelta) -> dict[str, Any]:
    """The `inputs` member of a `decision` entry."""
    return {
        "now": now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "kill_switch": kill_switch,
        "agent": agent.cel_view(),
        "approval_expiry_seconds": _seconds(approval_expiry),
    }


def _seconds(span: timedelta) -> int | float:
    """Whole seconds as an integer (an entry without doubles is canonicalised on the fast path)."""
    seconds = span.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


class InputsError(ValueError):
    """A `decision` entry whose inputs cannot be read back."""


def recorded_inputs(data: Mapping[str, Any], entry_time: str) -> DecisionInputs:
    """The inputs a `decision` entry's data records (or, for an entry from before they were
    recorded, the closest reconstruction; see the module's docstring)."""
    try:
        recorded = data.get("inputs")
        if isinstance(recorded, Mapping):
            seen = recorded["agent"]
            agent = Agent(name=seen["name"], autonomy=seen["autonomy"], owner=seen.get("owner"))
            return DecisionInputs(
                now=_instant(recorded["now"]), kill_switch=bool(recorded["kill_switch"]), agent=agent,
                approval_expiry=timedelta(seconds=float(recorded["approval_expiry_seconds"])),
            )
        decision = data["decision"]
        packet = data["packet"]
        agent = Agent(name=packet["agent"], autonomy=decision["autonomy"])
        killed = any(r.get("rule") == "kill_switch" for r in decision.get("reasons", ()))
        return DecisionInputs(now=_instant(entry_time), kill_switch=killed, agent=agent, reconstructed=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputsError(f"the entry's inputs cannot be read: {exc}") from None


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)
