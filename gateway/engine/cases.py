"""Policy tests: cases that pin what the shipped (or a user's) policies decide.

A policy author writes cases beside the policies, in `<policy dir>/tests/*.toml` (or `.json`
with the same shape): each case is one packet, the autonomy of the agent sending it and what
Warden must decide. `warden policy test` and the test suite both run them through the real
engine, as dry runs, so a case that would execute expects `allowed`.

    now = 2025-06-02T12:00:00Z            # optional, for every case in the file

    [[case]]
    name = "refund_50001_needs_approver"  # unique across the directory
    about = "one cent over $500 escalates"
    autonomy = "A2"                       # A0..A4; agent/owner/kill_switch/now are optional
    tool = "stripe.refund"                # or a whole `packet = {...}` table
    params = { charge = "ch_3", amount = 50001, currency = "usd" }
    evidence = { reconciled = true }
    proof = [{ id = "refund_reconciled", status = "PASS" }]
    expect = { status = "pending_approval", risk = "L2", reasons = ["refunds.large_refund"] }

A case for a tool whose policies delegate to OPA (`opa "path"`) gives OPA's answers itself, as
OPA's `result` for each path; the tests never call a server, and a path without an answer
denies, as it would in the gateway:

    opa = { "warden/refunds/decision" = { allow = false, reasons = ["risk score too high"] } }

`expect` keys: `status` (required), `risk`, `reasons` (enforced "policy.rule" that must fire),
`shadow` (must be reported with "enforced": false), `absent` (must not be reported at all),
`flags` (the exact set), `approval` ("none" or {role, count, expires_in}), `invariants`
({id = "PASS"|"FAIL"|"ERROR"}), `unknown_claims` (the exact list).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dsl.model import Autonomy, Risk
from gateway.engine.agents import Agent
from gateway.engine.delegation import Delegated
from gateway.engine.models import Decision, Packet

if TYPE_CHECKING:
    from gateway.engine.decider import Decider

#: Keys a case may have; anything else is a typo the author should hear about.
_CASE_KEYS = frozenset({"name", "about", "autonomy", "agent", "owner", "kill_switch", "now",
                        "packet", "tool", "params", "evidence", "proof", "context", "expect", "opa"})
_PACKET_SHORTHAND = ("tool", "params", "evidence", "proof", "context")
_EXPECT_KEYS = frozenset({"status", "risk", "reasons", "shadow", "absent", "flags", "approval",
                          "invariants", "unknown_claims"})
_STATUSES = frozenset({"allowed", "executed", "pending_approval", "denied", "drafted"})
_VERDICTS = frozenset({"PASS", "FAIL", "ERROR"})
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_AGENT = "policy-test"


class CaseFileError(ValueError):
    """A test file that cannot be read or does not describe valid cases (exit code 2)."""


@dataclass(frozen=True, slots=True)
class ApprovalExpectation:
    role: str | None = None
    count: int | None = None
    expires_in: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    status: str
    risk: Risk | None = None
    reasons: tuple[str, ...] = ()
    shadow: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    flags: frozenset[str] | None = None
    approval: ApprovalExpectation | None | str = "unchecked"  # "unchecked", None (= "none")
    invariants: dict[str, str] = field(default_factory=dict)
    unknown_claims: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    file: Path
    about: str | None
    packet: Packet
    agent: Agent
    now: datetime | None
    kill_switch: bool
    expect: Expectation
    opa: dict[str, Delegated] = field(default_factory=dict)  # OPA's answers, by path


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    decision: Decision
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def load_cases(directory: Path) -> list[PolicyCase]:
    """Every case in `directory/*.toml` and `*.json`, in file then case order.

    Raises CaseFileError naming the file and case for anything malformed, including a case
    name used twice (results are reported by name, so names must be unique).
    """
    if not directory.is_dir():
        raise CaseFileError(f"{directory}: no such test directory")
    cases: list[PolicyCase] = []
    seen: dict[str, Path] = {}
    files = sorted(p for p in directory.iterdir() if p.suffix in (".toml", ".json"))
    for path in files:
        for case in _load_file(path):
            if case.name in seen:
                raise CaseFileError(f"{path}: case {case.name!r} is also defined in {seen[case.name]}")
            seen[case.name] = path
            cases.append(case)
    return cases


def run_case(engine: Decider, case: PolicyCase) -> CaseResult:
    """Decide the case's packet (dry run) and compare the decision with the expectation."""
    decision = engine.decide(case.packet, case.agent, now=case.now,
                             kill_switch=case.kill_switch, dry_run=True, delegated=case.opa)
    return CaseResult(case, decision, tuple(compare(case.expect, decision, case.now)))


