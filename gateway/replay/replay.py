"""Decide a recorded packet again and say what, if anything, differs.

`Replayer.replay(recorded)` compiles the policy set the decision names (from the history, once
per digest), rebuilds the packet and the inputs the entry records (`gateway.engine.inputs`) and
runs the engine: the same function of the same arguments must give the same decision, so any
difference is a determinism bug (or, for an entry from before inputs were recorded, a
reconstruction that was not exact, which the result says). `decide_under(recorded, decider)` is
the same step under any other set, for impact analysis.

What is compared: the decision as recorded, minus its id, audit reference and execution (which
come after the engine). A recorded `executing` is the engine's `executed` (the gateway renames it
until the connector confirms).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from dsl import PolicyCompileError, compile_sources
from dsl.model import PolicySet
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated, delegated_answers
from gateway.engine.inputs import DecisionInputs, InputsError, recorded_inputs
from gateway.engine.models import Decision, Packet
from gateway.replay.history import History, HistoryError, Recorded

#: The decision's members that the engine does not decide.
_AFTER_THE_ENGINE = ("decision_id", "audit", "execution")
#: How the gateway renames an engine status before the connector confirms.
_RECORDED_AS = {"executing": "executed"}


def comparable(decision: dict[str, Any]) -> dict[str, Any]:
    """A decision's JSON as the engine made it (see the module's docstring)."""
    shown = {k: v for k, v in decision.items() if k not in _AFTER_THE_ENGINE}
    status = shown.get("status")
    if isinstance(status, str):
        shown["status"] = _RECORDED_AS.get(status, status)
    return shown


@dataclass(frozen=True)
class Difference:
    field: str
    recorded: Any
    replayed: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "recorded": self.recorded, "replayed": self.replayed}


@dataclass(frozen=True)
class Replayed:
    """One decision decided again: identical, different (and how), or not replayable (why)."""

    recorded: Recorded
    policy_digest: str | None
    replayed: dict[str, Any] | None = None
    differences: tuple[Difference, ...] = ()
    reconstructed: bool = False
    problem: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return self.problem is None and not self.differences

    @property
    def verdict(self) -> str:
        if self.problem is not None:
            return "not_replayable"
        return "identical" if not self.differences else "different"

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.recorded.decision_id, "seq": self.recorded.seq, "kind": self.recorded.kind,
            "policy_digest": self.policy_digest, "verdict": self.verdict,
            "inputs": "reconstructed" if self.reconstructed else "recorded",
            "differences": [d.to_json() for d in self.differences],
            "problem": self.problem, "notes": list(self.notes),
            "recorded": comparable(self.recorded.decision), "replayed": self.replayed,
        }


def differences(before: dict[str, Any], after: dict[str, Any]) -> tuple[Difference, ...]:
    """Member by member, in a stable order, the ones that differ."""
    keys = sorted(set(before) | set(after))
    return tuple(Difference(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k))


class Sets:
    """Compiled policy sets by digest, each compiled once from the history's stored files."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._compiled: dict[str, PolicySet | str] = {}
        self._deciders: dict[tuple[str, timedelta], Decider] = {}
        #: digests whose files were compiled with a grammar other than the one they were digested with
        self.regrammared: set[str] = set()

    def policy_set(self, digest: str) -> PolicySet | str:
        """The set named `digest`, or why it cannot be had."""
        found = self._compiled.get(digest)
        if found is None:
            found = self._compile(digest)
            self._compiled[digest] = found
        return found

    def _compile(self, digest: str) -> PolicySet | str:
        files = self.history.policy_files(digest)
        if files is None:
            return (f"policy set {digest} is not kept (it was activated before policy sets were "
                    "stored by digest)")
        try:
            compiled = compile_sources(files)
        except PolicyCompileError as exc:
            first = exc.diagnostics[0].render() if exc.diagnostics else "no diagnostics"
            return f"policy set {digest} no longer compiles: {first}"
        if compiled.digest != digest:
            # the files are the ones recorded; only the grammar around them changed since
            compiled = replace(compiled, digest=digest)
            self.regrammared.add(digest)
        return compiled

    def decider(self, digest: str, expiry: timedelta) -> Decider | str:
        key = (digest, expiry)
        found = self._deciders.get(key)
        if found is None:
            policy_set = self.policy_set(digest)
            if isinstance(policy_set, str):
                return policy_set
            found = self._deciders[key] = Decider(policy_set, approval_expiry=expiry)
        return found


