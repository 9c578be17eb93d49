"""ResolveNames: check what the syntax tree names and says, and build the model's policies.

Here the words of a policy become values: `L2` a `Risk`, `A3` an `Autonomy`, `4h` a
`timedelta`, unnamed rules get their derived names (`deny_1`, ...), and every name is checked:
no two policies share a name across the files, no two rules or invariants share one within a
policy, every role an approval asks for exists (built-in or declared in any file), no reserved
word is used as a name. Conditions are not compiled here (see `dsl.expressions`): their `Expr`
carries `program=None` until the next stage.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TypeVar

import dsl.syntax as ast
from dsl.errors import DiagnosticBag
from dsl.mistakes import value_message
from dsl.model import (
    BUILTIN_ROLES, DEFAULT_DELEGATION_READS, DELEGATION_ROOTS, ApprovalRule, Autonomy, AutonomyRule,
    Delegation, DenyRule, Escalation, Expr, Invariant, Mode, Policy, Risk, Span, ToolSelector,
)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_APPROVAL_COUNT = 10
#: An OPA data path: what follows `/v1/data/` (`warden/refunds/allow`).
OPA_PATH = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")

_Stmt = TypeVar("_Stmt", bound=ast.Statement)


def resolve_roles(files: list[ast.PolicyFile], bag: DiagnosticBag) -> frozenset[str]:
    """The built-in roles plus every role declared in any file, each declared once."""
    seen: dict[str, Span] = {}
    for file in files:
        for decl in file.roles:
            name = decl.name
            if name.text in BUILTIN_ROLES:
                bag.error("builtin_role", f"role `{name.text}` is built in; do not declare it",
                          name.span)
            elif name.text in seen:
                bag.error("duplicate_role",
                          f"role `{name.text}` is already declared at {seen[name.text]}",
                          name.span)
            else:
                seen[name.text] = name.span
    return BUILTIN_ROLES | frozenset(seen)


def resolve_policies(files: list[ast.PolicyFile], roles: frozenset[str], bag: DiagnosticBag
                     ) -> list[Policy]:
    """One model `Policy` per block, in file order; problems go to `bag`."""
    seen: dict[str, Span] = {}
    policies = []
    for file in files:
        for block in file.policies:
            name = block.name
            if name.text in seen:
                bag.error("duplicate_policy",
                          f"policy `{name.text}` is already defined at {seen[name.text]}",
                          name.span)
            else:
                seen[name.text] = name.span
            policy = _PolicyResolver(block, roles, bag).resolve()
            if policy is not None:
                policies.append(policy)
    _same_reads_per_path(policies, bag)
    return policies


def _same_reads_per_path(policies: list[Policy], bag: DiagnosticBag) -> None:
    """OPA is asked once per path and packet, so every `opa` statement naming one path must send
    it the same input."""
    first: dict[str, Delegation] = {}
    for policy in policies:
        for delegation in policy.delegations:
            seen = first.setdefault(delegation.path, delegation)
            if seen.reads != delegation.reads:
                bag.error("opa_reads_differ",
                          f"`opa \"{delegation.path}\"` reads other fields at {seen.span}; every "
                          "statement asking one path must read the same fields", delegation.span)


class _PolicyResolver:
    """Resolves one policy block: its settings, then its rules in file order."""

    def __init__(self, block: ast.PolicyBlock, roles: frozenset[str], bag: DiagnosticBag) -> None:
        self.block = block
        self.roles = roles
        self.bag = bag
        self.names: dict[str, Span] = {}
        self.counters: dict[str, int] = {}

    def resolve(self) -> Policy | None:
        block, bag = self.block, self.bag
        applies = self._single(ast.Applies, "applies to")
        risk_stmt = self._single(ast.RiskStmt, "risk")
        mode_stmt = self._single(ast.ModeStmt, "mode")
        if block.header_mode is not None and mode_stmt is not None:
            bag.error("duplicate_statement",
                      f"the mode is already set in the header of policy `{block.name.text}`",
                      mode_stmt.span)
        mode_word = block.header_mode or (mode_stmt.mode if mode_stmt else None)
        mode: Mode = "enforce"
        if mode_word is not None:
            if mode_word.text == "shadow":
                mode = "shadow"
            elif mode_word.text != "enforce":
                bag.error("unknown_mode", value_message("unknown_mode", mode_word.text),
                          mode_word.span)
        if applies is None:
            bag.error("missing_applies",
                      f"policy `{block.name.text}` does not say which tools it governs: add "
                      'applies to tool "name"', block.name.span)
        risk = self._risk(risk_stmt.tier) if risk_stmt else None
        invariants, escalations, denies, approvals, autonomy = [], [], [], [], []
        delegations: list[Delegation] = []
        for stmt in block.statements:
            if isinstance(stmt, ast.InvariantStmt):
                self._claim(stmt.name)
                invariants.append(Invariant(stmt.name.text, stmt.description,
                                            _expr(stmt.condition), stmt.span))
            elif isinstance(stmt, ast.EscalateStmt):
                tier = self._risk(stmt.tier)
                escalations.append(Escalation(self._rule_name(stmt.name, "escalate", stmt.span),
                                              Risk.L3 if tier is None else tier,
                                              _expr(stmt.condition),
                                              stmt.because, stmt.span))
            elif isinstance(stmt, ast.DenyStmt):
                denies.append(DenyRule(self._rule_name(stmt.name, "deny", stmt.span),
                                       _expr(stmt.condition), stmt.because, stmt.span))
            elif isinstance(stmt, ast.ApprovalStmt):
                approvals.append(self._approval(stmt))
            elif isinstance(stmt, ast.MinAutonomyStmt):
                level = self._autonomy(stmt.level)
                autonomy.append(AutonomyRule(
                    self._rule_name(stmt.name, "min_autonomy", stmt.span),
                    Autonomy.A4 if level is None else level,
                    _expr(stmt.condition) if stmt.condition else None, stmt.because, stmt.span))
            elif isinstance(stmt, ast.DelegateStmt):
                delegations.append(self._delegation(stmt))
        if applies is None:
            return None
        return Policy(
            block.name.text, block.description, mode,
            self._selector(applies), risk, tuple(invariants), tuple(escalations), tuple(denies),
            tuple(approvals), tuple(autonomy), block.span, tuple(delegations),
        )

    def _single(self, kind: type[_Stmt], label: str) -> _Stmt | None:
        """The one statement of `kind`; a second one is an error."""
        found = [s for s in self.block.statements if isinstance(s, kind)]
        for extra in found[1:]:
            self.bag.error("duplicate_statement",
                           f"policy `{self.block.name.text}` already has a `{label}` line "
                           f"(at {found[0].span})", extra.span)
        return found[0] if found else None

    def _selector(self, applies: ast.Applies) -> ToolSelector:
        if not applies.patterns:
            self.bag.error("empty_tool_list", "the tool list is empty: name at least one tool",
                           applies.span)
        for pattern in applies.patterns:
            if not pattern.text.strip():
                self.bag.error("empty_tool_name", "a tool name cannot be empty", pattern.span)
        return ToolSelector(applies.kind, tuple(p.text for p in applies.patterns))

    def _claim(self, name: ast.Word) -> None:
        if name.text in self.names:
            self.bag.error("duplicate_name",
                           f"`{name.text}` is already used in policy `{self.block.name.text}` "
                           f"(at {self.names[name.text]})", name.span)
        else:
            self.names[name.text] = name.span

    def _rule_name(self, name: ast.Word | None, kind: str, span: Span) -> str:
        """The given name, or the derived one: deny_1, deny_2, ... per kind, in file order."""
        if name is not None:
            self._claim(name)
            return name.text
        number = self.counters[kind] = self.counters.get(kind, 0) + 1
        derived = f"{'approval' if kind == 'approval' else kind}_{number}"
        if derived in self.names:
            self.bag.error("duplicate_name",
                           f"this unnamed rule is called `{derived}`, which is already used at "
                           f"{self.names[derived]}; give one of them another name", span)
        else:
            self.names[derived] = span
        return derived

    def _risk(self, word: ast.Word) -> Risk | None:
        if word.text in Risk.__members__:
            return Risk.parse(word.text)
        self.bag.error("unknown_risk_tier", value_message("unknown_risk_tier", word.text),
                       word.span)
        return None

    def _autonomy(self, word: ast.Word) -> Autonomy | None:
        if word.text in Autonomy.__members__:
            return Autonomy.parse(word.text)
        self.bag.error("unknown_autonomy", value_message("unknown_autonomy", word.text),
                       word.span)
        return None

    def _approval(self, stmt: ast.ApprovalStmt) -> ApprovalRule:
        name = self._rule_name(stmt.name, "approval", stmt.span)
        if stmt.role.text not in self.roles:
            known = ", ".join(sorted(self.roles))
            self.bag.error("unknown_role",
                           f"unknown role `{stmt.role.text}`: declare it at the top of a file "
                           f'(role {stmt.role.text} "...") or use one of: {known}',
                           stmt.role.span)
        count, when, expires = 1, None, None
        seen: dict[str, Span] = {}
        for clause in stmt.clauses:
            if clause.kind in seen:
                self.bag.error("duplicate_clause",
                               f"`{clause.kind}` is already given for this approval "
                               f"(at {seen[clause.kind]})", clause.span)
                continue
            seen[clause.kind] = clause.span
            value = clause.value
            if clause.kind == "when" and isinstance(value, ast.Condition):
                when = _expr(value)
            elif clause.kind == "count" and isinstance(value, ast.Word):
                count = self._count(value)
            elif clause.kind == "expires" and isinstance(value, ast.Word):
                expires = self._duration(value)
        return ApprovalRule(name, stmt.role.text, count, when, expires, stmt.span)

    def _delegation(self, stmt: ast.DelegateStmt) -> Delegation:
        name = self._rule_name(stmt.name, "opa", stmt.span)
        path = stmt.path.text
        if not OPA_PATH.fullmatch(path):
            self.bag.error("bad_opa_path",
                           f"`{path}` is not an OPA data path: segments of letters, digits and _ "
                           'joined by / (like "warden/refunds/allow")', stmt.path.span)
        if stmt.reads is None:
            return Delegation(name, path, DEFAULT_DELEGATION_READS, stmt.span)
        reads: set[tuple[str, ...]] = set()
        for word in stmt.reads:
            parts = tuple(word.text.split("."))
            if parts[0] not in DELEGATION_ROOTS:
                self.bag.error("unknown_opa_read",
                               f"`{word.text}` is not part of a packet OPA can read: start it with "
                               f"{', '.join(DELEGATION_ROOTS)}", word.span)
            reads.add(parts)
        # a whole root covers its fields: `reads params, params.amount` sends params once
        kept = sorted(r for r in reads if not any(r[:n] in reads for n in range(1, len(r))))
        return Delegation(name, path, tuple(kept), stmt.span)

    def _count(self, word: ast.Word) -> int:
        number = int(word.text) if len(word.text) <= 3 else 0
        if not 1 <= number <= MAX_APPROVAL_COUNT:
            self.bag.error("bad_count", value_message("bad_count", word.text), word.span)
            return 1
        return number

    def _duration(self, word: ast.Word) -> timedelta | None:
        digits = word.text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        unit = word.text[len(digits):]
        if unit not in _UNITS or len(digits) > 6 or int(digits) == 0:
            self.bag.error("bad_duration", value_message("bad_duration", word.text), word.span)
            return None
        return timedelta(**{_UNITS[unit]: int(digits)})


def _expr(condition: ast.Condition) -> Expr:
    return Expr(condition.text, condition.span, None)
