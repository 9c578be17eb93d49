"""The authors' own questions: `assertions.toml` beside the policies.

    [[assert]]
    name = "payouts wait for a founder"    # unique in the file
    tool = "stripe.payout"                 # a tool name or a glob ("stripe.*"), or a list
    autonomy = ["A1", "A2", "A3", "A4"]    # optional: the levels it is about (default: all)
    when = "params.amount > 100000"        # optional CEL: only packets where it is true
    never = "executed"                     # statuses that never occur (one or a list)
    only = ["pending_approval", "denied"]  # the statuses that may occur
    approval_role = "founder"              # whenever it waits for approval, for this role
    min_approvals = 2                      # whenever it waits for approval, at least this many
    risk_at_least = "L2"                   # the decision's risk is at least this tier

Statuses: `executed` (also `execute` or `allowed`, as a dry run says it), `pending_approval`,
`denied`, `drafted`. An assertion needs at least one of the five checks; every one must hold for
every packet of every matching tool at every listed autonomy for which `when` is true (an
ERROR is not true). Each assertion is proved, or fails with a packet the engine decides as
shown; an assertion whose `when` or a rule it depends on is outside the analysed subset is
proved all the same when the solver shows no packet breaks it, else reported as inconclusive,
which fails like a broken one: an assertion is a promise, and it was not kept provably.

Mistakes in the file are `AssertionFileError`s located as `file:line:col`.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import z3

from dsl.model import Autonomy, PolicySet, Risk
from gateway.analysis.cel_ast import Unsupported
from gateway.analysis.model import DENIED, DRAFTED, EXECUTED, PENDING, DecisionModel, Example
from gateway.analysis.questions import Analysis, Witness
from gateway.engine.models import Decision
from invariants import CelCompileError, activation, compile_expression

FILE_NAME = "assertions.toml"
_STATUSES = {"executed": EXECUTED, "execute": EXECUTED, "allowed": EXECUTED,
             "pending_approval": PENDING, "denied": DENIED, "drafted": DRAFTED}
_CANONICAL = {EXECUTED: "executed", PENDING: "pending_approval", DENIED: "denied",
              DRAFTED: "drafted"}
_KEYS = ("name", "tool", "autonomy", "when", "never", "only", "approval_role",
         "min_approvals", "risk_at_least")
_CHECKS = ("never", "only", "approval_role", "min_approvals", "risk_at_least")


class AssertionFileError(ValueError):
    """A mistake in an assertions file, located as `file:line:col`."""


@dataclass(frozen=True)
class Assertion:
    name: str
    tool: tuple[str, ...]
    autonomy: tuple[Autonomy, ...]
    when: str | None
    never: frozenset[int]
    only: frozenset[int] | None
    approval_role: str | None
    min_approvals: int | None
    risk_at_least: Risk | None
    where: str  # file:line of its [[assert]]

    def broken_by(self, decision: Decision) -> str | None:
        """What of this assertion `decision` breaks (None: it keeps it)."""
        status = {"allowed": "executed"}.get(decision.status, decision.status)
        code = _STATUSES.get(status)
        if code in self.never:
            return f"the decision is {status}"
        if self.only is not None and code not in self.only:
            return f"the decision is {status}"
        approval = decision.approval
        if status == "pending_approval" and approval is not None:
            if self.approval_role is not None and approval.required_role != self.approval_role:
                return f"it waits for {approval.required_role}, not {self.approval_role}"
            if self.min_approvals is not None and approval.count < self.min_approvals:
                return f"it waits for {approval.count} approval(s), not {self.min_approvals}"
        if self.risk_at_least is not None and decision.risk < self.risk_at_least:
            return f"its risk is {decision.risk.name}"
        return None


@dataclass
class AssertionResult:
    assertion: Assertion
    outcome: str  # proved | failed | inconclusive
    tools: tuple[str, ...] = ()
    witnesses: tuple[Witness, ...] = ()
    note: str | None = None
    broken: str | None = None  # what the counter-example breaks

    @property
    def passed(self) -> bool:
        return self.outcome == "proved"


# ------------------------------------------------------------------------------ the file


def load(path: Path) -> list[Assertion]:
    """The assertions of `path`; AssertionFileError for any mistake, located."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssertionFileError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{found.group(1)}:{found.group(2)}" if found else "1:1"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise AssertionFileError(f"{path}:{where}: not TOML: {message}") from None
    locate = _Locator(path, text)
    extra = sorted(set(data) - {"assert"})
    if extra:
        raise AssertionFileError(f"{locate.top(extra[0])}: unknown key {extra[0]!r} "
                                 "(the file holds [[assert]] tables)")
    tables = data.get("assert", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise AssertionFileError(f"{locate.top('assert')}: `assert` must be [[assert]] tables")
    out: list[Assertion] = []
    names: set[str] = set()
    for index, table in enumerate(tables):
        assertion = _assertion(table, index, locate)
        if assertion.name in names:
            raise AssertionFileError(f"{locate.key(index, 'name')}: a second assertion named "
                                     f"{assertion.name!r}")
        names.add(assertion.name)
        out.append(assertion)
    return out


class _Locator:
    """Lines and columns for keys tomllib has no positions for: found by scanning the text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.headers = [i for i, line in enumerate(self.lines)
                        if re.match(r"\s*\[\[\s*assert\s*\]\]", line)]

    def top(self, key: str) -> str:
        return self._find(key, 0, self.headers[0] if self.headers else len(self.lines))

    def table(self, index: int) -> str:
        line = self.headers[index] if index < len(self.headers) else 0
        return f"{self.path}:{line + 1}:1"

    def key(self, index: int, key: str) -> str:
        if index >= len(self.headers):
            return self.table(index)
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        return self._find(key, self.headers[index], end)

    def _find(self, key: str, start: int, end: int) -> str:
        pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start, end):
            found = pattern.match(self.lines[number])
            if found:
                column = len(self.lines[number]) - len(self.lines[number].lstrip()) + 1
                return f"{self.path}:{number + 1}:{column}"
        return f"{self.path}:{start + 1}:1"


def _assertion(table: dict[str, Any], index: int, locate: _Locator) -> Assertion:
    def fail(key: str, message: str) -> AssertionFileError:
        return AssertionFileError(f"{locate.key(index, key)}: {message}")

    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    if not isinstance(table.get("name"), str) or not table["name"].strip():
        raise AssertionFileError(f"{locate.key(index, 'name')}: `name` is required: a string")
    if "tool" not in table:
        raise AssertionFileError(f"{locate.table(index)}: `tool` is required: a name or a glob")
    tools = _strings(table["tool"], "tool", fail)
    if not any(key in table for key in _CHECKS):
        raise AssertionFileError(f"{locate.table(index)}: assertion {table['name']!r} checks "
                                 f"nothing; give one of {', '.join(_CHECKS)}")
    levels = _strings(table.get("autonomy", [a.name for a in Autonomy]), "autonomy", fail)
    bad = [level for level in levels if level not in Autonomy.__members__]
    if bad:
        raise fail("autonomy", f"unknown autonomy {bad[0]!r} (A0 to A4)")
    when = table.get("when")
    if when is not None:
        if not isinstance(when, str):
            raise fail("when", "`when` must be a CEL condition in a string")
        try:
            compile_expression(when)
        except CelCompileError as exc:
            raise fail("when", f"`when` is not valid CEL: {exc}") from None
    role = table.get("approval_role")
    if role is not None and not isinstance(role, str):
        raise fail("approval_role", "`approval_role` must be a role name")
    count = table.get("min_approvals")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise fail("min_approvals", "`min_approvals` must be a whole number, 1 or more")
    risk = table.get("risk_at_least")
    if risk is not None and risk not in Risk.__members__:
        raise fail("risk_at_least", f"unknown risk tier {risk!r} (L0 to L3)")
    only = table.get("only")
    return Assertion(
        name=table["name"], tool=tuple(tools),
        autonomy=tuple(Autonomy[level] for level in levels), when=when,
        never=_statuses(table.get("never", []), "never", fail),
        only=None if only is None else _statuses(only, "only", fail),
        approval_role=role, min_approvals=count,
        risk_at_least=None if risk is None else Risk[risk],
        where=locate.table(index).rsplit(":", 1)[0])


def _strings(value: Any, key: str, fail: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise fail(key, f"`{key}` must be a string or a list of strings")
    return values


def _statuses(value: Any, key: str, fail: Any) -> frozenset[int]:
    names = _strings(value, key, fail)
    unknown = [n for n in names if n not in _STATUSES]
    if unknown:
        raise fail(key, f"unknown status {unknown[0]!r} (executed, pending_approval, denied, "
                        "drafted)")
    return frozenset(_STATUSES[n] for n in names)


# ------------------------------------------------------------------------------ checking


def analysis_for(policy_set: PolicySet, assertions: Sequence[Assertion]) -> Analysis:
    """The analysis of `policy_set`, knowing the assertions' `when` conditions (the kinds of
    the evidence they read count for inference)."""
    extra: dict[str, list[str]] = {}
    for assertion in assertions:
        if assertion.when is not None:
            for pattern in assertion.tool:
                extra.setdefault(pattern, []).append(assertion.when)
    return Analysis(policy_set, extra=extra)


def check(analysis: Analysis, assertions: Sequence[Assertion]) -> list[AssertionResult]:
    return [check_one(analysis, a) for a in assertions]


def tools_of(analysis: Analysis, assertion: Assertion) -> list[str]:
    return [t for t in analysis.tools
            if any(fnmatch.fnmatchcase(t, pattern) for pattern in assertion.tool)]


def check_one(analysis: Analysis, assertion: Assertion) -> AssertionResult:
    tools = tools_of(analysis, assertion)
    if not tools:
        return AssertionResult(assertion, "inconclusive", note=(
            f"no tool matches {', '.join(assertion.tool)}: the catalog and the policies name "
            "none"))
    notes: list[str] = []
    for tool in tools:
        model = analysis.model(tool)
        try:
            query = _broken(model, assertion)
        except Unsupported as exc:
            return AssertionResult(assertion, "inconclusive", tuple(tools),
                                   note=f"`when` is outside the analysed subset: {exc}")
        verdict = analysis.searcher.find([model], query, lambda e, d: _confirm(
            assertion, e[0], d[0]))
        if verdict.found:
            decision = verdict.decisions[0]
            return AssertionResult(assertion, "failed", tuple(tools),
                                   (Witness(verdict.examples[0], decision),),
                                   broken=assertion.broken_by(decision))
        if not verdict.proved:
            notes.append(f"{tool}: {verdict.note}")
    if notes:
        return AssertionResult(assertion, "inconclusive", tuple(tools), note="; ".join(notes))
    return AssertionResult(assertion, "proved", tuple(tools))


def _broken(model: DecisionModel, assertion: Assertion) -> Any:
    """A packet for which the assertion does not hold, as a condition on `model`."""
    status, pending = model.status, model.status == PENDING
    bad = [status == code for code in assertion.never]
    if assertion.only is not None:
        bad.append(z3.And(*(status != code for code in assertion.only)))
    if assertion.approval_role is not None:
        bad.append(z3.And(pending, z3.Not(model.role_is(assertion.approval_role))))
    if assertion.min_approvals is not None:
        bad.append(z3.And(pending, model.count < assertion.min_approvals))
    if assertion.risk_at_least is not None:
        bad.append(model.risk < int(assertion.risk_at_least))
    scope = [z3.Or(*(model.autonomy == int(a) for a in assertion.autonomy))]
    if assertion.when is not None:
        holds, err = model.condition(assertion.when)
        scope += [holds, z3.Not(err)]
    return z3.And(*scope, z3.Or(*bad))


def _confirm(assertion: Assertion, example: Example, decision: Decision) -> str | None:
    if assertion.when is not None and not when_holds(assertion.when, example):
        return "`when` is not true for it"
    if assertion.broken_by(decision) is None:
        return f"the engine decided {decision.status}, which keeps the assertion"
    return None


def when_holds(source: str, example: Example) -> bool:
    """Whether an assertion's `when` is true for `example`, as the engine evaluates CEL."""
    from gateway.analysis.search import AGENT, NOW

    packet = example.packet
    act = activation(params=packet["action"]["params"], evidence=packet.get("evidence"),
                     agent={"name": AGENT, "autonomy": example.autonomy.name, "owner": None},
                     context=packet.get("context"), now=NOW)
    return compile_expression(source).evaluate(act).holds is True
