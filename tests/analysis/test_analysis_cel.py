"""The CEL translation against the engine, expression by expression.

Each expression of the subset is an invariant of a probe policy; for random packets (params of
`stripe.refund`, evidence of the kinds the expressions use, of other kinds or absent) the Z3
terms, pinned to the packet, must give the engine's verdict (PASS, FAIL or ERROR) and no other.
"""

from __future__ import annotations

import random

import pytest
import z3
from analysis_support import random_examples

from dsl import compile_sources
from gateway.analysis.model import bind
from gateway.analysis.questions import Analysis
from gateway.analysis.search import AGENT, NOW
from invariants import activation, compile_expression

EXPRESSIONS = [
    "params.amount > 50000",
    "params.amount >= 50000.5",
    "params.amount * 2 > 100001",
    "params.amount + 9223372036854775800 > 0",
    "-params.amount < -100",
    "has(params.reason) && params.reason == 'fraudulent'",
    "params.reason == 'duplicate'",
    "params.reason in ['duplicate', 'fraudulent']",
    "params.reason + '!' == 'duplicate!'",
    "params.charge.startsWith('ch_') && !params.charge.contains('x')",
    "params.nope > 1 || params.amount > 10",
    "evidence.reconciled == true",
    "!evidence.reconciled || params.amount < 100",
    "evidence.score < 0.3 && evidence.score >= 0.0",
    "evidence.count * 2 > 10",
    "has(evidence.rec.status) && evidence.rec.status != 'matched'",
    "evidence.rec.status == 'matched' || has(context.compensation)",
    "evidence.rec.status in ['matched', 'pending']",
    "agent.autonomy == 'A3' || params.amount < 10",
    "(params.amount > 100 ? evidence.score : 1.0) < 0.5",
    "evidence.reconciled ? params.amount > 5 : params.amount < 5",
]
#: Expressions whose value is left free on some packets: double() of a value of another kind,
#: the rounding of double arithmetic (where it decides: `0.2 + 1.0 > 1.2` is false in doubles).
LOOSE = {"double(evidence.count) > 2.5", "double(params.amount) / 3.0 > 10.0",
         "evidence.score + 1.0 > 1.2"}


@pytest.fixture(scope="module")
def probe() -> Analysis:
    body = "\n".join(f"  invariant e{i} : {source}"
                     for i, source in enumerate([*EXPRESSIONS, *sorted(LOOSE)]))
    policy_set = compile_sources({"probe.policy": f'''
policy probe {{
  applies to tool "stripe.refund"
  risk L1
{body}
}}
'''})
    return Analysis(policy_set, catalog_tools=["stripe.refund"])


def test_every_expression_is_in_the_subset(probe: Analysis) -> None:
    model = probe.model("stripe.refund")
    assert [f.unsupported for f in model.rules] == [None] * len(model.rules)


def test_the_terms_give_the_engines_verdict(probe: Analysis) -> None:
    model = probe.model("stripe.refund")
    sources = [*EXPRESSIONS, *sorted(LOOSE)]
    programs = [compile_expression(s) for s in sources]
    solver = z3.Solver()
    solver.add(*model.constraints)
    verdicts: set[tuple[int, str]] = set()
    for example in random_examples(probe, random.Random(11), 150):
        packet = example.packet
        act = activation(params=packet["action"]["params"], evidence=packet["evidence"],
                         agent={"name": AGENT, "autonomy": example.autonomy.name, "owner": None},
                         context=packet["context"], now=NOW)
        solver.push()
        solver.add(*bind(model, example))
        for index, (fact, program) in enumerate(zip(model.rules, programs)):
            verdict = program.evaluate(act).verdict
            verdicts.add((index, verdict))
            expected = {"PASS": z3.And(fact.holds, z3.Not(fact.err)),
                        "FAIL": z3.And(z3.Not(fact.holds), z3.Not(fact.err)),
                        "ERROR": fact.err}[verdict]
            where = (sources[index], packet["action"]["params"], packet["evidence"], verdict)
            assert solver.check(expected) == z3.sat, where
            if sources[index] not in LOOSE:
                assert solver.check(z3.Not(expected)) == z3.unsat, where
        solver.pop()
    # the packets reach at least two of the three verdicts of every expression
    for index in range(len(sources)):
        assert len({v for i, v in verdicts if i == index}) >= 2, sources[index]