def compare(expect: Expectation, decision: Decision, now: datetime | None) -> Iterable[str]:
    """One human-readable line per way `decision` differs from `expect`."""
    if decision.status != expect.status:
        yield f"status: expected {expect.status}, got {decision.status}"
    if expect.risk is not None and decision.risk != expect.risk:
        yield f"risk: expected {expect.risk.name}, got {decision.risk.name}"
    enforced = {f"{r.policy}.{r.rule}" for r in decision.reasons if r.enforced}
    shadow = {f"{r.policy}.{r.rule}" for r in decision.reasons if not r.enforced}
    got = ", ".join(sorted(enforced | shadow)) or "none"
    for name in expect.reasons:
        if name not in enforced:
            yield f"reason {name}: expected (enforced), not reported (got: {got})"
    for name in expect.shadow:
        if name not in shadow:
            yield f"shadow reason {name}: expected (not enforced), not reported (got: {got})"
    for name in expect.absent:
        if name in enforced or name in shadow:
            yield f"reason {name}: expected absent, but reported"
    if expect.flags is not None and set(decision.flags) != expect.flags:
        yield f"flags: expected {sorted(expect.flags)}, got {sorted(decision.flags)}"
    yield from _compare_approval(expect.approval, decision, now)
    verdicts = {i.id: i.verified for i in decision.invariants}
    for inv_id, verdict in expect.invariants.items():
        if verdicts.get(inv_id) != verdict:
            yield f"invariant {inv_id}: expected {verdict}, got {verdicts.get(inv_id, 'not evaluated')}"
    if expect.unknown_claims is not None and tuple(decision.unknown_claims) != expect.unknown_claims:
        yield (f"unknown_claims: expected {list(expect.unknown_claims)}, "
               f"got {list(decision.unknown_claims)}")


def _compare_approval(expected: ApprovalExpectation | None | str, decision: Decision,
                      now: datetime | None) -> Iterable[str]:
    got = decision.approval
    if expected == "unchecked":
        return
    if expected is None:
        if got is not None:
            yield f"approval: expected none, got {got.count} x {got.required_role}"
        return
    assert isinstance(expected, ApprovalExpectation)
    if got is None:
        yield "approval: expected one, got none"
        return
    if expected.role is not None and got.required_role != expected.role:
        yield f"approval role: expected {expected.role}, got {got.required_role}"
    if expected.count is not None and got.count != expected.count:
        yield f"approval count: expected {expected.count}, got {got.count}"
    if expected.expires_in is not None and now is not None:
        actual = got.expires_at - now
        if actual != expected.expires_in:
            yield f"approval expiry: expected in {expected.expires_in}, got in {actual}"


# ---- reading case files ------------------------------------------------------------------------


def _load_file(path: Path) -> list[PolicyCase]:
    try:
        raw = path.read_bytes()
        document = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{path}: cannot read: {exc}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise CaseFileError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(document, dict):
        raise CaseFileError(f"{path}: expected a table with a list of [[case]]")
    unknown = set(document) - {"now", "case"}
    if unknown:
        raise CaseFileError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    file_now = _moment(document.get("now"), f"{path}: now")
    entries = document.get("case", [])
    if not isinstance(entries, list):
        raise CaseFileError(f"{path}: `case` must be a list of tables ([[case]])")
    return [_case(path, i, entry, file_now) for i, entry in enumerate(entries, start=1)]


