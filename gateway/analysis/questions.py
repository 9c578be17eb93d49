"""The questions `warden policy analyze` answers about a policy set, each over every tool.

    l3-founder    no action at risk L3 executes, or waits for anyone but a founder, at any autonomy
    a1-approval   no action above L0 executes without an approval at autonomy A1
    dead-rules    rules that never fire (their condition is unsatisfiable or always an ERROR,
                  an invariant that can never fail, an escalation to a tier the tool already has)
                  or that another rule of the same policy makes redundant
    gaps          catalog tools no enforced policy covers (always denied as unknown), and numeric
                  params with a one-value hole: a value decided more leniently than both of its
                  neighbours, 1 (an int) or 1/1024 (a number) away, each caught by another rule
                  (a cap written `> 500000` beside one written `< 500000`)
    conflicts     two policies that disagree on one packet: one denies it, the other asks for an
                  approval (notes for authors, not failures)

The tools are the catalog's and every tool a policy names exactly. Each answer is a proof (Z3
found no packet) or a counter-example the engine confirmed (`gateway.analysis.search`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from dsl.model import DEFAULT_APPROVAL_EXPIRY, Policy, PolicySet, Risk
from gateway.analysis.cel_ast import Node, Unsupported, parse
from gateway.analysis.model import (
    DENIED, EXECUTED, FOUNDER, PENDING, DecisionModel, Example, RuleFacts, kinds_for, rule_nodes)
from gateway.analysis.schema import ToolSchema, catalog, schemas
from gateway.analysis.search import Searcher, Verdict
from gateway.engine.models import Decision

QUESTIONS = ("l3-founder", "a1-approval", "dead-rules", "gaps", "conflicts")
TITLES = {
    "l3-founder": "Can any L3 action execute without a founder's approval, at any autonomy?",
    "a1-approval": "Can any action above L0 execute without approval at autonomy A1?",
    "dead-rules": "Rules that can never fire, or that a stricter rule of their policy covers",
    "gaps": "Catalog tools no enforced policy covers; one-value holes in numeric params",
    "conflicts": "Policies that disagree on one packet (one denies, another asks for approval)",
    "assertions": "The policy authors' assertions",
}


@dataclass(frozen=True)
class Witness:
    """A packet (with the sender's autonomy) and what the engine decided for it."""

    example: Example
    decision: Decision
    role: str = ""  # what this packet shows (e.g. "below", "at", "above")


@dataclass
class Finding:
    question: str
    subject: str
    message: str
    fails: bool = True  # counts against the exit code (notes do not)
    witnesses: tuple[Witness, ...] = ()


@dataclass
class Answer:
    """One question's answer: what was proved, found, or left open."""

    question: str
    findings: list[Finding] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)  # subjects the question holds for
    inconclusive: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES[self.question]

    @property
    def holds(self) -> bool:
        return not any(f.fails for f in self.findings)


@dataclass(frozen=True)
class UnsupportedRule:
    """A rule outside the analysed subset: why, and for which tools (schemas differ)."""

    tools: tuple[str, ...]
    label: str
    reason: str


