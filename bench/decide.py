"""How long one decision takes: Warden's engine against Rego and cel-python, side by side.

    python bench/decide.py [--rounds N] [--policies DIR]

Over the shipped policies and the fixed packets in `bench/packets/decide.json` (21 packets across
the whole tool catalog: allowed, pending, denied, drafted), one run measures, in-process and per
decision:

  (a) Warden: `Decider.decide(packet, agent, dry_run=True)` on a validated Packet (compiled
      policy set, CEL on the Rust `cel` engine);
  (b) Rego: the same rules written in Rego (`bench/rego/*.rego`) evaluated by `regopy`
      (rego-cpp) from a compiled bundle: `set_input` + `query_bundle`, its fastest path;
  (c) cel-python: every condition of every applicable policy evaluated with `celpy`
      (interpreted runner; its compiled runner fails on these expressions), then the same
      status logic in a few lines of Python.

It first checks that Rego and Warden agree on every packet's status and risk (and exits 1 if
not: a baseline that decides differently measures nothing), then prints median and p99 µs per
decision and the ratios. Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl import compile_policy_dir  # noqa: E402
from dsl.model import Autonomy, PolicySet, Risk  # noqa: E402
from gateway.engine.agents import Agent  # noqa: E402
from gateway.engine.decider import Decider  # noqa: E402
from gateway.engine.models import Packet  # noqa: E402

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
Item = tuple[str, str, dict[str, Any]]  # name, autonomy, packet JSON
Outcome = tuple[str, str]  # status, risk


def load_items(path: Path) -> list[Item]:
    return [(e["name"], e["autonomy"], e["packet"]) for e in json.loads(path.read_text())]


# ---- (a) Warden --------------------------------------------------------------------------------


def warden_deciders(policy_set: PolicySet, items: list[Item]) -> list[Callable[[], Outcome]]:
    engine = Decider(policy_set)

    def decider(packet: Packet, agent: Agent) -> Callable[[], Outcome]:
        def run() -> Outcome:
            decision = engine.decide(packet, agent, now=NOW, dry_run=True)
            return decision.status, decision.risk.name

        return run

    return [decider(Packet.model_validate(p), Agent(name=p["agent"], autonomy=a))
            for _, a, p in items]


# ---- (b) Rego ----------------------------------------------------------------------------------


def rego_deciders(rego_dir: Path, items: list[Item]) -> list[Callable[[], Outcome]]:
    from regopy import Interpreter

    builder = Interpreter()
    for module in sorted(rego_dir.glob("*.rego")):
        builder.add_module(module.name, module.read_text())
    bundle = builder.build("data.warden.decision", [])
    rego = Interpreter()

    def decider(document: dict[str, Any]) -> Callable[[], Outcome]:
        def run() -> Outcome:
            rego.set_input(document)
            result = rego.query_bundle(bundle).results[0].expressions[0]
            return result["status"], result["risk"]

        return run

    return [decider({"packet": p, "autonomy": a, "kill_switch": False}) for _, a, p in items]


# ---- (c) cel-python ----------------------------------------------------------------------------


def celpy_deciders(policy_set: PolicySet, items: list[Item]) -> list[Callable[[], Outcome]]:
    """The same expressions, compiled by cel-python, and the engine's status rules in brief."""
    import celpy

    env = celpy.Environment()
    compiled: dict[str, Any] = {}

    def program(source: str) -> Any:
        if source not in compiled:
            compiled[source] = env.program(env.compile(source))
        return compiled[source]

    def holds(source: str, act: dict[str, Any]) -> bool | None:
        try:
            value = program(source).evaluate(act)
        except Exception:  # cel-python raises CELEvalError for missing fields and mistypes
            return None
        return bool(value) if isinstance(value, celpy.celtypes.BoolType) else None

    for policy in policy_set.policies:  # compile everything up front, as Warden does at load
        for expr in _expressions(policy):
            program(expr)

    def decider(packet: dict[str, Any], autonomy: Autonomy) -> Callable[[], Outcome]:
        tool = packet["action"]["tool"]

        def run() -> Outcome:
            act = {
                "params": celpy.json_to_cel(packet["action"]["params"]),
                "evidence": celpy.json_to_cel(packet.get("evidence", {})),
                "context": celpy.json_to_cel(packet.get("context", {})),
                "agent": celpy.json_to_cel({"name": packet["agent"], "autonomy": autonomy.name}),
                "now": celpy.celtypes.TimestampType(NOW),
            }
            return _celpy_status(policy_set.policies_for(tool), autonomy, act, holds)

        return run

    return [decider(p, Autonomy[a]) for _, a, p in items]


def _expressions(policy: Any) -> list[str]:
    rules = [*policy.escalations, *policy.denies]
    conditional = [r for r in (*policy.approvals, *policy.autonomy_rules) if r.when is not None]
    return ([i.expr.source for i in policy.invariants] + [r.when.source for r in rules]
            + [r.when.source for r in conditional])


