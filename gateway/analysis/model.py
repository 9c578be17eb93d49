"""The decision of `gateway.engine.Decider` for one tool, as SMT over a symbolic packet.

`DecisionModel(policies, tool, schema, kinds)` builds, for a packet of `tool` sent by an agent at
a symbolic autonomy, the engine's steps (the kill switch is off; the analysis asks about what
policies allow):

    (2) no enforced policy gives the tool a tier     → denied (unknown_tool)
    (4) every enforced rule of every applicable policy, shadow policies left out (they record,
        never decide):
          invariant      FAIL or ERROR                → violation
          deny           holds or ERROR               → violation
          escalate       holds → risk ≥ its tier; ERROR → violation
          approval       holds (or no condition) → an approval rule; ERROR → violation
          min_autonomy   below its level: holds or ERROR → violation
    (6) risk = max(base, fired escalations)
    (7) violation → denied; A0 → drafted; the matrix (L2+, or L1 at A1) or an approval rule →
        pending_approval; else executed
    (8) founder when risk is L3 or a fired rule asks for one; count = the highest fired count

A rule the translation does not support (`gateway.analysis.cel_smt`) holds or errs freely:
the model then allows more than the engine does, so a proof still holds, and a candidate
counter-example is confirmed by the engine before it is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import z3

from dsl.model import ApprovalRule, Autonomy, Expr, Policy, PolicySet, Risk
from gateway.analysis.cel_ast import Node, Path, Unsupported, parse
from gateway.analysis.cel_smt import FALSE, TRUE, Env, Translator, infer_kinds
from gateway.analysis.schema import Field, ToolSchema, sample_string
from gateway.engine.delegation import delegations

EXECUTED, PENDING, DRAFTED, DENIED = 0, 1, 2, 3
STATUS_NAMES = ("executed", "pending_approval", "drafted", "denied")
FOUNDER = "founder"


@dataclass(frozen=True)
class RuleFacts:
    """One enforced rule in one tool's model."""

    policy: Policy
    name: str
    kind: str  # invariant | deny | escalate | approval | min_autonomy
    rule: Any
    holds: Any  # the condition is true (an invariant: PASS)
    err: Any  # the condition is an ERROR
    fires: Any  # the rule's reason appears with its own effect
    violates: Any  # the rule makes the decision denied
    unsupported: str | None = None

    @property
    def label(self) -> str:
        return f"{self.policy.name}.{self.name}"


@dataclass(frozen=True)
class Example:
    """A concrete packet and the autonomy of the agent sending it."""

    tool: str
    autonomy: Autonomy
    packet: dict[str, Any]
    #: what OPA answers, by path, for the tool's `opa` statements (none: the tool delegates nothing)
    opa: Mapping[str, Any] = field(default_factory=dict)


def rule_nodes(policies: Iterable[Policy]) -> list[Node]:
    """The parsed conditions of the policies' rules (the ones cel-python can parse)."""
    nodes: list[Node] = []
    for expr in _exprs(policies):
        try:
            nodes.append(parse(expr.source))
        except Unsupported:
            continue
    return nodes


def _exprs(policies: Iterable[Policy]) -> Iterable[Expr]:
    for policy in policies:
        yield from (i.expr for i in policy.invariants)
        for rules in (policy.denies, policy.escalations, policy.approvals, policy.autonomy_rules):
            yield from (r.when for r in rules if r.when is not None)


def kinds_for(schema: ToolSchema, nodes: Iterable[Node]) -> dict[str, set[str]]:
    """The kinds the untyped paths of `tool` are used with (see `cel_smt.infer_kinds`)."""
    probe = Env("", schema.fields, {})
    return infer_kinds(nodes, probe.untyped, probe.typed_kind)


