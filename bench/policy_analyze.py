"""How long `warden policy analyze` takes on the shipped policies.

    python bench/policy_analyze.py [--rounds N] [--policies DIR]

Each round compiles nothing (the policy set is compiled once, as the command does before it
analyses) and runs the whole analysis afresh: the models of every tool, each built-in question,
and the assertions of DIR/assertions.toml, every counter-example confirmed by the engine. It
prints the median and the fastest round, per question and in all, with the solver calls made.
The first round is reported apart: it pays for building cel-python's parser and Z3's context.
Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsl import compile_policy_dir  # noqa: E402
from gateway.analysis.assertions import FILE_NAME, analysis_for, check, load  # noqa: E402
from gateway.analysis.questions import QUESTIONS  # noqa: E402
from gateway.config import SHIPPED_POLICY_DIR  # noqa: E402


def one_round(directory: Path) -> tuple[dict[str, float], int]:
    policy_set = compile_policy_dir(directory)
    path = directory / FILE_NAME
    assertions = load(path) if path.is_file() else []
    times: dict[str, float] = {}
    started = time.perf_counter()
    analysis = analysis_for(policy_set, assertions)
    for question in QUESTIONS:
        begun = time.perf_counter()
        analysis.answer(question)
        times[question] = time.perf_counter() - begun
    begun = time.perf_counter()
    check(analysis, assertions)
    times["assertions"] = time.perf_counter() - begun
    times["total"] = time.perf_counter() - started
    return times, analysis.searcher.solver_calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--policies", type=Path, default=SHIPPED_POLICY_DIR)
    args = parser.parse_args()
    first, calls = one_round(args.policies)
    rounds = [one_round(args.policies)[0] for _ in range(args.rounds)]
    print(f"policy analysis of {args.policies} ({args.rounds} rounds, {calls} solver calls "
          "per round)")
    print(f"{'':<12} {'median ms':>10} {'min ms':>10} {'first ms':>10}")
    for name in (*QUESTIONS, "assertions", "total"):
        values = [r[name] * 1000 for r in rounds]
        print(f"{name:<12} {statistics.median(values):>10.1f} {min(values):>10.1f} "
              f"{first[name] * 1000:>10.1f}")


if __name__ == "__main__":
    main()
