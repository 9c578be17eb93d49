"""`warden policy test` and `warden policy explain` with `opa` statements: offline, a delegation
has OPA's answer only when the case gives it or `explain --opa URL` names a server; otherwise
it denies, never allows."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from fakes.opa import FakeOpa
from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.engine.models import Decision

WardenRun = Callable[..., subprocess.CompletedProcess[str]]

POLICY = """
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  opa finance "warden/refunds/decision" reads params.amount, evidence.risk_score
}
"""
CASES = """
[[case]]
name = "opa_allows"
autonomy = "A2"
tool = "stripe.refund"
params = { charge = "ch_1", amount = 1000 }
opa = { "warden/refunds/decision" = { allow = true } }
expect = { status = "allowed", invariants = { "opa:warden/refunds/decision" = "PASS" } }

[[case]]
name = "opa_denies"
autonomy = "A4"
tool = "stripe.refund"
params = { charge = "ch_1", amount = 1000 }
opa = { "warden/refunds/decision" = { allow = false, reasons = ["risk score too high"] } }
expect = { status = "denied", reasons = ["refunds.finance"] }

[[case]]
name = "opa_escalates"
autonomy = "A2"
tool = "stripe.refund"
params = { charge = "ch_1", amount = 1000 }
opa = { "warden/refunds/decision" = { allow = true, risk = "L2" } }
expect = { status = "pending_approval", risk = "L2" }

[[case]]
name = "no_answer_denies"
autonomy = "A4"
tool = "stripe.refund"
params = { charge = "ch_1", amount = 1000 }
expect = { status = "denied", invariants = { "opa:warden/refunds/decision" = "ERROR" } }
"""
PACKET = {"packet_id": "p-1", "agent": "bot",
          "action": {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": 1000}},
          "evidence": {"risk_score": 10, "notes": "private"}}


def _policies(tmp_path: Path, cases: str = CASES) -> Path:
    directory = tmp_path / "policies"
    (directory / "tests").mkdir(parents=True)
    (directory / "refunds.policy").write_text(POLICY)
    (directory / "tests" / "refunds.toml").write_text(cases)
    return directory


def test_cases_give_opas_answers_and_a_case_without_one_is_denied(warden: WardenRun, tmp_path: Path) -> None:
    result = warden("policy", "test", _policies(tmp_path), "-v")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "PASS: 4/4" in result.stdout


def test_a_case_expecting_an_allow_without_an_answer_fails(warden: WardenRun, tmp_path: Path) -> None:
    wrong = CASES.replace('opa = { "warden/refunds/decision" = { allow = true } }\n', "", 1)
    result = warden("policy", "test", _policies(tmp_path, wrong))
    assert result.returncode == EXIT_CHECK_FAILED
    assert "opa_allows: FAIL" in result.stdout


def test_explain_without_opa_denies_and_says_why(warden: WardenRun, tmp_path: Path) -> None:
    packet = tmp_path / "packet.json"
    packet.write_text(json.dumps(PACKET))
    result = warden("policy", "explain", packet, "--autonomy", "A2", "--dir", _policies(tmp_path), "--json")
    assert result.returncode == EXIT_OK, result.stderr
    decision = Decision.model_validate_json(result.stdout)
    assert decision.status == "denied"
    assert any("no OPA server is configured" in r.message for r in decision.violations)


def test_explain_asks_the_opa_server_it_is_given(warden: WardenRun, tmp_path: Path, opa: FakeOpa) -> None:
    packet = tmp_path / "packet.json"
    packet.write_text(json.dumps(PACKET))
    before = len(opa.inputs("warden/refunds/decision"))
    result = warden("policy", "explain", packet, "--autonomy", "A2", "--dir", _policies(tmp_path),
                    "--opa", opa.base_url, "--json")
    sent = opa.inputs("warden/refunds/decision")[before:]
    assert result.returncode == EXIT_OK, result.stderr
    assert Decision.model_validate_json(result.stdout).status == "allowed"
    assert sent == [{"tool": "stripe.refund", "params": {"amount": 1000}, "evidence": {"risk_score": 10}}]


def test_explain_refuses_a_bad_opa_url(warden: WardenRun, tmp_path: Path) -> None:
    packet = tmp_path / "packet.json"
    packet.write_text(json.dumps(PACKET))
    result = warden("policy", "explain", packet, "--autonomy", "A2", "--dir", _policies(tmp_path),
                    "--opa", "ftp://opa")
    assert result.returncode != EXIT_OK and "--opa" in result.stderr and "Traceback" not in result.stderr
