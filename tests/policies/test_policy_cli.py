"""`warden policy check | test | explain` as a policy author runs them: in a subprocess, read
by exit code and output. Bad input is one clear line and a usage exit code, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_COMPILE_ERROR, EXIT_OK, EXIT_USAGE
from gateway.engine.models import Decision

WardenRun = Callable[..., subprocess.CompletedProcess[str]]

REFUND = {
    "packet_id": "01J9Z4-refund",
    "agent": "refund-bot",
    "action": {"tool": "stripe.refund",
               "params": {"charge": "ch_123", "amount": 60000, "currency": "usd"}},
    "evidence": {"order_total": 60000, "reconciled": True, "risk_score": 0.12},
    "proof": {"invariant_checks": [{"id": "refund_reconciled", "status": "PASS", "value": True}]},
    "context": {"goal_id": "g-42", "task_id": "t-7", "reasoning": "damaged item"},
}


def _packet(tmp_path: Path, data: object, name: str = "packet.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _no_traceback(result: object) -> None:
    assert "Traceback" not in getattr(result, "stderr", "")


def test_the_default_directory_is_the_shipped_one() -> None:
    from dsl import builtin_policy_dir
    from gateway.config import SHIPPED_POLICY_DIR

    assert SHIPPED_POLICY_DIR == builtin_policy_dir()


# ---- check -------------------------------------------------------------------------------------


def test_check_the_shipped_policies(warden: WardenRun) -> None:
    result = warden("policy", "check")
    assert result.returncode == EXIT_OK, result.stderr
    assert re.search(r"\d+ file\(s\), \d+ policies, 0 errors, \d+ warning\(s\); sha256:[0-9a-f]{64}",
                     result.stdout)


def test_check_a_broken_policy_names_file_line_and_column(
    warden: WardenRun, policy_copy: Path
) -> None:
    broken = policy_copy / "payments.policy"
    text = broken.read_text().replace("params.amount > 500000", "params.amount >> 500000", 1)
    broken.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if ">> 500000" in l)
    result = warden("policy", "check", policy_copy)
    assert result.returncode == EXIT_COMPILE_ERROR
    assert re.search(rf"payments\.policy:{line}:\d+: error: ", result.stderr), result.stderr
    assert "^" in result.stderr and ">> 500000" in result.stderr
    _no_traceback(result)


def test_check_reports_every_broken_file_at_once(warden: WardenRun, policy_copy: Path) -> None:
    (policy_copy / "crm.policy").write_text("policy oops {\n  risk L9\n}\n")
    (policy_copy / "zz.policy").write_text('policy other {\n  applies to tool "x.y"\n'
                                           '  risk L1\n  mode loud\n}\n')
    result = warden("policy", "check", policy_copy)
    assert result.returncode == EXIT_COMPILE_ERROR
    assert "crm.policy:2:" in result.stderr and "zz.policy:4:" in result.stderr


def test_check_a_missing_directory_is_a_usage_error(warden: WardenRun, tmp_path: Path) -> None:
    result = warden("policy", "check", tmp_path / "nowhere")
    assert result.returncode == EXIT_USAGE
    assert "no such policy directory" in result.stderr
    _no_traceback(result)


# ---- test --------------------------------------------------------------------------------------


def test_test_passes_on_the_shipped_policies(warden: WardenRun) -> None:
    result = warden("policy", "test")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    passed, total = map(int, re.search(r"PASS: (\d+)/(\d+)", result.stdout).groups())
    assert passed == total >= 50
    assert "FAIL" not in result.stdout


def test_test_verbose_lists_every_case(warden: WardenRun) -> None:
    result = warden("policy", "test", "-v")
    assert result.returncode == EXIT_OK
    assert "payments.toml: refund_50001_needs_approver: PASS" in result.stdout
    total = int(re.search(r"PASS: \d+/(\d+)", result.stdout).group(1))
    assert result.stdout.count(": PASS") == total


def test_test_run_filters_cases(warden: WardenRun) -> None:
    result = warden("policy", "test", "--run", "^payout_")
    assert result.returncode == EXIT_OK
    passed = int(re.search(r"PASS: (\d+)/", result.stdout).group(1))
    assert 0 < passed < 20


def test_test_a_wrong_expectation_fails_with_expected_vs_got(
    warden: WardenRun, policy_copy: Path
) -> None:
    cases = policy_copy / "tests" / "payments.toml"
    text = cases.read_text()
    # Break exactly one case: expect a large refund to be allowed outright.
    marker = 'name = "refund_50001_needs_approver"'
    head, tail = text.split(marker, 1)
    tail = tail.replace('status = "pending_approval", risk = "L2"',
                        'status = "allowed", risk = "L1"', 1)
    cases.write_text(head + marker + tail)
    result = warden("policy", "test", policy_copy)
    assert result.returncode == EXIT_CHECK_FAILED
    assert "payments.toml: refund_50001_needs_approver: FAIL" in result.stdout
    assert "status: expected allowed, got pending_approval" in result.stdout
    assert "risk: expected L1, got L2" in result.stdout
    passed, total = map(int, re.search(r"PASS: (\d+)/(\d+)", result.stdout).groups())
    assert passed == total - 1
    assert f"FAIL: 1/{total}" in result.stdout


def test_test_a_policy_change_is_caught_by_the_tests(warden: WardenRun, policy_copy: Path) -> None:
    policy = policy_copy / "payments.policy"
    policy.write_text(policy.read_text().replace("params.amount > 500000", "params.amount > 900000"))
    result = warden("policy", "test", policy_copy)
    assert result.returncode == EXIT_CHECK_FAILED
    assert "refund_500001_denied: FAIL" in result.stdout


def test_test_on_a_broken_policy_dir_is_a_compile_error(
    warden: WardenRun, policy_copy: Path
) -> None:
    (policy_copy / "crm.policy").write_text("policy oops {\n  risk L9\n}\n")
    result = warden("policy", "test", policy_copy)
    assert result.returncode == EXIT_COMPILE_ERROR
    assert "crm.policy:2:" in result.stderr
    _no_traceback(result)


def test_test_with_a_malformed_case_file_is_a_usage_error(
    warden: WardenRun, policy_copy: Path
) -> None:
    (policy_copy / "tests" / "zz.toml").write_text('[[case]]\nname = "x"\nautonomy = "A7"\n')
    result = warden("policy", "test", policy_copy)
    assert result.returncode == EXIT_USAGE
    assert "zz.toml: case 'x': `autonomy` must be one of A0..A4" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    _no_traceback(result)


# ---- explain -----------------------------------------------------------------------------------


def test_explain_in_words(warden: WardenRun, tmp_path: Path) -> None:
    result = warden("policy", "explain", _packet(tmp_path, REFUND), "--autonomy", "A2")
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    assert "pending_approval" in out
    assert "L2 (base L1) at autonomy A2" in out
    assert "refunds.large_refund: refunds over $500 need an approver" in out
    assert "PASS  refund_reconciled (refunds, agent claimed PASS)" in out
    assert "1 x approver" in out
    assert "refund_review_trial.refund_review" in out  # the shadow trial is shown, apart


def test_explain_json_is_the_decision(warden: WardenRun, tmp_path: Path) -> None:
    result = warden("policy", "explain", _packet(tmp_path, REFUND), "--autonomy", "A2", "--json",
                    "--now", "2025-06-02T12:00:00Z")
    assert result.returncode == EXIT_OK, result.stderr
    data = json.loads(result.stdout)
    decision = Decision.model_validate(data)
    assert decision.status == "pending_approval"
    assert decision.packet_id == REFUND["packet_id"]
    assert data["risk"] == "L2" and data["autonomy"] == "A2"
    assert data["policy_digest"].startswith("sha256:")
    assert {"policy": "refunds", "rule": "large_refund"}.items() <= data["reasons"][0].items()
    assert data["approval"]["required_role"] == "approver"
    assert data["approval"]["expires_at"].startswith("2025-06-02T16:00:00")
    assert data["decision_id"] is None and data["execution"] is None


def test_explain_is_a_dry_run(warden: WardenRun, tmp_path: Path) -> None:
    small = {**REFUND, "action": {"tool": "stripe.refund",
                                  "params": {"charge": "ch_1", "amount": 900, "currency": "usd"}}}
    result = warden("policy", "explain", _packet(tmp_path, small), "--autonomy", "A3", "--json")
    assert json.loads(result.stdout)["status"] == "allowed"


def test_explain_a_denial_and_a_mismatch(warden: WardenRun, tmp_path: Path) -> None:
    lying = {**REFUND, "evidence": {"reconciled": False}}
    result = warden("policy", "explain", _packet(tmp_path, lying), "--autonomy", "A4")
    assert result.returncode == EXIT_OK
    assert "denied" in result.stdout
    assert "FAIL  refund_reconciled" in result.stdout
    assert "MISMATCH claimed_pass_verified_fail" in result.stdout
    assert "proof_mismatch" in result.stdout


def test_explain_with_another_policy_dir(
    warden: WardenRun, tmp_path: Path, policy_copy: Path
) -> None:
    (policy_copy / "payments.policy").write_text(
        (policy_copy / "payments.policy").read_text().replace("> 50000", "> 70000"))
    result = warden("policy", "explain", _packet(tmp_path, REFUND), "--autonomy", "A2",
                    "--dir", policy_copy, "--json")
    assert json.loads(result.stdout)["status"] == "allowed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "invalid JSON at line 1 column 2"),
        ({**REFUND, "action": {"tool": "Stripe Refund!"}}, "not a valid packet: action.tool"),
        ({**REFUND, "surprise": 1}, "not a valid packet: surprise"),
        ([1, 2], "not a valid packet"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ({**REFUND, "evidence": {"amount": 2**60}}, "not a valid packet: evidence"),
    ],
    ids=["missing", "invalid_json", "bad_tool", "unknown_field", "not_an_object", "too_deep",
         "unsafe_integer"],
)
def test_explain_bad_input_is_one_line_and_exit_2(
    warden: WardenRun, tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "packet.json" if content is None else _packet(tmp_path, content)
    result = warden("policy", "explain", path, "--autonomy", "A2")
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    _no_traceback(result)


def test_explain_needs_an_autonomy_level(warden: WardenRun, tmp_path: Path) -> None:
    result = warden("policy", "explain", _packet(tmp_path, REFUND), "--autonomy", "A9")
    assert result.returncode == EXIT_USAGE


def test_explain_with_a_broken_policy_dir_is_a_compile_error(
    warden: WardenRun, tmp_path: Path, policy_copy: Path
) -> None:
    (policy_copy / "crm.policy").write_text("policy oops {\n  risk L9\n}\n")
    result = warden("policy", "explain", _packet(tmp_path, REFUND), "--autonomy", "A2",
                    "--dir", policy_copy)
    assert result.returncode == EXIT_COMPILE_ERROR
    assert "crm.policy:2:" in result.stderr
