"""`warden policy analyze [DIR] [--json] [--question NAME]`: proofs about the policies.

Asks Z3 the built-in questions (`gateway.analysis.questions`) and checks the authors'
assertions (DIR/assertions.toml, `gateway.analysis.assertions`). Every counter-example is a
packet and an autonomy that `warden policy explain` decides as shown.

Exit codes (gateway.cli.exits): 0 every question holds and every assertion is proved (notes,
such as two policies that disagree, and rules outside the analysed subset are reported, not
fatal), 1 a finding or an assertion that does not hold or could not be proved, 2 unreadable
input (a bad assertions file, as file:line:col), 3 the policies do not compile.

`warden policy test` checks the assertions too (`test_assertions`), counted with its cases.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.compiling import DIR_HELP, compile_dir, policy_dir
from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option

if TYPE_CHECKING:
    from dsl.model import PolicySet
    from gateway.analysis.assertions import Assertion

QUESTION_NAMES = ("l3-founder", "a1-approval", "dead-rules", "gaps", "conflicts", "assertions")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `warden policy analyze`."""
    analyze = commands.add_parser(
        "analyze", help="prove properties of the policies with an SMT solver",
        description="Prove properties of the policies with Z3, for every packet the catalog "
                    "allows; each counter-example is a packet `warden policy explain` decides "
                    "as shown.")
    analyze.add_argument("dir", nargs="?", type=Path, metavar="DIR", help=DIR_HELP)
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")
    analyze.add_argument("--question", action="append", choices=QUESTION_NAMES, metavar="NAME",
                         help=f"ask only this question (repeatable): {', '.join(QUESTION_NAMES)}")
    add_config_option(analyze)
    analyze.set_defaults(handler=analyze_command)


def analyze_command(args: argparse.Namespace) -> int:
    from gateway.analysis.report import as_json, render_text, run

    directory = policy_dir(args)
    policy_set = compile_dir(directory)
    asked = args.question or QUESTION_NAMES
    assertions = load_assertions(directory) if "assertions" in asked else None
    report = run(directory, policy_set, assertions, [q for q in asked if q != "assertions"])
    if args.json:
        print(json.dumps(as_json(report), indent=2))
    else:
        print(render_text(report))
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def load_assertions(directory: Path) -> list[Assertion]:
    """DIR/assertions.toml, or none; a mistake in it is a CommandError (exit 2)."""
    from gateway.analysis.assertions import FILE_NAME, AssertionFileError, load

    path = directory / FILE_NAME
    if not path.is_file():
        return []
    try:
        return load(path)
    except AssertionFileError as exc:
        raise CommandError(str(exc)) from None


def test_assertions(directory: Path, policy_set: PolicySet, verbose: bool,
                    pattern: re.Pattern[str] | None) -> tuple[int, int]:
    """For `warden policy test`: check the assertions of DIR/assertions.toml whose name matches
    `pattern`, print each failure (each result with `verbose`), return (proved, total)."""
    from gateway.analysis.assertions import analysis_for, check
    from gateway.analysis.report import explain_status

    assertions = [a for a in load_assertions(directory)
                  if pattern is None or pattern.search(a.name)]
    if not assertions:
        return 0, 0
    results = check(analysis_for(policy_set, assertions), assertions)
    for result in results:
        where = f"assertions.toml: {result.assertion.name}"
        if result.passed:
            if verbose:
                print(f"{where}: PASS (proved)")
            continue
        print(f"{where}: {'FAIL' if result.outcome == 'failed' else 'NOT PROVED'}")
        details: list[Any] = [result.broken, result.note]
        for witness in result.witnesses:
            details.append(f"autonomy {witness.example.autonomy.name}, packet "
                           f"{json.dumps(witness.example.packet)} → "
                           f"{explain_status(witness.decision.status)}")
        for detail in details:
            if detail:
                print(f"    {detail}")
    return sum(1 for r in results if r.passed), len(results)