def _celpy_status(policies: Any, autonomy: Autonomy, act: dict[str, Any],
                  holds: Callable[[str, dict[str, Any]], bool | None]) -> Outcome:
    tiers = [p.risk for p in policies if p.enforced and p.risk is not None]
    if not tiers:
        return "denied", "L3"
    risk, violated, approval = max(tiers), False, False
    for policy in policies:
        results = {src: holds(src, act) for src in _expressions(policy)}
        if not policy.enforced:
            continue  # evaluated (the same work), reported, never enforced
        violated |= any(results[i.expr.source] is not True for i in policy.invariants)
        violated |= any(results[d.when.source] is not False for d in policy.denies)
        for e in policy.escalations:
            fired = results[e.when.source]
            violated |= fired is None
            risk = max(risk, e.tier) if fired else risk
        for a in policy.approvals:
            fired = True if a.when is None else results[a.when.source]
            violated |= fired is None
            approval |= bool(fired)
        for m in policy.autonomy_rules:
            if autonomy < m.level:
                fired = True if m.when is None else results[m.when.source]
                violated |= fired is not False
    if violated:
        return "denied", risk.name
    if autonomy == Autonomy.A0:
        return "drafted", risk.name
    matrix = risk >= Risk.L2 or (autonomy == Autonomy.A1 and risk >= Risk.L1)
    return ("pending_approval" if matrix or approval else "allowed"), risk.name


# ---- measuring ---------------------------------------------------------------------------------


def measure(engines: dict[str, list[Callable[[], Outcome]]], passes: dict[str, int],
            blocks: int = 20) -> dict[str, list[list[float]]]:
    """Microseconds per decision, per engine and per packet, one sample per call.

    The engines take turns in `blocks` rounds (each doing its share of passes over every packet
    per round), so a burst of load on the machine hits all of them rather than one.
    """
    samples = {name: [[] for _ in runs] for name, runs in engines.items()}
    for runs in engines.values():  # warm-up
        for run in runs:
            run()
    clock = time.perf_counter_ns
    for block in range(blocks):
        for name, runs in engines.items():
            share = passes[name] // blocks + (block < passes[name] % blocks)
            for _ in range(share):
                for i, run in enumerate(runs):
                    start = clock()
                    run()
                    samples[name][i].append((clock() - start) / 1000)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="passes over the packets (Warden)")
    parser.add_argument("--policies", type=Path, default=ROOT / "policies")
    parser.add_argument("--packets", type=Path, default=ROOT / "bench" / "packets" / "decide.json")
    args = parser.parse_args(argv)

    items = load_items(args.packets)
    policy_set = compile_policy_dir(args.policies)
    engines = {
        "warden": warden_deciders(policy_set, items),
        "rego": rego_deciders(ROOT / "bench" / "rego", items),
        "celpy": celpy_deciders(policy_set, items),
    }
    # (1) agreement: the baselines must decide what Warden decides.
    outcomes = {name: [run() for run in runs] for name, runs in engines.items()}
    disagree = [item[0] for i, item in enumerate(items)
                if outcomes["rego"][i] != outcomes["warden"][i]]
    celpy_agree = sum(outcomes["celpy"][i] == outcomes["warden"][i] for i in range(len(items)))
    print(f"rego agrees with warden on {len(items) - len(disagree)}/{len(items)} packets "
          f"(status and risk); celpy on {celpy_agree}/{len(items)}")
    if disagree:
        for i, (name, autonomy, _) in enumerate(items):
            row = "  ".join(f"{k}={outcomes[k][i][0]}/{outcomes[k][i][1]}" for k in engines)
            print(f"  {'!!' if name in disagree else '  '} {name} {autonomy}: {row}")
        print("rego and warden disagree: fix the translation before reading any timing")
        return 1
    # (2) timing: slower engines get fewer passes, never fewer than 20 per packet.
    passes = {"warden": args.rounds, "rego": max(20, args.rounds // 10),
              "celpy": max(20, args.rounds // 25)}
    samples = measure(engines, passes)
    print(f"\n{'packet':<28}{'status':<18}" + "".join(f"{k + ' µs':>12}" for k in engines)
          + f"{'rego/warden':>13}")
    for i, (name, autonomy, _) in enumerate(items):
        medians = {k: statistics.median(samples[k][i]) for k in engines}
        print(f"{name + ' ' + autonomy:<28}{outcomes['warden'][i][0]:<18}"
              + "".join(f"{medians[k]:>12.1f}" for k in engines)
              + f"{medians['rego'] / medians['warden']:>12.1f}x")
    stats = {}
    for name in engines:
        flat = sorted(x for per_packet in samples[name] for x in per_packet)
        stats[name] = (statistics.median(flat), p99(flat), flat[len(flat) // 10], len(flat))
    # p10 is shown beside the median as a hint of the uncontended cost on a busy machine.
    print(f"\n{'engine':<10}{'decisions':>10}{'median µs':>12}{'p99 µs':>12}{'p10 µs':>10}"
          f"{'median vs warden':>18}{'p99 vs warden':>15}")
    base, base_tail = stats["warden"][0], stats["warden"][1]
    for name, (median, tail, low, n) in stats.items():
        print(f"{name:<10}{n:>10}{median:>12.1f}{tail:>12.1f}{low:>10.1f}{median / base:>17.1f}x"
              f"{tail / base_tail:>14.1f}x")
    ratio = stats["rego"][0] / base
    print(f"\ngoal: warden median <= 100 µs: {'met' if base <= 100 else 'NOT met'} "
          f"({base:.1f} µs); >= 10x faster than rego: {'met' if ratio >= 10 else 'NOT met'} "
          f"({ratio:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
