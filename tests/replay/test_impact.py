"""`warden policy impact`: a candidate set replayed over the generated history, from the database
and offline from an export; transitions, money, rules and shadow policies as the recorded
decisions say they must be; the exit code and the threshold; a stable JSON report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cli_support import EXIT_CHECK_FAILED, EXIT_COMPILE_ERROR, EXIT_OK, EXIT_USAGE, warden
from gateway_server import edit_policy
from history_support import History


def _db(history: History) -> str:
    return history.server.runtime.settings.database_url


def _candidate(history: History, tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Path:
    target = tmp_path / "candidate"
    shutil.copytree(history.policies, target)
    for name, (old, new) in edits.items():
        edit_policy(target / name, old, new)
    return target


def _impact(history: History, tmp_path: Path, candidate: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = warden("policy", "impact", candidate, "--json", *extra, "--db", _db(history), cwd=tmp_path)
    assert done.returncode in (EXIT_OK, EXIT_CHECK_FAILED), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_active_set_changes_nothing_after_its_activation(recorded: History, tmp_path: Path) -> None:
    newer = recorded.decisions[-1]["policy_digest"]
    first = min(d["audit"]["seq"] for d in recorded.decisions if d["policy_digest"] == newer)
    code, report = _impact(recorded, tmp_path, recorded.policies, "--from", str(first))
    replayed = sum(1 for d in recorded.decisions if d["policy_digest"] == newer)
    assert code == EXIT_OK
    assert report["decisions"] == {"replayed": replayed, "changed": 0, "unchanged": replayed, "not_replayable": 0}
    assert report["transitions"] == [] and report["rules"] == []
    assert report["window"]["first_seq"] == first


def test_a_lower_refund_cap_blocks_exactly_the_refunds_above_it(recorded: History, tmp_path: Path) -> None:
    candidate = _candidate(recorded, tmp_path, {
        "payments.policy": ("deny refund_hard_cap when params.amount > 500000",
                            "deny refund_hard_cap when params.amount > 30000")})
    code, report = _impact(recorded, tmp_path, candidate)
    assert code == EXIT_CHECK_FAILED
    refunds = [(d, recorded.packets[d["decision_id"]]) for d in recorded.decisions
               if recorded.packets[d["decision_id"]]["action"]["tool"] == "stripe.refund"]
    affected = [(d, p) for d, p in refunds if 30_000 < p["action"]["params"]["amount"] <= 500_000
                and d["status"] not in ("denied",)]
    assert affected, "the history has refunds between the two caps"
    moved = {(t["from"], t["to"]): t for t in report["transitions"]}
    assert all(to == "denied" for _f, to in moved) and sum(t["count"] for t in moved.values()) == len(affected)
    for transition in moved.values():
        assert set(transition["by_tool"]) == {"stripe.refund"}
        for example in transition["examples"]:
            assert example["after"]["status"] == "denied"
            assert any("refunds over" in reason for reason in example["after"]["reasons"])
    executed = [p["action"]["params"]["amount"] for d, p in affected if d["status"] == "executed"]
    blocked = report["money"]["newly_blocked"]
    if executed:
        assert blocked == [{"tool": "stripe.refund", "currency": "usd", "amount": sum(executed),
                            "decisions": len(executed)}]
    assert report["money"]["newly_allowed"] == []
    [cap] = [r for r in report["rules"] if r["rule"] == "refund_hard_cap"]
    # it fires on every refund between the caps, denied already (an invariant failed) or not
    assert cap["delta"] == sum(1 for _d, p in refunds if 30_000 < p["action"]["params"]["amount"] <= 500_000)
    assert report["changed"] == report["decisions"]["changed"] >= len(affected)

    # a threshold over what changed: exit 0; the same report otherwise
    code_within, within = _impact(recorded, tmp_path, candidate, "--threshold", "100%")
    assert code_within == EXIT_OK and within["threshold"]["exceeded"] is False
    code_count, counted = _impact(recorded, tmp_path, candidate, "--threshold", str(report["changed"] - 1))
    assert code_count == EXIT_CHECK_FAILED and counted["threshold"]["exceeded"] is True
    assert {k: v for k, v in within.items() if k != "threshold"} == {k: v for k, v in report.items() if k != "threshold"}


def test_a_shadow_policy_switched_on_is_named_with_what_it_would_do(recorded: History, tmp_path: Path) -> None:
    candidate = _candidate(recorded, tmp_path, {"shadow.policy": (
        'policy refund_review_trial "Trial: an approver for refunds over $200" {\n  applies to tool "stripe.refund"\n  mode shadow\n',
        'policy refund_review_trial "Trial: an approver for refunds over $200" {\n  applies to tool "stripe.refund"\n')})
    _code, report = _impact(recorded, tmp_path, candidate)
    [switched] = report["shadow_enforced"]
    assert switched["policy"] == "refund_review_trial"
    refunds = [(d, recorded.packets[d["decision_id"]]) for d in recorded.decisions
               if recorded.packets[d["decision_id"]]["action"]["tool"] == "stripe.refund"]
    over = [(d, p) for d, p in refunds if p["action"]["params"]["amount"] > 20_000]
    assert switched["decisions"] == len(over)  # its escalation fires on each of them
    executed = [d for d, _p in over if d["status"] == "executed"]
    assert executed, "the history has refunds over $200 that executed"
    moved = {(t["from"], t["to"]): t["count"] for t in report["transitions"]}
    assert moved.get(("executed", "pending_approval")) == len(executed)
    assert {r["from"]: r["to"] for r in report["risk_changes"]} == {"L1": "L2"}


def test_offline_on_an_export_gives_the_same_report_and_text_reads_well(recorded: History, tmp_path: Path) -> None:
    candidate = _candidate(recorded, tmp_path, {
        "payments.policy": ("deny refund_hard_cap when params.amount > 500000",
                            "deny refund_hard_cap when params.amount > 30000")})
    out = tmp_path / "export"
    key = recorded.server.runtime.settings.signing_key_file
    assert warden("audit", "export", "--db", _db(recorded), "--out", out, "--sign-with", key,
                  cwd=tmp_path).returncode == EXIT_OK
    online = warden("policy", "impact", candidate, "--json", "--db", _db(recorded), cwd=tmp_path)
    offline = warden("policy", "impact", candidate, "--json", "--export", out, cwd=tmp_path)
    assert offline.returncode == online.returncode == EXIT_CHECK_FAILED
    assert offline.stdout == online.stdout
    text = warden("policy", "impact", candidate, "--export", out, cwd=tmp_path)
    assert "decision(s) replayed" in text.stdout and "-> denied" in text.stdout
    assert "OVER the threshold of 0 decision(s)" in text.stdout
    one = json.loads(warden("policy", "impact", candidate, "--json", "--examples", "1", "--export", out,
                            cwd=tmp_path).stdout)
    assert all(len(t["examples"]) == 1 for t in one["transitions"])
    assert [t["count"] for t in one["transitions"]] == [t["count"] for t in json.loads(offline.stdout)["transitions"]]


def test_bad_candidates_and_options_are_refused(recorded: History, tmp_path: Path) -> None:
    broken = _candidate(recorded, tmp_path, {"payments.policy": ("deny refund_hard_cap when", "deny refund_hard_cap whe")})
    done = warden("policy", "impact", broken, "--db", _db(recorded), cwd=tmp_path)
    assert done.returncode == EXIT_COMPILE_ERROR and "payments.policy:" in done.stderr
    for extra, said in [(("--threshold", "lots"), "--threshold 'lots'"), (("--from", "-3"), "--from"),
                        (("--since", "yesterday"), "--since 'yesterday'"),
                        (("--examples", "-1"), "--examples must be 0 or more")]:
        done = warden("policy", "impact", recorded.policies, *extra, "--db", _db(recorded), cwd=tmp_path)
        assert done.returncode == EXIT_USAGE and said in done.stderr, done.stderr
    missing = warden("policy", "impact", tmp_path / "nowhere", "--db", _db(recorded), cwd=tmp_path)
    assert missing.returncode == EXIT_USAGE and "no such policy directory" in missing.stderr


def test_a_candidate_asking_opa_what_history_never_asked_says_so(recorded: History, tmp_path: Path) -> None:
    candidate = _candidate(recorded, tmp_path, {"payments.policy": (
        "deny refund_hard_cap when params.amount > 500000",
        'opa "finance/refunds/allow"\n  deny refund_hard_cap when params.amount > 500000')})
    code, report = _impact(recorded, tmp_path, candidate)
    assert code == EXIT_CHECK_FAILED  # an outcome that cannot be known is not a pass
    refunds = sum(1 for d in recorded.decisions
                  if recorded.packets[d["decision_id"]]["action"]["tool"] == "stripe.refund")
    assert report["decisions"]["not_replayable"] == refunds
    assert report["not_replayable"] == [{
        "reason": "the set delegates to OPA at finance/refunds/allow, which the recorded decision never asked",
        "decisions": refunds}]
    assert report["decisions"]["replayed"] == len(recorded.decisions) - refunds