class DecisionModel:
    """The engine's decision for one symbolic packet of `schema.name` (see the module doc)."""

    def __init__(self, policy_set: PolicySet, schema: ToolSchema,
                 kinds: Mapping[str, set[str]], prefix: str = "") -> None:
        self.tool = schema.name
        self.schema = schema
        self.env = Env(prefix, schema.fields, kinds)
        self.translator = Translator(self.env)
        self.policies = tuple(p for p in policy_set.policies_for(self.tool) if p.enforced)
        tiers = [p.risk for p in self.policies if p.risk is not None]
        self.base: Risk | None = max(tiers) if tiers else None
        self.rules: list[RuleFacts] = []
        for policy in self.policies:
            self.rules += self._policy_rules(policy)
        # an `opa` statement's answer is free: OPA may allow or deny, and name any tier
        self.opa: list[tuple[str, Any, Any]] = []
        for delegation in delegations(self.policies):
            allow, tier = self.translator.fresh(z3.Bool), self.translator.fresh(z3.Int)
            self.env.constraints.append(z3.And(tier >= int(Risk.L0), tier <= int(Risk.L3)))
            self.opa.append((delegation.path, allow, tier))
        self._decide()

    @property
    def autonomy(self) -> Any:
        return self.env.autonomy

    @property
    def constraints(self) -> list[Any]:
        return self.env.constraints

    def condition(self, source: str) -> tuple[Any, Any]:
        """(holds, err) of a CEL condition over this packet; `Unsupported` when it is not."""
        return self.translator.condition(parse(source))

    # -- rules

    def _outcome(self, expr: Expr | None) -> tuple[Any, Any, str | None]:
        if expr is None:
            return TRUE, FALSE, None
        try:
            holds, err = self.condition(expr.source)
        except Unsupported as exc:
            fresh = self.translator.fresh
            return fresh(z3.Bool), fresh(z3.Bool), str(exc)
        return holds, err, None

    def _policy_rules(self, policy: Policy) -> list[RuleFacts]:
        facts: list[RuleFacts] = []
        below = self.env.autonomy
        for inv in policy.invariants:
            holds, err, why = self._outcome(inv.expr)
            bad = z3.Or(err, z3.Not(holds))
            facts.append(RuleFacts(policy, inv.name, "invariant", inv, holds, err, bad, bad, why))
        for deny in policy.denies:
            holds, err, why = self._outcome(deny.when)
            fires = z3.And(holds, z3.Not(err))
            facts.append(RuleFacts(policy, deny.name, "deny", deny, holds, err, fires,
                                   z3.Or(err, fires), why))
        for esc in policy.escalations:
            holds, err, why = self._outcome(esc.when)
            facts.append(RuleFacts(policy, esc.name, "escalate", esc, holds, err,
                                   z3.And(holds, z3.Not(err)), err, why))
        for rule in policy.approvals:
            holds, err, why = self._outcome(rule.when)
            facts.append(RuleFacts(policy, rule.name, "approval", rule, holds, err,
                                   z3.And(holds, z3.Not(err)), err, why))
        for floor in policy.autonomy_rules:
            holds, err, why = self._outcome(floor.when)
            evaluated = below < int(floor.level)
            fires = z3.And(evaluated, holds, z3.Not(err))
            facts.append(RuleFacts(policy, floor.name, "min_autonomy", floor, holds, err, fires,
                                   z3.And(evaluated, z3.Or(err, holds)), why))
        return facts

    # -- the decision

    def _decide(self) -> None:
        a = self.env.autonomy
        if self.base is None:
            self.violated: Any = TRUE
            self.risk: Any = z3.IntVal(int(Risk.L3))
            self.status: Any = z3.IntVal(DENIED)
            self.founder: Any = FALSE
            self.count: Any = z3.IntVal(1)
            self.approval_rules: list[tuple[ApprovalRule, Any]] = []
            return
        self.violated = z3.Or(FALSE, *(r.violates for r in self.rules), *(z3.Not(allow) for _, allow, _ in self.opa))
        risk: Any = z3.IntVal(int(self.base))
        for fact in self.rules:
            if fact.kind == "escalate" and fact.rule.tier > self.base:
                risk = z3.If(z3.And(fact.fires, risk < int(fact.rule.tier)),
                             z3.IntVal(int(fact.rule.tier)), risk)
        for _path, _allow, tier in self.opa:  # OPA's `risk` raises the tier, allowed or denied
            risk = z3.If(risk < tier, tier, risk)
        self.risk = risk
        self.approval_rules = [(r.rule, r.fires) for r in self.rules if r.kind == "approval"]
        asked = z3.Or(FALSE, *(fired for _, fired in self.approval_rules))
        matrix = z3.Or(risk >= int(Risk.L2), z3.And(a == int(Autonomy.A1), risk >= int(Risk.L1)))
        self.status = z3.If(self.violated, DENIED,
                            z3.If(a == int(Autonomy.A0), DRAFTED,
                                  z3.If(z3.Or(matrix, asked), PENDING, EXECUTED)))
        self.founder = z3.Or(risk == int(Risk.L3),
                             *(fired for rule, fired in self.approval_rules if rule.role == FOUNDER))
        count: Any = z3.IntVal(1)
        for rule, fired in self.approval_rules:
            count = z3.If(z3.And(fired, count < rule.count), z3.IntVal(rule.count), count)
        self.count = count

    def role_is(self, role: str) -> Any:
        """The approval's required role is `role` (meaningful when pending)."""
        if role == FOUNDER:
            return self.founder
        chosen: Any = z3.StringVal("approver")
        for rule, fired in reversed(self.approval_rules):  # the first fired with the top count
            chosen = z3.If(z3.And(fired, self.count == rule.count), z3.StringVal(rule.role),
                           chosen)
        return z3.And(z3.Not(self.founder), chosen == z3.StringVal(role))

    # -- examples

    def example(self, model: Any) -> Example:
        """The concrete packet `model` describes (fields nobody reads get sample values)."""
        read = _Reader(model)
        env = self.env
        packet: dict[str, Any] = {
            "packet_id": "analysis-example", "agent": "analysis-agent",
            "action": {"tool": self.tool, "params": {}}, "evidence": {}, "context": {},
        }
        if self.schema.fields is not None:
            packet["action"]["params"] = {
                name: value for name, field in self.schema.fields.items()
                if (value := self._param_value(read, field)) is not _ABSENT}
        roots = {"evidence": packet["evidence"], "context": packet["context"],
                 "params": packet["action"]["params"]}
        for key in sorted(env.present, key=lambda k: k.count(".")):
            path = Path(key.split(".")[0], tuple(key.split(".")[1:]))
            if path.root not in roots or not env.untyped(path) or not read.truth(env.present[key]):
                continue
            parent = roots[path.root]
            for name in path.fields[:-1]:
                inner = parent.get(name)
                if not isinstance(inner, dict):
                    break
                parent = inner
            else:
                parent[path.fields[-1]] = _json_value(read, env.paths.get(key))
        autonomy = Autonomy(read.whole(env.autonomy))
        opa = {path: {"allow": read.truth(allow), "risk": Risk(read.whole(tier)).name}
               for path, allow, tier in self.opa}
        return Example(self.tool, autonomy, packet, opa)

    def _param_value(self, read: _Reader, field: Field) -> Any:
        env = self.env
        name = f"params.{field.name}"
        if name not in env.present and name not in env.variables:
            return _sample(field) if field.required else _ABSENT
        if not field.required and not read.truth(env.present[name]):
            return _ABSENT
        var = env.variables.get(name)
        if field.kind in ("int", "number"):
            if var is None:
                return _sample(field)
            double = read.truth(env.variables[f"{name}:double"])
            return read.number(var, double)
        if field.kind == "string":
            return read.text(var) if var is not None else sample_string(field)
        if field.kind == "bool":
            return read.truth(var) if var is not None else False
        if field.kind == "list":
            size = env.variables.get(f"size({name})")
            count = read.whole(size) if size is not None else max(1, field.lengths[0] or 0)
            return [sample_string(field, i) for i in range(count)]
        return {}

    def block(self, model: Any) -> Any:
        """A constraint no packet equal to `model`'s satisfies (to ask for another)."""
        variables = list(self.env.variables.values())
        return z3.Or(FALSE, *(v != model.eval(v, model_completion=True) for v in variables))


