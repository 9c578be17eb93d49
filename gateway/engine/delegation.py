"""Delegations to OPA, as the engine sees them: what OPA is sent, how its answer reads, and how a
recorded decision gives its answers back.

The engine never asks OPA (it touches no network): the pipeline asks, for each `opa` statement
that applies to the packet's tool, with `opa_input`, and passes what came back to
`Decider.decide(..., delegated={path: Delegated})`. The decision records each answer in its
`invariants` (`path`, `answer`, `failure`), so `delegated_answers(decision)` recovers exactly
what decides the same packet the same way again (replay).

Answers OPA may give, as its REST data API's `result`:

    true | false                                         allow, or deny
    {"allow": bool, "reasons": [str, ...], "risk": "L2"}  reasons and risk optional

Anything else is the wrong shape and denies; so does no `result` (the rule is undefined for the
input) and every failure to get an answer at all (`FAILURES`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsl.model import Delegation, Risk
from gateway.engine.models import check_json_values

if TYPE_CHECKING:
    from gateway.engine.agents import Agent
    from gateway.engine.models import Decision, Packet, Verdict

#: Why there is no answer to read, and how a reason says so.
FAILURES: dict[str, str] = {
    "not_configured": "no OPA server is configured (opa_url)",
    "unreachable": "OPA was unreachable",
    "timeout": "OPA did not answer in time",
    "status": "OPA answered with an error",
    "malformed": "OPA's answer could not be read",
    "undefined": "OPA's rule is undefined for this input (no result)",
    "missing": "no answer from OPA",
}
#: The one failure that is an answer: OPA evaluated the rule and it did not allow (FAIL, not ERROR).
UNDEFINED = "undefined"
MAX_REASONS = 20
MAX_REASON_CHARS = 500
#: The largest answer recorded as it came (its JSON, in bytes): the audit log keeps it.
MAX_ANSWER_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class Delegated:
    """What asking OPA gave: its `result` as it came (`answer`), or why there is none (`failure`,
    a key of `FAILURES`, and `detail`, e.g. OPA's own error message)."""

    answer: Any = None
    failure: str | None = None
    detail: str | None = None

    @classmethod
    def failed(cls, failure: str, detail: str | None = None) -> Delegated:
        return cls(None, failure if failure in FAILURES else "malformed", detail)

    @classmethod
    def of(cls, result: Any) -> Delegated:
        """OPA's `result`, if the audit log can keep it as it came: I-JSON values (integers
        within ±(2**53 - 1)) and at most MAX_ANSWER_BYTES of JSON; otherwise `malformed`."""
        try:
            check_json_values(result, "the answer")
            size = len(json.dumps(result, ensure_ascii=False).encode())
        except (ValueError, TypeError, RecursionError) as exc:
            return cls.failed("malformed", str(exc)[:300])
        if size > MAX_ANSWER_BYTES:
            return cls.failed("malformed", f"the answer is {size} bytes of JSON; at most {MAX_ANSWER_BYTES} are kept")
        return cls(result)


@dataclass(frozen=True, slots=True)
class Reading:
    """An answer read: PASS (allow), FAIL (deny) or ERROR (no usable answer), OPA's reasons, the
    risk it asks for, and the message of a denial or an error."""

    verdict: Verdict
    reasons: tuple[str, ...] = ()
    risk: Risk | None = None
    message: str | None = None


def read_answer(delegated: Delegated | None) -> Reading:
    """What an answer means; never raises (a shape it does not know is an ERROR)."""
    if delegated is None:
        return Reading("ERROR", message=FAILURES["missing"])
    if delegated.failure is not None:
        said = FAILURES.get(delegated.failure, FAILURES["malformed"])
        message = f"{said}: {delegated.detail}" if delegated.detail else said
        return Reading("FAIL" if delegated.failure == UNDEFINED else "ERROR", message=message)
    answer = delegated.answer
    if isinstance(answer, bool):
        return Reading("PASS") if answer else Reading("FAIL", message="OPA denied")
    if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
        return _wrong_shape(answer, "expected true, false or an object with a boolean `allow`")
    unknown = sorted(set(answer) - {"allow", "reasons", "risk"})
    if unknown:
        return _wrong_shape(answer, f"unexpected keys {', '.join(unknown)}")
    reasons = answer.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        return _wrong_shape(answer, "`reasons` must be a list of strings")
    risk_name = answer.get("risk")
    if risk_name is not None and (not isinstance(risk_name, str) or risk_name not in Risk.__members__):
        return _wrong_shape(answer, "`risk` must be one of L0, L1, L2, L3")
    given = tuple(r[:MAX_REASON_CHARS] for r in reasons[:MAX_REASONS])
    risk = Risk[risk_name] if risk_name is not None else None
    if answer["allow"]:
        return Reading("PASS", given, risk)
    return Reading("FAIL", given, risk, "OPA denied: " + "; ".join(given) if given else "OPA denied")


def _wrong_shape(answer: Any, why: str) -> Reading:
    shown = repr(answer)
    shown = shown if len(shown) <= 200 else shown[:197] + "..."
    return Reading("ERROR", message=f"OPA answered the wrong shape ({why}): {shown}")


def opa_input(delegation: Delegation, packet: Packet, agent: Agent) -> dict[str, Any]:
    """The input OPA is sent for `delegation`: the tool, and only the fields it reads."""
    roots: dict[str, Any] = {"params": packet.action.params, "evidence": packet.evidence,
                             "context": packet.context, "agent": agent.cel_view()}
    sent: dict[str, Any] = {"tool": packet.action.tool}
    for path in delegation.reads:
        value: Any = roots.get(path[0])
        for key in path[1:]:
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            _place(sent, path, value)
    return sent


def _place(into: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        into = into.setdefault(key, {})
    into[path[-1]] = value


def delegations(policies: Iterable[Any]) -> tuple[Delegation, ...]:
    """The delegations of `policies`, one per OPA path (the pipeline asks each path once)."""
    seen: dict[str, Delegation] = {}
    for policy in policies:
        for delegation in policy.delegations:
            seen.setdefault(delegation.path, delegation)
    return tuple(seen.values())


def delegated_answers(decision: Decision) -> dict[str, Delegated]:
    """The answers `decision` was decided with, by path: passed as `delegated=` with the same
    packet, agent, policy set, time and kill switch, they give the same decision again."""
    answers: dict[str, Delegated] = {}
    for result in decision.invariants:
        if result.path is not None:
            answers.setdefault(result.path, Delegated(result.answer, result.failure, result.detail))
    return answers


def answers_json(answers: Mapping[str, Delegated]) -> dict[str, Any]:
    """Answers as JSON (for logs and `--json` output)."""
    return {path: {"answer": a.answer, "failure": a.failure, "detail": a.detail}
            for path, a in answers.items()}
