"""The analysis against the engine, packet by packet.

- The model reads a real packet as the engine does: pinned to a random packet, the SMT model
  admits the engine's status, and nothing else when no rule of the tool is unsupported.
- Every "proved" claim survives 10,000 random packets from the catalog's schemas: no L3 action
  executed or waiting for anyone but a founder, no action above L0 executed at A1, no proved
  dead rule firing, every proved assertion kept.
"""

from __future__ import annotations

import random

import z3
from analysis_support import analysis_of, decide, random_examples

from dsl import compile_policy_dir
from dsl.model import Autonomy, Risk
from gateway.analysis.assertions import check, load, tools_of, when_holds
from gateway.analysis.model import STATUS_NAMES, bind
from gateway.analysis.report import Report
from gateway.config import SHIPPED_POLICY_DIR

PACKETS = 10_000


def test_the_model_reads_random_packets_as_the_engine_decides_them() -> None:
    policy_set = compile_policy_dir(SHIPPED_POLICY_DIR)
    analysis = analysis_of(policy_set, SHIPPED_POLICY_DIR / "assertions.toml")
    rng = random.Random(20261207)
    solver = z3.Solver()
    for example in random_examples(analysis, rng, 600):
        model = analysis.model(example.tool)
        status = decide(policy_set, example).status
        code = STATUS_NAMES.index(status)
        solver.push()
        solver.add(*model.constraints, *bind(model, example))
        assert solver.check(model.status == code) == z3.sat, (example, status)
        if not any(f.unsupported for f in model.rules):
            assert solver.check(model.status != code) == z3.unsat, (example, status)
        solver.pop()


def test_every_proof_survives_ten_thousand_random_packets(shipped: Report) -> None:
    policy_set = shipped.policy_set
    assertions = load(SHIPPED_POLICY_DIR / "assertions.toml")
    analysis = analysis_of(policy_set, SHIPPED_POLICY_DIR / "assertions.toml")
    proved = {a.question: set(a.proved) for a in shipped.answers}
    proved_assertions = [r.assertion for r in check(analysis, assertions) if r.passed]
    assert len(proved_assertions) == len(assertions)
    dead = {f.subject for a in shipped.answers if a.question == "dead-rules" for f in a.findings}
    rng = random.Random(7)
    seen = {"l3": 0, "asserted": 0}
    for example in random_examples(analysis, rng, PACKETS):
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
        for assertion in proved_assertions:
            if tool not in tools_of(analysis, assertion):
                continue
            if example.autonomy not in assertion.autonomy:
                continue
            if assertion.when is not None and not when_holds(assertion.when, example):
                continue
            seen["asserted"] += 1
            assert assertion.broken_by(decision) is None, (assertion.name, example, decision)
    assert seen["l3"] > 100 and seen["asserted"] > 1000, seen