_ABSENT = object()


def _sample(field: Field) -> Any:
    if field.kind in ("int", "number"):
        low = field.bounds[0] if field.bounds[0] is not None else 1
        value = max(low, min(1, field.bounds[1] if field.bounds[1] is not None else 1))
        return int(value) if field.kind == "int" else float(value)
    if field.kind == "string":
        return field.enum[0] if field.enum else sample_string(field)
    if field.kind == "bool":
        return False
    if field.kind == "list":
        return [sample_string(field, i) for i in range(max(1, field.lengths[0] or 0))]
    return {}


def _json_value(read: _Reader, term: Any) -> Any:
    """An untyped path's value: of its kind when `typed`, else of another kind."""
    if term is None:
        return True  # read only by has(): any value will do
    typed = read.truth(term.typed)
    if term.kind == "num":
        return read.number(term.val, read.truth(term.dbl)) if typed else True
    if term.kind == "string":
        return read.text(term.val) if typed else 0
    if term.kind == "bool":
        return read.truth(term.val) if typed else "x"
    return {} if typed else "x"


class _Reader:
    """Python values out of a Z3 model (unconstrained variables take a default)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def _eval(self, expr: Any) -> Any:
        return self.model.eval(expr, model_completion=True)

    def truth(self, expr: Any) -> bool:
        return bool(z3.is_true(self._eval(expr)))

    def whole(self, expr: Any) -> int:
        return int(self._eval(expr).as_long())

    def text(self, expr: Any) -> str:
        """The string, with Z3's `\\u{XX}` escapes turned back into characters."""
        raw = str(self._eval(expr).as_string())
        return re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), raw)

    def number(self, expr: Any, double: bool) -> int | float:
        value = self._eval(expr)
        if z3.is_int_value(value):
            exact = Fraction(value.as_long())
        elif z3.is_rational_value(value):
            exact = Fraction(value.numerator_as_long(), value.denominator_as_long())
        else:  # an algebraic number (from a product): its decimal approximation
            exact = Fraction(value.approx(20).as_decimal(20).rstrip("?"))
        if double:
            return float(exact)
        return int(exact)


