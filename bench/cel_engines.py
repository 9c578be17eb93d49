"""Per-evaluation cost of representative policy expressions, three ways, side by side.

    python bench/cel_engines.py [--rounds N]

(a) Warden's path: the Rust engine (`cel`) with one `cel.Context` built per packet, through
    `invariants.Program.evaluate` (includes our wrapper and the Outcome);
(a0) the same Context with the bare engine call, to show what the wrapper adds;
(b) the Rust engine given a plain dict (converts the whole packet on every call);
(c) cel-python (`celpy`), compiled once, evaluated per call.

Prints median and p99 microseconds per evaluation and the ratio to (a). Also the one-off cost
of building an activation (our JSON check plus the engine's conversion of the packet into CEL
values, which dominates: ~2 µs per string). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import cel
import celpy
from celpy import celtypes

from invariants import activation, compile_expression

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
PACKET: dict[str, Any] = {
    "params": {"charge": "ch_123", "amount": 60000, "currency": "usd", "tool": "stripe.refund",
               "contact_ids": [f"c{i}" for i in range(5)], "margin": 0.18},
    "evidence": {"order_total": 60000, "reconciled": True, "risk_score": 0.12,
                 "reconciliation": {"status": "matched"}, "cash_runway_days": 45,
                 "projected_margin": 0.17},
    "agent": {"name": "refund-bot", "autonomy": "A2", "owner": "ops@example.com"},
    "context": {"goal_id": "g-42", "task_id": "t-7", "reasoning": "customer received damaged item"},
}  # fmt: skip
EXPRESSIONS = {
    "threshold": "params.amount > 50000",
    "invariant": "evidence.reconciled == true",
    "nested": 'evidence.reconciliation.status == "matched" && evidence.risk_score < 0.3',
    "compound": "params.amount <= 500.0 && params.margin >= 0.15 && !(params.tool in ['stripe.payout'])",
    "strings": 'params.tool.startsWith("stripe.") && params.currency in ["usd", "eur"]',
    "comprehension": 'size(params.contact_ids) <= 100 && params.contact_ids.all(c, c.startsWith("c"))',
}


def measure(call: Callable[[], Any], rounds: int) -> tuple[float, float] | str:
    """(median, p99) in microseconds over `rounds` timed calls after a warm-up."""
    try:
        for _ in range(min(200, rounds)):
            call()
    except Exception as exc:  # a baseline that cannot run this expression says so
        return f"failed: {type(exc).__name__}: {str(exc)[:160]}"
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--python-rounds", type=int, default=2_000, help="rounds for cel-python")
    args = parser.parse_args()
    logging.getLogger("celpy").setLevel(logging.CRITICAL)

    act = activation(now=NOW, **PACKET)
    variables = {**PACKET, "now": NOW}
    env = celpy.Environment()
    py_act = {k: celpy.json_to_cel(v) for k, v in PACKET.items()} | {"now": celtypes.TimestampType(NOW)}

    large = {**PACKET, "params": {**PACKET["params"], "contact_ids": [f"cus_{i:08d}" for i in range(1000)]}}
    for label, packet in (("typical packet", PACKET), ("1,000 contact ids", large)):
        build = measure(lambda: activation(now=NOW, **packet), args.rounds // 20)
        print(f"activation(), {label}: median {build[0]:.1f} µs, p99 {build[1]:.1f} µs")  # type: ignore[index]
    print()
    head = f"{'expression':<14} {'(a) Warden':>18} {'(a0) bare ctx':>18} {'(b) rust+dict':>18} {'(c) cel-python':>20}   b/a     c/a"
    print(head + "\n" + "-" * len(head))
    notes: list[str] = []
    for name, source in EXPRESSIONS.items():
        program = compile_expression(source)
        assert program.evaluate(act).verdict in ("PASS", "FAIL"), (name, program.evaluate(act))
        raw = cel.compile(source)
        context = act.context
        py_program = env.program(env.compile(source))
        a = measure(lambda: program.evaluate(act), args.rounds)
        a0 = measure(lambda: raw.execute(context), args.rounds)
        b = measure(lambda: raw.execute(variables), args.rounds)
        c = measure(lambda: py_program.evaluate(py_act), args.python_rounds)
        for label, result in (("(a)", a), ("(a0)", a0), ("(b)", b), ("(c)", c)):
            if isinstance(result, str):
                notes.append(f"{name} {label}: {result}")
        cells = [_cell(x) for x in (a, a0, b, c)]
        ratios = [_ratio(x, a) for x in (b, c)]
        print(f"{name:<14} {cells[0]:>18} {cells[1]:>18} {cells[2]:>18} {cells[3]:>20}  {ratios[0]:>5} {ratios[1]:>7}")
    print("\ncells: median / p99 µs per evaluation; ratios of medians against (a)")
    for note in notes:
        print(note)


def _cell(result: tuple[float, float] | str) -> str:
    return "failed (see below)" if isinstance(result, str) else f"{result[0]:.2f} / {result[1]:.2f}"


def _ratio(result: tuple[float, float] | str, base: tuple[float, float] | str) -> str:
    if isinstance(result, str) or isinstance(base, str):
        return "n/a"
    return f"{result[0] / base[0]:.0f}x"


if __name__ == "__main__":
    main()
