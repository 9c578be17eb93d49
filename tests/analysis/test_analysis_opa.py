"""A policy that delegates to OPA: OPA's answer is free in the analysis (allow or deny, any
tier), so nothing is proved that an answer could break, and every packet shown comes with the
answers under which the engine decides it as claimed."""

from __future__ import annotations

from pathlib import Path

from analysis_support import check_witness, policies, witnesses

from gateway.analysis.assertions import load
from gateway.analysis.report import as_json, run

DELEGATING = '''
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  opa "finance/refunds"
  deny over_cap when params.amount > 500000 because "over the cap"
}
'''


def test_opa_answers_are_free_and_shown_with_the_packets(tmp_path: Path) -> None:
    policy_set = policies(DELEGATING)
    path = tmp_path / "assertions.toml"
    path.write_text('''
[[assert]]
name = "refunds under the cap are never denied"
tool = "stripe.refund"
when = "params.amount <= 500000"
never = "denied"

[[assert]]
name = "refunds never execute at A2"
tool = "stripe.refund"
autonomy = "A2"
never = "executed"

[[assert]]
name = "refunds at A1 wait for someone"
tool = "stripe.refund"
autonomy = "A1"
never = "executed"

[[assert]]
name = "refunds are L2 at least"
tool = "stripe.refund"
risk_at_least = "L2"

[[assert]]
name = "refunds over the cap are denied, whatever OPA says"
tool = "stripe.refund"
when = "params.amount > 500000"
only = "denied"
''')
    report = run(tmp_path, policy_set, load(path), [])
    assert report.assertions is not None
    outcomes = {r.assertion.name: r for r in report.assertions}
    denied = outcomes["refunds under the cap are never denied"]
    assert denied.outcome == "failed"
    assert denied.witnesses[0].example.opa["finance/refunds"]["allow"] is False
    executed = outcomes["refunds never execute at A2"]
    assert executed.outcome == "failed"
    answer = executed.witnesses[0].example.opa["finance/refunds"]
    assert answer["allow"] is True and answer["risk"] in ("L0", "L1")
    assert outcomes["refunds at A1 wait for someone"].passed
    assert outcomes["refunds are L2 at least"].outcome == "failed"
    assert outcomes["refunds over the cap are denied, whatever OPA says"].passed
    for witness in witnesses(report):
        check_witness(policy_set, witness)
    shown = as_json(report)
    assert any(w.get("opa") for a in shown["assertions"] for w in a.get("witnesses", ()))