def _case(path: Path, index: int, entry: Any, file_now: datetime | None) -> PolicyCase:
    where = f"{path}: case {index}"
    if not isinstance(entry, dict):
        raise CaseFileError(f"{where}: must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise CaseFileError(f"{where}: needs a `name`")
    where = f"{path}: case {name!r}"
    unknown = set(entry) - _CASE_KEYS
    if unknown:
        raise CaseFileError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    autonomy = entry.get("autonomy")
    if not isinstance(autonomy, str) or autonomy not in Autonomy.__members__:
        raise CaseFileError(f"{where}: `autonomy` must be one of A0..A4, got {autonomy!r}")
    packet_data = _packet_data(where, name, entry)
    try:
        packet = Packet.model_validate(packet_data)
        agent = Agent(name=packet.agent, autonomy=Autonomy[autonomy], owner=entry.get("owner"))
    except ValidationError as exc:
        raise CaseFileError(f"{where}: {first_error(exc)}") from None
    kill_switch = entry.get("kill_switch", False)
    if not isinstance(kill_switch, bool):
        raise CaseFileError(f"{where}: `kill_switch` must be true or false")
    now = _moment(entry.get("now"), f"{where}: now") or file_now
    opa = entry.get("opa", {})
    if not isinstance(opa, dict):
        raise CaseFileError(f'{where}: `opa` must be a table of OPA answers by path ({{"a/b" = true}})')
    return PolicyCase(name=name, file=path, about=entry.get("about"), packet=packet,
                      agent=agent, now=now, kill_switch=kill_switch,
                      expect=_expectation(where, entry.get("expect")),
                      opa={opa_path: Delegated.of(_jsonable(answer)) for opa_path, answer in opa.items()})


def _packet_data(where: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The packet as JSON data: a whole `packet` table, or built from the shorthand keys."""
    shorthand = [k for k in _PACKET_SHORTHAND if k in entry]
    if "packet" in entry:
        if shorthand:
            raise CaseFileError(f"{where}: give either `packet` or {', '.join(shorthand)}, not both")
        if not isinstance(entry["packet"], dict):
            raise CaseFileError(f"{where}: `packet` must be a table")
        return _json_object(entry["packet"])
    if "tool" not in entry:
        raise CaseFileError(f"{where}: needs a `tool` (or a whole `packet`)")
    proof = entry.get("proof", [])
    return _json_object({
        "packet_id": name,
        "agent": entry.get("agent", DEFAULT_AGENT),
        "action": {"tool": entry["tool"], "params": entry.get("params", {})},
        "evidence": entry.get("evidence", {}),
        "proof": {"invariant_checks": proof} if isinstance(proof, list) else proof,
        "context": entry.get("context", {}),
    })


def _expectation(where: str, raw: Any) -> Expectation:
    if not isinstance(raw, dict) or "status" not in raw:
        raise CaseFileError(f"{where}: needs `expect` with at least a `status`")
    unknown = set(raw) - _EXPECT_KEYS
    if unknown:
        raise CaseFileError(f"{where}: unknown expect key(s): {', '.join(sorted(unknown))}")
    status = raw["status"]
    if status not in _STATUSES:
        raise CaseFileError(f"{where}: expect.status must be one of {', '.join(sorted(_STATUSES))}")
    risk = raw.get("risk")
    if risk is not None and risk not in Risk.__members__:
        raise CaseFileError(f"{where}: expect.risk must be one of L0..L3, got {risk!r}")
    invariants = raw.get("invariants", {})
    if not isinstance(invariants, dict) or not set(invariants.values()) <= _VERDICTS:
        raise CaseFileError(f"{where}: expect.invariants maps ids to PASS, FAIL or ERROR")
    flags = raw.get("flags")
    claims = raw.get("unknown_claims")
    return Expectation(
        status=status,
        risk=Risk[risk] if risk is not None else None,
        reasons=_names(where, raw, "reasons"),
        shadow=_names(where, raw, "shadow"),
        absent=_names(where, raw, "absent"),
        flags=frozenset(_names(where, raw, "flags")) if flags is not None else None,
        approval=_approval(where, raw["approval"]) if "approval" in raw else "unchecked",
        invariants=dict(invariants),
        unknown_claims=_names(where, raw, "unknown_claims") if claims is not None else None,
    )


def _names(where: str, raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CaseFileError(f"{where}: expect.{key} must be a list of strings")
    return tuple(value)


def _approval(where: str, raw: Any) -> ApprovalExpectation | None:
    if raw == "none":
        return None
    if not isinstance(raw, dict) or set(raw) - {"role", "count", "expires_in"}:
        raise CaseFileError(f'{where}: expect.approval is "none" or {{role, count, expires_in}}')
    count = raw.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise CaseFileError(f"{where}: expect.approval.count must be an integer")
    expires = raw.get("expires_in")
    return ApprovalExpectation(role=raw.get("role"), count=count,
                               expires_in=_duration(where, expires) if expires else None)


def _duration(where: str, text: Any) -> timedelta:
    if (not isinstance(text, str) or len(text) < 2 or text[-1] not in _DURATION_UNITS
            or not text[:-1].isdigit()):
        raise CaseFileError(f"{where}: durations look like 30s, 15m, 4h or 7d, got {text!r}")
    return timedelta(seconds=int(text[:-1]) * _DURATION_UNITS[text[-1]])


def _moment(value: Any, where: str) -> datetime | None:
    """A TOML datetime or an ISO 8601 string, as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise CaseFileError(f"{where}: not an ISO 8601 date-time: {value!r}") from None
    if not isinstance(value, datetime):
        raise CaseFileError(f"{where}: must be a date-time like 2025-06-02T12:00:00Z")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_object(table: dict[str, Any]) -> dict[str, Any]:
    """A TOML table as the JSON object a packet carries."""
    return {k: _jsonable(v) for k, v in table.items()}


def _jsonable(value: Any) -> Any:
    """TOML values as the JSON a packet carries (TOML dates and times become ISO strings)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def first_error(exc: ValidationError) -> str:
    """The first of pydantic's errors as one line: `action.tool: String should match ...`."""
    errors = exc.errors()
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"]) or "packet"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{location}: {first['msg']}{more}"
