"""Why a decision needs a person, and why this person may or may not be the one.

`rule_source` finds a reason's rule in the active policy set: its file, line and the DSL text as
written. `standing` lists, in words, what stands between the viewer and deciding: their role, an
L3 that only a founder approves, their own agent, an approval they already gave, a passkey they
still need.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl.model import PolicySet

RULE_GROUPS = ("invariants", "escalations", "denies", "approvals", "autonomy_rules", "delegations")


@dataclass(frozen=True)
class Source:
    file: str
    line: int
    text: str


def rule_source(policy_set: PolicySet, policy_dir: Path, policy: str, rule: str) -> Source | None:
    for candidate in policy_set.policies:
        if candidate.name != policy:
            continue
        for group in RULE_GROUPS:
            for item in getattr(candidate, group):
                if item.name == rule:
                    return _source(policy_dir, item.span.file, item.span.line)
        return _source(policy_dir, candidate.span.file, candidate.span.line)
    return None


def _source(policy_dir: Path, file: str, line: int) -> Source:
    path = Path(file)
    if not path.is_absolute():
        path = policy_dir / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return Source(file=file, line=line, text="")
    first = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = len(first) - len(first.lstrip())
    taken = [first]
    for following in lines[line:line + 8]:  # continuation lines are indented deeper
        if following.strip() and len(following) - len(following.lstrip()) > indent:
            taken.append(following)
        else:
            break
    shown = Path(file).name if Path(file).is_absolute() else file
    return Source(file=shown, line=line, text=textwrap.dedent("\n".join(taken)))


@dataclass(frozen=True)
class Standing:
    """What the viewer may do with a pending decision, and why not."""

    can_approve: bool
    can_reject: bool
    obstacles: tuple[str, ...]


def standing(viewer: Any, decision: Any, owner: str | None, *, needs_passkey: bool, has_passkey: bool) -> Standing:
    """Approving needs every obstacle gone; rejecting only the role and ownership ones."""
    blocking = _obstacles(viewer, decision, owner)
    extra = []
    if decision.status == "pending_approval" and decision.approval is not None and viewer.can("decide"):
        if any(grant.approver == viewer.email for grant in decision.approval.approvals):
            extra.append("You have approved this already; each person counts once.")
        if needs_passkey and not has_passkey:
            extra.append("Approving this needs a passkey, and you have none yet: add one on your account page.")
    pending = decision.status == "pending_approval" and viewer.can("decide")
    return Standing(can_approve=pending and not blocking and not extra, can_reject=pending and not blocking,
                    obstacles=tuple(blocking + extra))


def _obstacles(viewer: Any, decision: Any, owner: str | None) -> list[str]:
    """Why the viewer cannot decide this at all (empty: they can)."""
    if decision.status != "pending_approval" or decision.approval is None:
        return []
    if not viewer.can("decide"):
        return [f"You are signed in as a {viewer.role}: you can see this decision, but only approvers and "
                "founders decide."]
    found = []
    required = decision.approval.required_role
    if viewer.role != "founder" and viewer.role != required:
        if decision.risk.name == "L3" or required == "founder":
            found.append("This is an L3 action (irreversible or high risk): only a founder can approve it.")
        else:
            found.append(f"This decision needs a {required}'s approval; you are an {viewer.role}.")
    if owner and owner.lower() == viewer.email.lower():
        found.append("You own the agent that asked: another person must decide (nobody approves their own "
                     "agent's action).")
    return found