class UnansweredDelegation(ValueError):
    """The set delegates to an OPA path the recorded decision never asked: deciding offline
    would deny for want of an answer, which says nothing about the set."""


def recorded_answers(recorded: Recorded) -> dict[str, Delegated]:
    """What OPA answered when the decision was made (its `invariants` record each answer; a
    re-decision's entry records them under `opa`)."""
    if recorded.kind == "reevaluation":
        given = recorded.data.get("opa") or {}
        return {path: Delegated(a.get("answer"), a.get("failure"), a.get("detail")) for path, a in given.items()}
    invariants = recorded.decision.get("invariants") or ()
    if not any(isinstance(i, dict) and i.get("path") is not None for i in invariants):
        return {}
    return delegated_answers(Decision.model_validate(recorded.decision))


def decide_under(recorded: Recorded, decider: Decider, inputs: DecisionInputs) -> Decision:
    """The decision `decider` makes for the recorded packet with the recorded inputs, and the
    OPA answers it recorded; `UnansweredDelegation` if `decider`'s set asks OPA what it did not."""
    packet = Packet.model_validate(recorded.packet)
    answers = recorded_answers(recorded)
    missing = [d.path for d in decider.delegations_for(packet.action.tool) if d.path not in answers]
    if missing:
        raise UnansweredDelegation(f"the set delegates to OPA at {', '.join(sorted(missing))}, which the "
                                   "recorded decision never asked")
    return decider.decide(packet, inputs.agent, now=inputs.now, kill_switch=inputs.kill_switch,
                          delegated=answers)


def inputs_of(recorded: Recorded) -> DecisionInputs:
    try:
        return recorded_inputs(recorded.data, recorded.time)
    except InputsError as exc:
        raise HistoryError(f"decision {recorded.decision_id}: {exc}") from None


class Replayer:
    """Replays recorded decisions from one history, compiling each policy set once."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.sets = Sets(history)

    def replay(self, recorded: Recorded) -> Replayed:
        digest = recorded.decision.get("policy_digest")
        if not isinstance(digest, str):
            return Replayed(recorded, None, problem="the recorded decision names no policy digest")
        try:
            inputs = inputs_of(recorded)
        except HistoryError as exc:
            return Replayed(recorded, digest, problem=str(exc))
        decider = self.sets.decider(digest, inputs.approval_expiry)
        if isinstance(decider, str):
            return Replayed(recorded, digest, reconstructed=inputs.reconstructed, problem=decider)
        try:
            again = decide_under(recorded, decider, inputs)
        except UnansweredDelegation as exc:
            return Replayed(recorded, digest, reconstructed=inputs.reconstructed, problem=str(exc))
        except ValueError as exc:  # the recorded packet no longer validates as a packet
            return Replayed(recorded, digest, reconstructed=inputs.reconstructed,
                            problem=f"the recorded packet is not a valid packet today: {exc}")
        replayed = comparable(again.model_dump(mode="json"))
        if recorded.kind == "reevaluation":  # its entry records these members of the decision
            replayed = {key: replayed.get(key) for key in recorded.decision}
        notes: tuple[str, ...] = ()
        if digest in self.sets.regrammared:
            notes = ("the policy files were compiled with today's grammar, which differs from the "
                     "one they were digested with",)
        return Replayed(recorded, digest, replayed, differences(comparable(recorded.decision), replayed),
                        inputs.reconstructed, notes=notes)


__all__ = ["Difference", "Replayed", "Replayer", "Sets", "UnansweredDelegation", "comparable", "decide_under",
           "differences", "inputs_of", "recorded_answers"]
