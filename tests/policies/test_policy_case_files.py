"""Reading policy test files: every malformed file is refused with the file and case named,
and the comparison reports each way a decision differs from what a case expects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dsl.model import Autonomy, Risk
from gateway.engine.models import Approval, Decision, Reason
from gateway.engine.cases import (
    ApprovalExpectation,
    CaseFileError,
    Expectation,
    compare,
    load_cases,
)

GOOD = '''
now = 2025-06-02T12:00:00Z
[[case]]
name = "small_refund"
autonomy = "A2"
tool = "stripe.refund"
params = { charge = "ch_1", amount = 2500, currency = "usd" }
evidence = { reconciled = true }
expect = { status = "allowed", risk = "L1" }
'''


def _write(tmp_path: Path, text: str, name: str = "cases.toml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_a_good_file_loads(tmp_path: Path) -> None:
    (case,) = load_cases(_write(tmp_path, GOOD))
    assert case.name == "small_refund"
    assert case.packet.packet_id == "small_refund"
    assert case.packet.action.params["amount"] == 2500
    assert case.agent.autonomy == Autonomy.A2
    assert case.now == datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert case.expect.risk == Risk.L1


def test_json_files_are_read_too(tmp_path: Path) -> None:
    (tmp_path / "cases.json").write_text(
        '{"case": [{"name": "j", "autonomy": "A0", "packet": {"packet_id": "p1", "agent": "a",'
        ' "action": {"tool": "crm.log_note", "params": {}}}, "expect": {"status": "drafted"}}]}'
    )
    (case,) = load_cases(tmp_path)
    assert case.packet.packet_id == "p1" and case.expect.status == "drafted"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('autonomy = "A2"', 'autonomy = "A9"'), r"small_refund.*autonomy.*A0\.\.A4"),
        (GOOD.replace("expect = ", "expct = "), r"small_refund.*unknown key\(s\): expct"),
        (GOOD.replace('status = "allowed"', 'status = "approved"'), r"expect\.status must be"),
        (GOOD.replace('risk = "L1"', 'risk = "L7"'), r"expect\.risk must be one of L0\.\.L3"),
        (GOOD.replace('tool = "stripe.refund"', 'tool = "Stripe Refund"'), r"action\.tool"),
        (GOOD.replace('name = "small_refund"\n', ""), r"case 1: needs a `name`"),
        (GOOD.replace("now = 2025-06-02T12:00:00Z", 'now = "yesterday"'), r"not an ISO 8601"),
        (GOOD.replace("[[case]]", "[[cases]]"), r"unknown top-level key\(s\): cases"),
        (GOOD + "\nthis is not toml", r"not valid TOML"),
        (GOOD.replace('risk = "L1" }', 'approval = { role = "x", who = 1 } }'), r"expect\.approval"),
        (GOOD.replace('risk = "L1" }', 'approval = { expires_in = "4 hours" } }'), r"durations"),
    ],
    ids=["autonomy", "unknown_key", "status", "risk", "invalid_packet", "no_name", "bad_now",
         "top_level", "toml_syntax", "approval_keys", "duration"],
)
def test_malformed_files_are_refused_with_a_located_message(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(CaseFileError, match=message) as excinfo:
        load_cases(_write(tmp_path, text))
    assert "cases.toml" in str(excinfo.value)


def test_duplicate_case_names_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.toml")
    _write(tmp_path, GOOD, "b.toml")
    with pytest.raises(CaseFileError, match=r"'small_refund' is also defined in .*a\.toml"):
        load_cases(tmp_path)


def test_a_missing_test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="no such test directory"):
        load_cases(tmp_path / "nope")


NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)


def _decision(**overrides: object) -> Decision:
    fields: dict[str, object] = {
        "packet_id": "p", "status": "pending_approval", "risk": Risk.L2, "autonomy": Autonomy.A2,
        "policy_digest": "sha256:0",
        "reasons": [Reason(policy="refunds", rule="large_refund", effect="escalate", message="m"),
                    Reason(policy="trial", rule="r", effect="escalate", message="m",
                           enforced=False)],
        "approval": Approval(required_role="approver", count=1,
                             expires_at=NOW + timedelta(hours=4)),
    }
    fields.update(overrides)
    return Decision.model_validate(fields)


def test_a_matching_expectation_reports_nothing() -> None:
    expect = Expectation(status="pending_approval", risk=Risk.L2,
                         reasons=("refunds.large_refund",), shadow=("trial.r",),
                         absent=("refunds.refund_hard_cap",), flags=frozenset(),
                         approval=ApprovalExpectation("approver", 1, timedelta(hours=4)))
    assert list(compare(expect, _decision(), NOW)) == []


def test_every_difference_is_reported() -> None:
    expect = Expectation(status="allowed", risk=Risk.L1, reasons=("trial.r",),
                         shadow=("refunds.large_refund",), absent=("refunds.large_refund",),
                         flags=frozenset({"proof_mismatch"}),
                         approval=ApprovalExpectation("founder", 2, timedelta(hours=24)),
                         invariants={"refund_reconciled": "PASS"}, unknown_claims=("x",))
    failures = list(compare(expect, _decision(), NOW))
    assert failures == [
        "status: expected allowed, got pending_approval",
        "risk: expected L1, got L2",
        "reason trial.r: expected (enforced), not reported (got: refunds.large_refund, trial.r)",
        "shadow reason refunds.large_refund: expected (not enforced), not reported "
        "(got: refunds.large_refund, trial.r)",
        "reason refunds.large_refund: expected absent, but reported",
        "flags: expected ['proof_mismatch'], got []",
        "approval role: expected founder, got approver",
        "approval count: expected 2, got 1",
        "approval expiry: expected in 1 day, 0:00:00, got in 4:00:00",
        "invariant refund_reconciled: expected PASS, got not evaluated",
        "unknown_claims: expected ['x'], got []",
    ]


def test_approval_none_against_a_pending_decision() -> None:
    failures = list(compare(Expectation(status="pending_approval", approval=None),
                            _decision(), NOW))
    assert failures == ["approval: expected none, got 1 x approver"]
    failures = list(compare(Expectation(status="denied", approval=ApprovalExpectation()),
                            _decision(status="denied", approval=None), NOW))
    assert failures == ["approval: expected one, got none"]
