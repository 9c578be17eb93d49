"""The analysis against the engine, packet by packet.

- The model reads a real packet as the engine does: pinned to a random packet, the SMT model
  admits the engine's status, and nothing else when no rule of the tool is unsupported or does
  double arithmetic (whose rounding the model leaves free).
- Every "proved" claim survives random packets from the catalog's schemas (10,000 for the
  shipped policies, 2,000 for each small set): no L3 action executed or waiting for anyone but
  a founder, no action above L0 executed at A1, no rule proved dead firing, every proved
  assertion kept.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import z3
from analysis_support import analysis_of, decide, policies, random_examples

from dsl import compile_policy_dir
from dsl.model import Autonomy, PolicySet, Risk
from gateway.analysis.assertions import load, tools_of, when_holds
from gateway.analysis.model import STATUS_NAMES, bind
from gateway.analysis.report import run
from gateway.config import SHIPPED_POLICY_DIR

SMALL_SETS = {
    "band and cap": ('''
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  invariant reconciled : evidence.reconciled == true
  escalate band L2 when params.amount > 50000 && params.amount < 500000 because "band"
  deny cap when params.amount > 500000 because "cap"
  deny never when params.amount < 0 because "never"
}
policy payouts {
  applies to tool "stripe.payout"
  risk L1
  escalate huge L3 when params.amount > 100 because "huge"
  require approval any from role "approver"
}
''', '''
[[assert]]
name = "caps"
tool = "stripe.refund"
when = "params.amount > 500000"
only = "denied"

[[assert]]
name = "huge payouts"
tool = "stripe.payout"
when = "params.amount > 100"
never = "executed"
approval_role = "founder"
'''),
    "evidence and deletions": ('''
policy transfers {
  applies to tool "stripe.transfer"
  risk L2
  invariant rec : evidence.rec.status == "matched" || has(context.compensation)
  deny risky when evidence.score >= 0.5 because "risky"
  deny riskier when evidence.score >= 0.9 because "covered by risky"
}
policy deletions {
  applies to tool "crm.delete_contact"
  risk L1
  escalate many L3 when size(params.contact_ids) > 10 because "many"
  min_autonomy floor A3 when size(params.contact_ids) > 10
}
''', '''
[[assert]]
name = "no transfer without matching books"
tool = "stripe.transfer"
when = "has(evidence.rec.status) && evidence.rec.status != 'matched' && !has(context.compensation)"
only = "denied"

[[assert]]
name = "many deletions below A3"
tool = "crm.delete_contact"
when = "size(params.contact_ids) > 10"
autonomy = ["A1", "A2"]
only = "denied"
'''),
}


def _sets(tmp_path: Path, name: str) -> tuple[PolicySet, Path]:
    if name == "shipped":
        return compile_policy_dir(SHIPPED_POLICY_DIR), SHIPPED_POLICY_DIR / "assertions.toml"
    text, asserted = SMALL_SETS[name]
    path = tmp_path / "assertions.toml"
    path.write_text(asserted)
    return policies(text), path


def test_the_model_reads_random_packets_as_the_engine_decides_them(tmp_path: Path) -> None:
    for name in ("shipped", *SMALL_SETS):
        policy_set, asserted = _sets(tmp_path, name)
        analysis = analysis_of(policy_set, asserted)
        solver = z3.Solver()
        for example in random_examples(analysis, random.Random(20261207), 400):
            model = analysis.model(example.tool)
            status = decide(policy_set, example).status
            code = STATUS_NAMES.index(status)
            solver.push()
            solver.add(*model.constraints, *bind(model, example))
            assert solver.check(model.status == code) == z3.sat, (example, status)
            if not model.env.inexact and not any(f.unsupported for f in model.rules):
                assert solver.check(model.status != code) == z3.unsat, (example, status)
            solver.pop()


@pytest.mark.parametrize(("name", "packets"), [("shipped", 10_000), *(
    (name, 2_000) for name in SMALL_SETS)])
def test_every_proof_survives_random_packets(tmp_path: Path, name: str, packets: int) -> None:
    policy_set, asserted = _sets(tmp_path, name)
    assertions = load(asserted)
    report = run(tmp_path, policy_set, assertions)
    analysis = analysis_of(policy_set, asserted)
    proved = {a.question: set(a.proved) for a in report.answers}
    kept = [r.assertion for r in report.assertions or () if r.passed]
    assert len(kept) == len(assertions)
    dead_rules = [f for a in report.answers if a.question == "dead-rules" for f in a.findings]
    dead = {f.subject for f in dead_rules if "redundant" not in f.message}
    covered = {f.subject for f in dead_rules if "redundant" in f.message}
    seen = {"l3": 0, "asserted": 0}
    for example in random_examples(analysis, random.Random(7), packets):
        decision = decide(policy_set, example)
        tool = example.tool
        if tool in proved["l3-founder"] and decision.risk == Risk.L3:
            seen["l3"] += 1
            assert decision.status in ("denied", "drafted", "pending_approval"), example
            if decision.status == "pending_approval":
                assert decision.approval is not None
                assert decision.approval.required_role == "founder", example
        if tool in proved["a1-approval"] and example.autonomy == Autonomy.A1:
            assert decision.status != "executed" or decision.risk == Risk.L0, example
        fired = {f"{r.policy}.{r.rule}" for r in decision.reasons if r.effect != "error"}
        assert not fired & dead, example
        shown = {f"{r.policy}.{r.rule}" for r in decision.reasons}
        for label in fired & covered:  # a redundant rule fires only beside a stricter one
            policy = label.split(".")[0]
            assert any(f.startswith(f"{policy}.") and f != label for f in shown), example
        for assertion in kept:
            if tool not in tools_of(analysis, assertion) or \
                    example.autonomy not in assertion.autonomy:
                continue
            if assertion.when is not None and not when_holds(assertion.when, example):
                continue
            seen["asserted"] += 1
            assert assertion.broken_by(decision) is None, (assertion.name, example, decision)
    assert seen["l3"] > packets // 100 and seen["asserted"] > packets // 100, seen
