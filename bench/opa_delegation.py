"""What delegating a check to OPA costs a decision, beside the same rule written in Warden's DSL.

    python bench/opa_delegation.py [--rounds N]

One refunds check, two ways: (dsl) a `deny` and an `escalate` rule in CEL; (opa) an `opa`
statement asking `warden/refunds/decision` (tests/fakes/rego/refunds.rego, the same rule in
Rego). Over three packets (allowed, escalated, denied), per decision, it measures:

  (a) dsl          `Decider.decide` with the DSL rule;
  (b) opa          `OpaDelegate.ask` over loopback HTTP + `Decider.decide` with the answer: what
                   the pipeline pays per packet;
  (c) opa, given   `Decider.decide` with the answer already in hand: the engine's part of (b);
  (d) rego eval    what the test server spends evaluating the Rego itself (regopy, parsing the
                   module each query), so (b) - (d) is Warden's side and the HTTP round trip;
  (e) opa, canned  (b) with the server answering at once with a fixed answer, without any Rego:
                   the round trip, the client and the engine, which is what a fast OPA costs.

The OPA binary cannot be installed where this runs, so (b) talks to tests/fakes/opa.py (a
Python HTTP server evaluating real Rego with regopy); a real OPA answers faster than the fake
evaluates, which is why (d) is printed and subtracted. It first checks that both ways decide
every packet alike (status, and the risk of what is not denied), then prints medians in µs and the ratios. Not part of the test suite:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dsl import compile_sources  # noqa: E402
from fakes.opa import FakeOpa  # noqa: E402
from gateway.delegation.opa import OpaDelegate  # noqa: E402
from gateway.engine.agents import Agent  # noqa: E402
from gateway.engine.decider import Decider  # noqa: E402
from gateway.engine.delegation import opa_input  # noqa: E402
from gateway.engine.models import Packet  # noqa: E402

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
PATH = "warden/refunds/decision"
DSL = """
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  deny finance when evidence.risk_score > 80 || params.amount > 200000
    because "refused by the finance check"
  escalate finance_risk L2 when params.amount > 30000 because "over $300: an approver"
}
"""
OPA = f"""
policy refunds {{
  applies to tool "stripe.refund"
  risk L1
  opa finance "{PATH}" reads params.amount, evidence.risk_score
}}
"""
AGENT = Agent(name="bench", autonomy="A2")
PACKETS = {
    "allowed": (1_000, 10),
    "escalated": (40_000, 10),
    "denied": (300_000, 95),
}


def packet(amount: int, risk_score: int) -> Packet:
    return Packet.model_validate({
        "packet_id": "bench-1", "agent": "bench",
        "action": {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": amount, "currency": "usd"}},
        "evidence": {"reconciled": True, "risk_score": risk_score},
    })


def median_us(run: Callable[[], Any], rounds: int) -> float:
    for _ in range(min(rounds, 20)):  # warm-up
        run()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="decisions measured per packet and way")
    args = parser.parse_args(argv)

    dsl = Decider(compile_sources({"refunds.policy": DSL}))
    opa = Decider(compile_sources({"refunds.policy": OPA}))
    delegations = opa.delegations_for("stripe.refund")
    server = FakeOpa().start()
    delegate = OpaDelegate(server.base_url, timeout=2.0)
    try:
        rows = []
        for name, (amount, score) in PACKETS.items():
            p = packet(amount, score)
            answers = delegate.ask(delegations, p, AGENT)
            by_dsl = dsl.decide(p, AGENT, now=NOW, dry_run=True)
            by_opa = opa.decide(p, AGENT, now=NOW, dry_run=True, delegated=answers)
            expected = {"escalated": "pending_approval"}.get(name, name)
            same_risk = by_dsl.risk == by_opa.risk or expected == "denied"  # a denial's tier differs
            if by_dsl.status != by_opa.status or by_dsl.status != expected or not same_risk:
                print(f"{name}: dsl {by_dsl.status}/{by_dsl.risk.name} but opa {by_opa.status}/{by_opa.risk.name}")
                return 1
            document = opa_input(delegations[0], p, AGENT)
            rows.append((name, {
                "dsl": median_us(lambda: dsl.decide(p, AGENT, now=NOW, dry_run=True), args.rounds),
                "opa": median_us(lambda: opa.decide(p, AGENT, now=NOW, dry_run=True,
                                                    delegated=delegate.ask(delegations, p, AGENT)), args.rounds),
                "given": median_us(lambda: opa.decide(p, AGENT, now=NOW, dry_run=True, delegated=answers),
                                   args.rounds),
                "rego": median_us(lambda: server.evaluate(PATH, document), args.rounds),
            }))
            server.fail(f"POST /v1/data/{PATH}", status=200, body={"result": answers[PATH].answer}, times=None)
            rows[-1][1]["canned"] = median_us(lambda: opa.decide(p, AGENT, now=NOW, dry_run=True,
                                                                 delegated=delegate.ask(delegations, p, AGENT)),
                                              args.rounds)
            server.clear_faults()
    finally:
        delegate.close()
        server.stop()

    print("both ways decide every packet alike (status, and risk where not denied)")
    print(f"{'packet':<10} {'(a) dsl':>10} {'(b) opa':>10} {'(c) given':>10} {'(d) rego':>10} "
          f"{'(e) canned':>10} {'b/a':>8} {'e/a':>8}   median µs per decision")
    mean = {k: statistics.fmean(t[k] for _, t in rows) for k in ("dsl", "opa", "given", "rego", "canned")}
    for name, t in [*rows, ("mean", mean)]:
        print(f"{name:<10} {t['dsl']:>10.1f} {t['opa']:>10.1f} {t['given']:>10.1f} {t['rego']:>10.1f} "
              f"{t['canned']:>10.1f} {t['opa'] / t['dsl']:>8.1f} {t['canned'] / t['dsl']:>8.1f}")
    print(f"delegating adds {mean['opa'] - mean['dsl']:.0f} µs a decision against the test server, "
          f"{mean['canned'] - mean['dsl']:.0f} µs when the server answers at once; "
          f"the engine's own part is {mean['given'] - mean['dsl']:+.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
