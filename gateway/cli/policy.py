"""`warden policy check | test | explain`: the policy author's loop, offline.

    check [DIR]                 compile every policy file; errors as file:line:col with a caret
    test [DIR] [-v] [-r RE]     run DIR/tests/*.toml like `opa test`: PASS: N/M, exit 1 on failure
    explain PACKET.json --autonomy A2 [--json] [--dir DIR] [--agent-owner WHO] [--now T]
                                the decision a packet would get, and every reason why (dry run)

DIR defaults to the policies shipped with Warden. Exit codes (gateway.cli): 0 ok, 1 a policy
test failed, 2 unreadable input (missing file, bad JSON, invalid packet or test file),
3 the policies do not compile. Bad input is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dsl.shipped import builtin_policy_dir
from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_COMPILE_ERROR, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:  # the compiler and the engine load the CEL engine: only when a command runs
    from dsl.model import Diagnostic, PolicySet
    from gateway.engine.models import Decision, Packet

Handler = Callable[[argparse.Namespace], int]

#: The policies shipped with Warden: `dsl.builtin_policy_dir()` (package data of `dsl`).
SHIPPED_POLICY_DIR = builtin_policy_dir()


class CommandError(Exception):
    """A problem with the user's input: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `warden policy ...` to the `warden` command."""
    policy = subparsers.add_parser("policy", help="check, test and explain policies",
                                   description=__doc__.split("\n\n")[0])
    commands = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    commands.required = True

    check = commands.add_parser("check", help="compile the policies; errors as file:line:col")
    check.add_argument("dir", nargs="?", type=Path, default=SHIPPED_POLICY_DIR, metavar="DIR")
    check.set_defaults(handler=_guarded(check_command))

    test = commands.add_parser("test", help="run the policy tests in DIR/tests")
    test.add_argument("dir", nargs="?", type=Path, default=SHIPPED_POLICY_DIR, metavar="DIR")
    test.add_argument("-v", "--verbose", action="store_true", help="list every case")
    test.add_argument("-r", "--run", metavar="REGEX", help="only cases whose name matches")
    test.set_defaults(handler=_guarded(test_command))

    explain = commands.add_parser("explain", help="the decision a packet would get, and why")
    explain.add_argument("packet", type=Path, metavar="PACKET.json")
    explain.add_argument("--autonomy", required=True, choices=["A0", "A1", "A2", "A3", "A4"],
                         help="the sending agent's autonomy level")
    explain.add_argument("--dir", type=Path, default=SHIPPED_POLICY_DIR, help="policy directory")
    explain.add_argument("--agent-owner", default=None, help="the agent's owner")
    explain.add_argument("--now", default=None, help="evaluate at this ISO 8601 time")
    explain.add_argument("--kill-switch", action="store_true", help="as if the switch were engaged")
    explain.add_argument("--json", action="store_true", help="print the Decision as JSON")
    explain.set_defaults(handler=_guarded(explain_command))