def bind(model: DecisionModel, example: Example) -> list[Any]:
    """Constraints pinning `model`'s packet to the concrete `example` (its autonomy too): the
    model's reading of a real packet, to compare with the engine's (the test suite does)."""
    env = model.env
    out: list[Any] = [env.autonomy == int(example.autonomy)]
    packet = example.packet
    roots = {"params": packet["action"]["params"], "evidence": packet.get("evidence") or {},
             "context": packet.get("context") or {}}
    for key, var in env.variables.items():
        name, _, suffix = key.partition(":")
        present = name.endswith("?")
        found, value = _lookup(roots, name.removeprefix("size(").rstrip(")?"))
        if present:
            out.append(var == z3.BoolVal(found))
        elif key.startswith("size("):
            if isinstance(value, list):
                out.append(var == len(value))
        elif suffix == "double":
            out.append(var == z3.BoolVal(isinstance(value, float)))
        elif suffix:
            out.append(var == z3.BoolVal(found and _is_kind(value, suffix)))
        elif found:
            out += _equals(var, value)
    return out


def _lookup(roots: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    root, *fields = dotted.split(".")
    value: Any = roots.get(root)
    for name in fields:
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
    return True, value


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "bool": bool, "map": dict}[kind])


def _equals(var: Any, value: Any) -> list[Any]:
    """`var == value` when the value fits the variable's sort (another kind: no constraint)."""
    sort = var.sort()
    if sort == z3.BoolSort() and isinstance(value, bool):
        return [var == z3.BoolVal(value)]
    if sort == z3.StringSort() and isinstance(value, str):
        return [var == z3.StringVal(value)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        exact = Fraction(value)
        if sort == z3.IntSort():
            return [var == int(exact)] if exact.denominator == 1 else [FALSE]
        if sort == z3.RealSort():
            return [var == z3.RealVal(f"{exact.numerator}/{exact.denominator}")]
    return []