class Analysis:
    """One policy set, its tools and their models; the questions asked of them."""

    def __init__(self, policy_set: PolicySet, *, extra: Mapping[str, Sequence[str]] | None = None,
                 catalog_tools: Iterable[str] | None = None) -> None:
        self.policy_set = policy_set
        self.catalog_tools = sorted(catalog_tools if catalog_tools is not None
                                    else (spec.name for spec in catalog()))
        named = {t for p in policy_set.policies for t in p.applies_to.exact_tools}
        self.tools = sorted(set(self.catalog_tools) | named)
        self.schemas: dict[str, ToolSchema] = schemas(self.tools)
        self.extra = extra or {}
        self.searcher = Searcher(policy_set)
        self._kinds: dict[str, dict[str, set[str]]] = {}
        self._models: dict[tuple[str, str], DecisionModel] = {}

    # -- models

    def extra_for(self, tool: str) -> list[str]:
        """Conditions of assertions about `tool` (their paths' kinds count for inference)."""
        return [source for pattern, sources in self.extra.items()
                if fnmatch.fnmatchcase(tool, pattern) for source in sources]

    def kinds(self, tool: str) -> dict[str, set[str]]:
        kinds = self._kinds.get(tool)
        if kinds is None:
            nodes: list[Node] = rule_nodes(self.policy_set.policies_for(tool))
            for source in self.extra_for(tool):
                try:
                    nodes.append(parse(source))
                except Unsupported:
                    continue
            kinds = kinds_for(self.schemas[tool], nodes)
            self._kinds[tool] = kinds
        return kinds

    def model(self, tool: str, prefix: str = "") -> DecisionModel:
        key = (tool, prefix)
        model = self._models.get(key)
        if model is None:
            model = DecisionModel(self.policy_set, self.schemas[tool], self.kinds(tool), prefix)
            self._models[key] = model
        return model

    def covered(self, tool: str) -> bool:
        return self.model(tool).base is not None

    def unsupported(self) -> list[UnsupportedRule]:
        """Every enforced rule outside the subset, with the tools it was met for."""
        seen: dict[tuple[str, str], list[str]] = {}
        for tool in self.tools:
            for fact in self.model(tool).rules:
                if fact.unsupported is not None:
                    seen.setdefault((fact.label, fact.unsupported), []).append(tool)
        return [UnsupportedRule(tuple(tools), label, reason)
                for (label, reason), tools in seen.items()]

    # -- the questions

    def answer(self, question: str) -> Answer:
        method: Callable[[], Answer] = {
            "l3-founder": self.l3_founder, "a1-approval": self.a1_approval,
            "dead-rules": self.dead_rules, "gaps": self.gaps, "conflicts": self.conflicts,
        }[question]
        return method()

    def _per_tool(self, question: str, query: Callable[[DecisionModel], Any],
                  confirm: Callable[[Decision], bool], message: Callable[[Decision], str]) -> Answer:
        answer = Answer(question)
        for tool in self.tools:
            model = self.model(tool)
            verdict = self.searcher.find(
                [model], query(model),
                lambda _e, d: None if confirm(d[0]) else f"the engine decided {d[0].status}")
            self._record(answer, tool, verdict, lambda v: Finding(
                question, tool, message(v.decisions[0]),
                witnesses=(Witness(v.examples[0], v.decisions[0]),)))
        return answer

    @staticmethod
    def _record(answer: Answer, subject: str, verdict: Verdict,
                finding: Callable[[Verdict], Finding]) -> None:
        if verdict.proved:
            answer.proved.append(subject)
        elif verdict.found:
            answer.findings.append(finding(verdict))
        else:
            answer.inconclusive.append(f"{subject}: {verdict.note}")

    def l3_founder(self) -> Answer:
        def query(m: DecisionModel) -> Any:
            return z3.And(m.risk == int(Risk.L3), z3.Or(
                m.status == EXECUTED, z3.And(m.status == PENDING, z3.Not(m.founder))))

        def confirm(d: Decision) -> bool:
            return d.risk == Risk.L3 and (d.status == "executed" or (
                d.status == "pending_approval" and d.approval is not None
                and d.approval.required_role != FOUNDER))

        return self._per_tool("l3-founder", query, confirm, lambda d: (
            f"an L3 action is {d.status} at autonomy {d.autonomy.name}"
            + (f", waiting for {d.approval.required_role}" if d.approval else "")))

    def a1_approval(self) -> Answer:
        def query(m: DecisionModel) -> Any:
            return z3.And(m.autonomy == 1, m.risk >= int(Risk.L1), m.status == EXECUTED)

        def confirm(d: Decision) -> bool:
            return d.risk >= Risk.L1 and d.status == "executed"

        return self._per_tool("a1-approval", query, confirm,
                              lambda d: f"an {d.risk.name} action executes at A1 without approval")

    # -- dead rules

    def dead_rules(self) -> Answer:
        answer = Answer("dead-rules")
        for policy in self.policy_set.policies:
            if not policy.enforced:
                continue
            tools = [t for t in self.tools if policy.applies_to.matches(t)]
            if not tools:
                continue
            labels = [fact.name for fact in self.model(tools[0]).rules if fact.policy is policy]
            for name in labels:
                self._dead_rule(answer, policy, name, tools)
        return answer

    def _facts(self, policy: Policy, name: str, tools: Sequence[str]) -> list[tuple[DecisionModel, RuleFacts]]:
        out = []
        for tool in tools:
            model = self.model(tool)
            out += [(model, f) for f in model.rules if f.policy is policy and f.name == name]
        return out

    def _dead_rule(self, answer: Answer, policy: Policy, name: str, tools: Sequence[str]) -> None:
        facts = self._facts(policy, name, tools)
        label = f"{policy.name}.{name}"
        if any(f.unsupported for _, f in facts):
            answer.inconclusive.append(f"{label}: unsupported ({facts[0][1].unsupported})")
            return
        kind = facts[0][1].kind
        if kind == "approval" and facts[0][1].rule.when is None:
            answer.proved.append(label)
            return
        if kind == "escalate" and all(m.base is not None and f.rule.tier <= m.base
                                      for m, f in facts):
            answer.findings.append(Finding("dead-rules", label, (
                f"escalates to {facts[0][1].rule.tier.name}, which every tool it applies to "
                f"({', '.join(tools)}) already has as its base tier: it never raises the risk")))
            return
        never_ok = [self._exists(m, z3.Not(f.err)) for m, f in facts]
        if all(v.proved for v in never_ok):
            answer.findings.append(Finding("dead-rules", label, (
                "its condition is an ERROR for every packet (a field the tool does not have?): "
                f"every {', '.join(tools)} action is denied")))
            return
        effect = "fails" if kind == "invariant" else "fires"
        firing = [(m, f, self._exists(m, f.violates if kind == "invariant" else f.fires))
                  for m, f in facts]
        if any(v.outcome == "inconclusive" for _, _, v in firing):
            answer.inconclusive.append(f"{label}: the solver gave up")
            return
        live = [(m, f) for m, f, v in firing if v.found]
        if not live:
            what = ("can never fail or error" if kind == "invariant"
                    else "can never fire: its condition is unsatisfiable within the params' ranges")
            answer.findings.append(Finding("dead-rules", label, f"{what} (proved)"))
            return
        covered = [(m, f, self._redundant(m, f)) for m, f in live]
        if all(v.proved for _, _, v in covered):
            stricter = sorted({o.name for m, f in live for o in self._dominators(m, f)})
            answer.findings.append(Finding("dead-rules", label, (
                f"redundant: whenever it {effect}, a stricter rule of policy {policy.name} "
                f"({', '.join(stricter)}) decides the same or more (proved)"),
                witnesses=tuple(w for m, f in live[:1] if (w := self._firing(m, f)) is not None)))
            return
        answer.proved.append(label)

    def _exists(self, model: DecisionModel, query: Any) -> Verdict:
        """Z3 alone (no engine): is there a packet? Used where no counter-example is shown."""
        return self.searcher.find([model], query, lambda _e, _d: None)

    def _dominators(self, model: DecisionModel, fact: RuleFacts) -> list[RuleFacts]:
        """The rules of fact's policy whose firing makes fact's own effect moot."""
        others = [o for o in model.rules if o.policy is fact.policy and o is not fact]
        out = [o for o in others if o.kind in ("invariant", "deny", "min_autonomy")]
        for other in others:
            if fact.kind == "escalate" and other.kind == "escalate" \
                    and other.rule.tier >= fact.rule.tier:
                out.append(other)
            if fact.kind == "approval" and other.kind == "approval" and _covers(other.rule, fact.rule):
                out.append(other)
        return out

    def _redundant(self, model: DecisionModel, fact: RuleFacts) -> Verdict:
        others = [o for o in model.rules if o.policy is fact.policy and o is not fact]
        covering = [o.violates for o in others]
        covering += [o.fires for o in self._dominators(model, fact)
                     if o.kind in ("escalate", "approval")]
        effect = fact.violates if fact.kind == "invariant" else fact.fires
        return self._exists(model, z3.And(effect, z3.Not(z3.Or(False, *covering))))

    def _firing(self, model: DecisionModel, fact: RuleFacts) -> Witness | None:
        """A packet on which `fact` fires (shown with a redundant rule), engine-confirmed."""
        effect = fact.violates if fact.kind == "invariant" else fact.fires
        verdict = self.searcher.find([model], effect, lambda _e, d: None if any(
            r.policy == fact.policy.name and r.rule == fact.name for r in d[0].reasons)
            else "the rule did not fire")
        if not verdict.found:
            return None
        return Witness(verdict.examples[0], verdict.decisions[0], f"{fact.label} fires")

    # -- gaps

    def gaps(self) -> Answer:
        answer = Answer("gaps")
        for tool in self.catalog_tools:
            if self.covered(tool):
                continue
            model = self.model(tool)
            verdict = self.searcher.find([model], z3.BoolVal(True), lambda _e, d: None if any(
                r.rule == "unknown_tool" for r in d[0].reasons) else "not an unknown tool")
            answer.findings.append(Finding("gaps", tool, (
                "no enforced policy gives this catalog tool a risk tier: every packet is "
                "denied as an unknown tool"), witnesses=tuple(
                Witness(e, d) for e, d in zip(verdict.examples, verdict.decisions))))
        for policy in self.policy_set.policies:
            unknown = [t for t in policy.applies_to.exact_tools if t not in self.catalog_tools]
            unknown += [g for g in policy.applies_to.globs
                        if not any(fnmatch.fnmatchcase(t, g) for t in self.tools)]
            if unknown:
                answer.findings.append(Finding("gaps", policy.name, (
                    f"names tools the catalog does not have: {', '.join(unknown)}"), fails=False))
        for tool in self.tools:
            if not self.covered(tool) or self.schemas[tool].fields is None:
                continue
            holes_found = False
            fields = self.schemas[tool].fields or {}
            for name, spec in fields.items():
                if spec.kind not in ("int", "number") \
                        or f"params.{name}" not in self.model(tool).env.variables:
                    continue
                verdict = self._hole(tool, name, spec.kind == "int")
                if verdict.found:
                    holes_found = True
                    answer.findings.append(self._hole_finding(tool, name, verdict))
                elif not verdict.proved:
                    answer.inconclusive.append(f"{tool} params.{name}: {verdict.note}")
            if not holes_found:
                answer.proved.append(tool)
        return answer

    def _hole(self, tool: str, name: str, whole: bool) -> Verdict:
        """Three packets equal but for params.NAME, one step apart (1 for an int, 1/1024 for a
        number: a single point between two rules), the middle one decided more leniently."""
        copies = [self.model(tool, prefix) for prefix in ("below:", "at:", "above:")]
        key = f"params.{name}"
        below, at, above = copies
        same = [at.env.variables[k] == c.env.variables[k] for c in (below, above)
                for k in at.env.variables if k != key and k in c.env.variables]
        value = [z3.ToReal(c.env.variables[key]) if whole else c.env.variables[key]
                 for c in copies]
        step = z3.RealVal(1) if whole else z3.RealVal("1/1024")

        def rank(m: DecisionModel) -> Any:
            return z3.If(m.status == DENIED, 2, m.status)

        # the two sides are caught by different rules: one rule on both sides with a gap
        # between is a band it leaves out on purpose (a change of more than 20% either way)
        apart = [z3.Not(z3.And(_effect(b), _effect(a)))
                 for b, a in zip(below.rules, above.rules)]
        query = z3.And(*same, *apart, at.autonomy == below.autonomy,
                       at.autonomy == above.autonomy, at.autonomy >= 1,
                       value[1] == value[0] + step, value[2] == value[1] + step,
                       rank(at) < rank(below), rank(at) < rank(above))

        def confirm(_e: Sequence[Example], d: Sequence[Decision]) -> str | None:
            ranks = [_RANK.get(x.status, 0) for x in d]
            return None if ranks[1] < ranks[0] and ranks[1] < ranks[2] else (
                f"the engine decided {', '.join(x.status for x in d)}")

        return self.searcher.find(copies, query, confirm)

    @staticmethod
    def _hole_finding(tool: str, name: str, verdict: Verdict) -> Finding:
        values = [e.packet["action"]["params"][name] for e in verdict.examples]
        statuses = [d.status for d in verdict.decisions]
        return Finding("gaps", f"{tool} params.{name}", (
            f"a hole at params.{name} = {values[1]}: {statuses[1]} there, while {values[0]} is "
            f"{statuses[0]} and {values[2]} is {statuses[2]}"), witnesses=tuple(
            Witness(e, d, role) for e, d, role in
            zip(verdict.examples, verdict.decisions, ("below", "at", "above"))))

    # -- conflicts

    def conflicts(self) -> Answer:
        answer = Answer("conflicts")
        for tool in self.tools:
            model = self.model(tool)
            for denier in model.policies:
                for asker in model.policies:
                    if asker is not denier:
                        self._conflict(answer, model, denier, asker)
        return answer

    def _conflict(self, answer: Answer, model: DecisionModel, denier: Policy,
                  asker: Policy) -> None:
        denies = [f.violates for f in model.rules if f.policy is denier]
        asks = [f.fires for f in model.rules if f.policy is asker and (
            f.kind == "approval" or (f.kind == "escalate" and f.rule.tier >= Risk.L2))]
        if not denies or not asks:
            return
        others = [f.violates for f in model.rules if f.policy is not denier]
        query = z3.And(model.autonomy >= 1, z3.Or(*denies), z3.Or(*asks))

        def confirm(_e: Sequence[Example], d: Sequence[Decision]) -> str | None:
            by = {r.policy: r.effect for r in d[0].reasons}
            ok = d[0].status == "denied" and denier.name in by and by.get(asker.name) in (
                "approval", "escalate")
            return None if ok else "the engine did not show both"

        # a packet only `denier` denies shows the interaction best; any will do otherwise
        verdict = self.searcher.find([model], z3.And(query, z3.Not(z3.Or(False, *others))),
                                     confirm)
        if not verdict.found:
            verdict = self.searcher.find([model], query, confirm)
        subject = f"{model.tool}: {denier.name} / {asker.name}"
        if verdict.found:
            answer.findings.append(Finding("conflicts", subject, (
                f"{denier.name} denies a packet that {asker.name} would send to an approver "
                "(the denial wins; the approver never sees it)"), fails=False,
                witnesses=(Witness(verdict.examples[0], verdict.decisions[0]),)))
        elif verdict.proved:
            answer.proved.append(subject)
        else:
            answer.inconclusive.append(f"{subject}: {verdict.note}")


def _effect(fact: RuleFacts) -> Any:
    """The rule shows in the decision: it fires, or it violates (an invariant, an ERROR)."""
    return z3.Or(fact.fires, fact.violates)


_RANK = {"allowed": 0, "executed": 0, "pending_approval": 1, "denied": 2}


def _covers(stronger: Any, weaker: Any) -> bool:
    """An approval rule that asks at least as much as another: same role or a founder, at least
    as many people, an expiry no longer."""
    expiry = stronger.expires_in or DEFAULT_APPROVAL_EXPIRY
    return (stronger.role in (weaker.role, FOUNDER) and stronger.count >= weaker.count
            and expiry <= (weaker.expires_in or DEFAULT_APPROVAL_EXPIRY))