def _guarded(command: Handler) -> Handler:
    """Turn CommandError into its one-line message and exit code."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandError as exc:
            print(f"warden policy: {exc}", file=sys.stderr)
            return exc.code

    return handler


def compile_dir(directory: Path) -> PolicySet:
    """The compiled PolicySet of `directory`; compile errors are printed and exit 3."""
    from connectors.registry import catalog_tool_names
    from dsl import PolicyCompileError, compile_policy_dir

    if not directory.is_dir():
        raise CommandError(f"{directory}: no such policy directory", EXIT_USAGE)
    try:
        # the catalog's tool names let the linter warn about a policy naming no known tool
        return compile_policy_dir(directory, known_tools=catalog_tool_names())
    except PolicyCompileError as exc:
        _print_diagnostics(exc.diagnostics, stream=sys.stderr)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        raise CommandError(f"{directory}: {errors} error(s); the policies do not compile",
                           EXIT_COMPILE_ERROR) from None
    except OSError as exc:
        raise CommandError(f"{directory}: cannot read: {exc}", EXIT_USAGE) from None


def _print_diagnostics(diagnostics: Iterable[Diagnostic], *, stream: TextIO | None = None) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.render(), file=stream or sys.stdout)


def check_command(args: argparse.Namespace) -> int:
    policy_set = compile_dir(args.dir)
    _print_diagnostics(policy_set.warnings)
    print(f"{args.dir}: {len(policy_set.files)} file(s), {len(policy_set.policies)} "
          f"policies, 0 errors, {len(policy_set.warnings)} warning(s); {policy_set.digest}")
    return EXIT_OK


def test_command(args: argparse.Namespace) -> int:
    from gateway.engine.decider import Decider
    from gateway.engine.cases import CaseFileError, load_cases, run_case

    policy_set = compile_dir(args.dir)
    try:
        cases = load_cases(args.dir / "tests")
        pattern = re.compile(args.run) if args.run else None
    except CaseFileError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except re.error as exc:
        raise CommandError(f"--run: not a regular expression: {exc}", EXIT_USAGE) from None
    if pattern is not None:
        cases = [c for c in cases if pattern.search(c.name)]
    if not cases:
        raise CommandError(f"{args.dir / 'tests'}: no policy test cases found", EXIT_USAGE)
    engine = Decider(policy_set)
    results = [run_case(engine, case) for case in cases]
    for result in results:
        where = f"{result.case.file.name}: {result.case.name}"
        if result.passed:
            if args.verbose:
                print(f"{where}: PASS")
            continue
        print(f"{where}: FAIL")
        if result.case.about:
            print(f"    ({result.case.about})")
        for failure in result.failures:
            print(f"    {failure}")
    passed = sum(1 for r in results if r.passed)
    print("-" * 80)
    print(f"PASS: {passed}/{len(results)}")
    if passed != len(results):
        print(f"FAIL: {len(results) - passed}/{len(results)}")
        return EXIT_CHECK_FAILED
    return EXIT_OK


def explain_command(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.engine.agents import Agent
    from gateway.engine.decider import Decider
    from gateway.engine.models import Packet
    from gateway.engine.cases import first_error

    data = _read_json(args.packet)
    try:
        packet = Packet.model_validate(data)
        agent = Agent(name=packet.agent, autonomy=args.autonomy, owner=args.agent_owner)
    except ValidationError as exc:
        raise CommandError(f"{args.packet}: not a valid packet: {first_error(exc)}",
                           EXIT_USAGE) from None
    now = _parse_now(args.now)
    policy_set = compile_dir(args.dir)
    decision = Decider(policy_set).decide(packet, agent, now=now, kill_switch=args.kill_switch,
                                         dry_run=True)
    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        print(render_decision(decision, packet, policy_set))
    return EXIT_OK


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}", EXIT_USAGE) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                           f"{exc.msg}", EXIT_USAGE) from None
    except RecursionError:
        raise CommandError(f"{path}: JSON nested too deeply to be a packet", EXIT_USAGE) from None


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--now: not an ISO 8601 date-time: {text!r}", EXIT_USAGE) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_STATUS_WORDS = {
    "allowed": "allowed: would execute now (dry run)",
    "pending_approval": "pending_approval: waits for a person to approve",
    "denied": "denied: will not run, and no approval can change that",
    "drafted": "drafted: recorded for a person to carry out (autonomy A0 only drafts)",
}


def render_decision(decision: Decision, packet: Packet, policy_set: PolicySet) -> str:
    """The decision as a policy author reads it: outcome, risk vs autonomy, then every why."""
    tool = packet.action.tool
    base = [p.risk for p in policy_set.policies_for(tool) if p.enforced and p.risk is not None]
    base_text = f"base {max(base).name}" if base else "no base tier: unknown tool"
    lines = [
        f"decision   {_STATUS_WORDS.get(decision.status, decision.status)}",
        f"action     {tool} by agent {packet.agent!r} (packet {packet.packet_id})",
        f"risk       {decision.risk.name} ({base_text}) at autonomy {decision.autonomy.name}",
    ]
    enforced = [r for r in decision.reasons if r.enforced]
    shadow = [r for r in decision.reasons if not r.enforced]
    lines.append("reasons" if enforced else "reasons    none: no rule fired")
    lines += [f"  {r.effect:<14} {r.policy}.{r.rule}: {r.message}" for r in enforced]
    if decision.invariants:
        lines.append("invariants")
    for inv in decision.invariants:
        claim = f", agent claimed {inv.claimed}" if inv.claimed else ""
        mismatch = f" [MISMATCH {inv.mismatch}]" if inv.mismatch else ""
        error = f": {inv.error}" if inv.error else ""
        where = inv.policy if inv.enforced else f"{inv.policy}, shadow"
        lines.append(f"  {inv.verified:<5} {inv.id} ({where}{claim}){mismatch}{error}")
    if shadow:
        lines.append("shadow     (recorded, not enforced)")
        lines += [f"  {r.effect:<14} {r.policy}.{r.rule}: {r.message}" for r in shadow]
    if decision.approval is not None:
        a = decision.approval
        lines.append(f"approval   {a.count} x {a.required_role}, expires "
                     f"{a.expires_at.isoformat(timespec='seconds')}")
    else:
        lines.append("approval   not needed")
    if decision.flags:
        lines.append(f"flags      {', '.join(decision.flags)}")
    if decision.unknown_claims:
        lines.append(f"ignored    claims about invariants that do not apply: "
                     f"{', '.join(decision.unknown_claims)}")
    lines.append(f"policies   {decision.policy_digest}")
    return "\n".join(lines)
