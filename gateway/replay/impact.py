"""Impact analysis: what a candidate policy set would have decided for recorded history.

Every recorded decision in the window is decided again under the candidate, with the packet
and the inputs it was recorded with (`gateway.engine.inputs`), and compared with the decision as
recorded. `Impact` accumulates as decisions stream past (counters and a few examples, never the
decisions themselves), so memory stays flat however long the window.

The report (`Impact.report()`, the stable JSON of `warden policy impact --json`, format
`warden.policy-impact.v1`):

    candidate      {"digest", "policies"}
    window         {"from_seq", "since", "first_seq", "last_seq"}
    decisions      {"replayed", "changed", "unchanged", "not_replayable"}
    transitions    [{"from", "to", "count", "by_tool": {tool: n}, "by_agent": {agent: n},
                     "examples": [{"decision_id", "seq", "tool", "agent",
                                   "before": {"status", "risk", "reasons"},
                                   "after": {"status", "risk", "reasons"}}]}]
    risk_changes   [{"from", "to", "count"}]
    money          {"newly_blocked": [{"tool", "currency", "amount", "decisions"}],
                    "newly_allowed": [...]}   amounts in the currency's minor unit
    objects        {"newly_blocked": {tool: distinct objects}, "newly_allowed": {...}}
    rules          [{"policy", "rule", "before", "after", "delta"}]   fired (enforced) counts
    shadow_enforced [{"policy", "decisions"}]   shadow policies the candidate enforces, and the
                                               decisions in which they would now act
    changed        decisions whose status or risk differ; the exit code counts these and the
                   decisions not replayable under the candidate

Statuses are the engine's: a recorded `executing` is `executed`. "Newly blocked" is a decision
that was executed and would not be now; "newly allowed" the reverse. Lists are sorted (by count,
then name), so two runs over the same history give the same bytes.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dsl.model import PolicySet
from gateway.engine.decider import Decider
from gateway.replay.history import History, HistoryError, Recorded, Window
from gateway.replay.replay import Sets, UnansweredDelegation, comparable, decide_under, inputs_of

FORMAT = "warden.policy-impact.v1"
EXAMPLES_PER_TRANSITION = 3
#: How many distinct objects per tool and direction are remembered (the count is exact up to it).
MAX_OBJECTS = 100_000

#: Params that name the object an action is about, in the order they are looked for.
_OBJECT_PARAMS = ("charge", "destination", "creator_id", "variant_id", "product_id", "code", "deal_id",
                  "record_id", "email", "discount_id", "note_id", "transfer_id")


def money_of(params: dict[str, Any]) -> tuple[int, str] | None:
    """The money an action moves, in minor units, when its params say: `amount`, a reorder's
    `delta` × `unit_cost`, or a price (`new_price`, `price`), with their `currency`."""
    currency = params.get("currency")
    if not isinstance(currency, str):
        return None
    amount, delta, unit_cost = _number(params, "amount"), _number(params, "delta"), _number(params, "unit_cost")
    if amount is not None:
        return int(amount), currency.lower()
    if delta is not None and unit_cost is not None and math.isfinite(cost := abs(delta) * unit_cost):
        return int(cost), currency.lower()
    for name in ("new_price", "price"):
        price = _number(params, name)
        if price is not None:
            return int(price), currency.lower()
    return None


def _number(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def objects_of(params: dict[str, Any]) -> list[str]:
    ids = params.get("contact_ids")
    if isinstance(ids, list):
        return [f"contact_ids:{i}" for i in ids]
    for name in _OBJECT_PARAMS:
        value = params.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return [f"{name}:{value}"]
    return []


def _fired(decision: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r.get("policy", ""), r.get("rule", "")) for r in decision.get("reasons", ())
            if r.get("enforced", True)}


def _side(decision: dict[str, Any]) -> dict[str, Any]:
    return {"status": decision.get("status"), "risk": decision.get("risk"),
            "reasons": [r.get("message") for r in decision.get("reasons", ())]}


@dataclass
class _Transition:
    count: int = 0
    by_tool: Counter[str] = field(default_factory=Counter)
    by_agent: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)


class Impact:
    """The running tally of a candidate set against recorded decisions."""

    def __init__(self, candidate: PolicySet, *, examples: int = EXAMPLES_PER_TRANSITION) -> None:
        self.candidate = candidate
        self.examples = examples
        self.enforced = {p.name for p in candidate.policies if p.mode == "enforce"}
        self.recorded_modes: dict[str, str] = {}
        self.replayed = self.changed = self.not_replayable = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.transitions: dict[tuple[str, str], _Transition] = defaultdict(_Transition)
        self.risk_changes: Counter[tuple[str, str]] = Counter()
        self.money: dict[str, dict[tuple[str, str], list[int]]] = {"newly_blocked": {}, "newly_allowed": {}}
        self.objects: dict[str, dict[str, set[str]]] = {"newly_blocked": {}, "newly_allowed": {}}
        self.rules_before: Counter[tuple[str, str]] = Counter()
        self.rules_after: Counter[tuple[str, str]] = Counter()
        self.shadow_acting: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()

    def note_policy_modes(self, policy_set: PolicySet) -> None:
        """Remember how a recorded set ran each policy (for shadow policies the candidate enforces)."""
        for policy in policy_set.policies:
            self.recorded_modes.setdefault(policy.name, policy.mode)

    def skip(self, problem: str) -> None:
        self.not_replayable += 1
        self.problems[problem] += 1

    def add(self, recorded: Recorded, after: dict[str, Any]) -> None:
        before = comparable(recorded.decision)
        self.replayed += 1
        self.first_seq = recorded.seq if self.first_seq is None else self.first_seq
        self.last_seq = recorded.seq
        fired_before, fired_after = _fired(before), _fired(after)
        self.rules_before.update(fired_before)
        self.rules_after.update(fired_after)
        for policy, _rule in fired_after:
            if self.recorded_modes.get(policy) == "shadow" and policy in self.enforced:
                self.shadow_acting[policy] += 1
        status_before, status_after = before.get("status"), after.get("status")
        risk_before, risk_after = before.get("risk"), after.get("risk")
        if status_before == status_after and risk_before == risk_after:
            return
        self.changed += 1
        if risk_before != risk_after:
            self.risk_changes[(str(risk_before), str(risk_after))] += 1
        if status_before == status_after:
            return
        packet = recorded.packet
        tool = str(packet.get("action", {}).get("tool", ""))
        agent = str(packet.get("agent", ""))
        transition = self.transitions[(str(status_before), str(status_after))]
        transition.count += 1
        transition.by_tool[tool] += 1
        transition.by_agent[agent] += 1
        if len(transition.examples) < self.examples:
            transition.examples.append({"decision_id": recorded.decision_id, "seq": recorded.seq,
                                        "tool": tool, "agent": agent,
                                        "before": _side(before), "after": _side(after)})
        direction = ("newly_blocked" if status_before == "executed" else
                     "newly_allowed" if status_after == "executed" else None)
        if direction is not None:
            params = packet.get("action", {}).get("params", {})
            moved = money_of(params) if isinstance(params, dict) else None
            if moved is not None:
                tally = self.money[direction].setdefault((tool, moved[1]), [0, 0])
                tally[0] += moved[0]
                tally[1] += 1
            seen = self.objects[direction].setdefault(tool, set())
            for name in objects_of(params) if isinstance(params, dict) else ():
                if len(seen) < MAX_OBJECTS:
                    seen.add(name)

    @property
    def counted(self) -> int:
        """What the threshold counts: the decisions that changed, and those whose outcome under
        the candidate cannot be known (fail closed: an unknown is not a pass)."""
        return self.changed + self.not_replayable

    def exceeds(self, threshold: float, *, percent: bool) -> bool:
        """Whether `counted` is over `threshold` (a count, or a percentage of every decision read)."""
        if percent:
            read = self.replayed + self.not_replayable
            return read > 0 and 100.0 * self.counted / read > threshold
        return self.counted > threshold

    def report(self, *, window: Window = Window()) -> dict[str, Any]:
        transitions = sorted(self.transitions.items(), key=lambda kv: (-kv[1].count, kv[0]))
        rules = sorted(set(self.rules_before) | set(self.rules_after))
        return {
            "format": FORMAT,
            "candidate": {"digest": self.candidate.digest,
                          "policies": [p.name for p in self.candidate.policies]},
            "window": {"from_seq": window.from_seq,
                       "since": None if window.since is None else window.since.isoformat(),
                       "first_seq": self.first_seq, "last_seq": self.last_seq},
            "decisions": {"replayed": self.replayed, "changed": self.changed,
                          "unchanged": self.replayed - self.changed,
                          "not_replayable": self.not_replayable},
            "not_replayable": [{"reason": reason, "decisions": n}
                               for reason, n in sorted(self.problems.items(), key=lambda kv: (-kv[1], kv[0]))],
            "transitions": [{"from": f, "to": t, "count": tr.count, "by_tool": _sorted(tr.by_tool),
                             "by_agent": _sorted(tr.by_agent), "examples": tr.examples}
                            for (f, t), tr in transitions],
            "risk_changes": [{"from": f, "to": t, "count": n}
                             for (f, t), n in sorted(self.risk_changes.items(), key=lambda kv: (-kv[1], kv[0]))],
            "money": {direction: [{"tool": tool, "currency": currency, "amount": amount, "decisions": n}
                                  for (tool, currency), (amount, n) in sorted(tallies.items())]
                      for direction, tallies in self.money.items()},
            "objects": {direction: {tool: len(seen) for tool, seen in sorted(by_tool.items())}
                        for direction, by_tool in self.objects.items()},
            "rules": [{"policy": p, "rule": r, "before": self.rules_before[(p, r)],
                       "after": self.rules_after[(p, r)],
                       "delta": self.rules_after[(p, r)] - self.rules_before[(p, r)]}
                      for p, r in rules if self.rules_before[(p, r)] != self.rules_after[(p, r)]],
            "shadow_enforced": [{"policy": p, "decisions": self.shadow_acting[p]}
                                for p in sorted(n for n in self.enforced if self.recorded_modes.get(n) == "shadow")],
            "changed": self.changed,
        }


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def analyse(history: History, candidate: PolicySet, window: Window = Window(),
            *, sets: Sets | None = None, examples: int = EXAMPLES_PER_TRANSITION) -> Impact:
    """Stream the window's decisions through `candidate` into an `Impact`. `sets` (a
    `gateway.replay.replay.Sets` over the same history) lets it learn how the recorded sets ran
    each policy, for shadow policies that the candidate enforces."""
    impact = Impact(candidate, examples=examples)
    deciders: dict[timedelta, Decider] = {}
    seen_digests: set[str] = set()
    for recorded in history.decisions(window):
        try:
            inputs = inputs_of(recorded)
        except HistoryError as exc:
            impact.skip(str(exc).split(": ", 1)[-1])
            continue
        digest = recorded.decision.get("policy_digest")
        if sets is not None and isinstance(digest, str) and digest not in seen_digests:
            seen_digests.add(digest)
            recorded_set = sets.policy_set(digest)
            if isinstance(recorded_set, PolicySet):
                impact.note_policy_modes(recorded_set)
        decider = deciders.get(inputs.approval_expiry)
        if decider is None:
            decider = deciders[inputs.approval_expiry] = Decider(candidate, approval_expiry=inputs.approval_expiry)
        try:
            again = decide_under(recorded, decider, inputs)
        except UnansweredDelegation as exc:
            impact.skip(str(exc))
            continue
        except ValueError:
            impact.skip("the recorded packet is not a valid packet today")
            continue
        impact.add(recorded, comparable(again.model_dump(mode="json")))
    return impact
