"""Asking Z3 for a packet, and having the engine confirm it.

`Searcher.find(models, query, confirm)` looks for packets (one per model: copies of a packet
that differ in one field are several models) satisfying `query`. Z3 says:

- unsat: no packet does, the claim is **proved** (over the model; see `gateway.analysis.model`);
- sat: the packets are built, checked against the tools' params models, and decided by
  `gateway.engine.Decider`; `confirm` says whether the engine shows what was claimed. Only then
  is it a **counter-example**. When it does not (an unsupported rule, a double rounding the
  reals did not), those values are ruled out and Z3 is asked again, a few times at most. An
  unsat after that is still a proof when every rule is in the subset (the values ruled out
  decide the packet); with a rule outside it, it is inconclusive;
- unknown (a timeout, non-linear arithmetic it gives up on): **inconclusive**, said as such.

Readable packets first: Z3 is asked with the model's preferences (ints sent as ints, evidence
of the kind policies expect, small numbers), then with fewer, then without.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import z3

from dsl.model import PolicySet
from gateway.analysis.model import DecisionModel, Example
from gateway.analysis.schema import valid_params
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated
from gateway.engine.models import Decision, Packet

#: The time every example is decided at (no supported rule reads `now`).
NOW = datetime(2030, 1, 1, tzinfo=UTC)
AGENT = "analysis-agent"

Confirm = Callable[[Sequence[Example], Sequence[Decision]], str | None]


@dataclass(frozen=True)
class Verdict:
    outcome: str  # proved | counterexample | inconclusive
    examples: tuple[Example, ...] = ()
    decisions: tuple[Decision, ...] = ()
    note: str | None = None

    @property
    def proved(self) -> bool:
        return self.outcome == "proved"

    @property
    def found(self) -> bool:
        return self.outcome == "counterexample"


class Searcher:
    """Solver calls with a time limit, and the engine that confirms what they find."""

    def __init__(self, policy_set: PolicySet, *, timeout_ms: int = 10_000, tries: int = 6) -> None:
        self.engine = Decider(policy_set)
        self.timeout_ms = timeout_ms
        self.tries = tries
        self.solver_calls = 0

    def decide(self, example: Example) -> Decision:
        """What the engine decides for `example` (as `warden policy explain` would, not dry)."""
        packet = Packet.model_validate(example.packet)
        agent = Agent(name=AGENT, autonomy=example.autonomy)
        answers = {path: Delegated.of(answer) for path, answer in example.opa.items()}
        return self.engine.decide(packet, agent, now=NOW, delegated=answers)

    def find(self, models: Sequence[DecisionModel], query: Any, confirm: Confirm) -> Verdict:
        solver = z3.Solver()
        solver.set("timeout", self.timeout_ms)
        for model in models:
            solver.add(*model.constraints)
        solver.add(query)
        prefer, small = z3.Bool("~prefer"), z3.Bool("~small")
        solver.add(z3.Implies(prefer, z3.And(True, *(n for m in models for n in m.env.nice))),
                   z3.Implies(small, z3.And(True, *(n for m in models for n in m.env.small))))
        refuted: list[str] = []
        loose = any(f.unsupported for m in models for f in m.rules)
        for _ in range(self.tries):
            answer = self._check(solver, prefer, small)
            if answer == z3.unsat:
                if refuted and loose:
                    # a refuted candidate stands for every packet with its values; a rule outside
                    # the subset may read what they leave open, so no proof follows
                    return Verdict("inconclusive", note=(
                        f"the engine refuted {len(refuted)} candidate(s) (first: {refuted[0]}), "
                        "and rules outside the analysed subset may decide others"))
                note = (f"{len(refuted)} candidate(s) refuted by the engine on the way"
                        if refuted else None)
                return Verdict("proved", note=note)
            if answer != z3.sat:
                return Verdict("inconclusive", note=f"the solver gave up ({solver.reason_unknown()})")
            found = solver.model()
            problem = self._try(models, found, confirm)
            if isinstance(problem, Verdict):
                return problem
            refuted.append(problem)
            solver.add(z3.Or(*(m.block(found) for m in models)))
        return Verdict("inconclusive", note=(
            f"the engine did not confirm the {len(refuted)} candidates found (first: {refuted[0]}): "
            "they sit where a rule outside the subset decides, or where doubles round otherwise "
            "than the reals"))

    def _try(self, models: Sequence[DecisionModel], found: Any,
             confirm: Confirm) -> Verdict | str:
        """The counter-example `found` describes, confirmed; or why it is not one."""
        try:
            examples = tuple(m.example(found) for m in models)
        except (ValueError, OverflowError) as exc:  # a number no JSON packet holds
            return f"no packet holds the solver's values ({exc})"
        problem = next((f"{e.tool} params {p}" for m, e in zip(models, examples)
                        if (p := valid_params(m.schema, e.packet["action"]["params"]))), None)
        if problem is not None:
            return problem
        try:
            decisions = tuple(self.decide(e) for e in examples)
        except ValueError as exc:  # pydantic's ValidationError: not a valid packet
            return f"not a valid packet: {str(exc).splitlines()[0]}"
        problem = confirm(examples, decisions)
        return Verdict("counterexample", examples, decisions) if problem is None else problem

    def _check(self, solver: z3.Solver, prefer: Any, small: Any) -> Any:
        """The most readable packet first: small numbers, then readable ones, then any."""
        for assumptions in ((prefer, small), (prefer,), ()):
            self.solver_calls += 1
            answer = solver.check(*assumptions)
            if answer == z3.sat:
                return answer
            if answer == z3.unsat and not (assumptions and len(solver.unsat_core())):
                return answer  # unsat whatever the preferences: a proof
        return answer
