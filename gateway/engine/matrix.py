"""The autonomy x risk matrix of DESIGN.md, and the approval obligation it and the rules create.

    autonomy | L0       L1        L2        L3
    ---------+----------------------------------------------
    A0       | drafted  drafted   drafted   drafted
    A1       | execute  approval  approval  founder approval
    A2..A4   | execute  execute   approval  founder approval

A0 never reaches this module's `needs_approval` (it only drafts); A2, A3 and A4 differ only
through policies (`min_autonomy`). A fired `require approval` rule asks for an approval too, even
where the matrix would execute; the engine combines the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from dsl.model import DEFAULT_APPROVAL_EXPIRY, ApprovalRule, Autonomy, Risk
from gateway.engine.models import Approval

#: The policy name Warden's own gates and the matrix report under in `reasons`.
WARDEN = "warden"
FOUNDER = "founder"
DEFAULT_ROLE = "approver"


def needs_approval(autonomy: Autonomy, risk: Risk) -> bool:
    """Whether the matrix alone sends an action at `risk` by an A1+ agent to an approver."""
    if risk >= Risk.L2:
        return True
    return autonomy == Autonomy.A1 and risk >= Risk.L1


def matrix_reason(autonomy: Autonomy, risk: Risk) -> dict[str, object]:
    """The `reasons` entry saying the matrix asked for the approval (as plain data)."""
    if risk == Risk.L3:
        message = "risk L3 always needs a founder's approval"
    else:
        message = f"risk {risk.name} needs approval at autonomy {autonomy.name}"
    return {"policy": WARDEN, "rule": "autonomy_matrix", "effect": "approval",
            "message": message, "enforced": True}


def approval_obligation(
    risk: Risk,
    rules: Sequence[ApprovalRule],
    now: datetime,
    default_expiry: timedelta = DEFAULT_APPROVAL_EXPIRY,
) -> Approval:
    """Who must approve, how many distinct people and by when, from the risk and fired rules.

    Founder for L3 or when any fired rule asks for one (a founder may approve any role's
    request, so asking a founder covers every rule); otherwise the role of the fired rule with
    the highest count (the first on a tie), default `approver`. Count: the highest of the fired
    rules' counts, default 1. Expiry: the shortest of their expiries (a rule without one counts
    as `default_expiry`, 24 h unless configured), from `now`.
    """
    if risk == Risk.L3 or any(r.role == FOUNDER for r in rules):
        role = FOUNDER
    elif rules:
        role = max(rules, key=lambda r: r.count).role  # max() keeps the first of equals
    else:
        role = DEFAULT_ROLE
    count = max((r.count for r in rules), default=1)
    expiry = min((r.expires_in or default_expiry for r in rules), default=default_expiry)
    return Approval(required_role=role, count=count, expires_at=now + expiry)
