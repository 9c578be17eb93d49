"""`warden policy check | test | explain | show | diff | impact`: the policy author's loop.

    check [DIR]                 compile every policy file; errors as file:line:col with a caret
    test [DIR] [-v] [-r RE]     run DIR/tests/*.toml like `opa test`, and prove DIR/assertions.toml:
                                PASS: N/M, exit 1 on failure
    analyze [DIR] [--json] [--question NAME]
                                prove properties of the policies (gateway.cli.analyze)
    explain PACKET.json --autonomy A2 [--json] [--dir DIR] [--agent-owner WHO] [--now T]
            [--opa URL [--opa-timeout S]]
                                the decision a packet would get, and every reason why (dry run)
    show | diff | impact        the policy sets kept by digest, and what a candidate would have
                                decided for recorded history (`gateway.cli.replay`)

DIR defaults to the policy_dir setting (`--config FILE`, $WARDEN_CONFIG, ./warden.toml,
$WARDEN_POLICY_DIR): the policies `warden serve` loads, which are the ones shipped with Warden
unless configured. Exit codes (gateway.cli.exits): 0 ok, 1 a policy test failed, 2 unreadable
input (missing file, bad JSON, invalid packet or test file), 3 the policies do not compile
(every error as file:line:col, by `gateway.cli.guard`). Bad input is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli import analyze
from gateway.cli.compiling import DIR_HELP, compile_dir, policy_dir
from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option

if TYPE_CHECKING:  # the compiler and the engine load the CEL engine: only when a command runs
    from dsl.model import Diagnostic, PolicySet
    from gateway.engine.models import Decision, Packet



def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `warden policy ...` to the `warden` command."""
    policy = subparsers.add_parser("policy", help="check, test and explain policies",
                                   description=__doc__.split("\n\n")[0])
    commands = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    commands.required = True

    check = commands.add_parser("check", help="compile the policies; errors as file:line:col")
    check.add_argument("dir", nargs="?", type=Path, metavar="DIR", help=DIR_HELP)
    add_config_option(check)
    check.set_defaults(handler=check_command)

    test = commands.add_parser("test", help="run the policy tests in DIR/tests")
    test.add_argument("dir", nargs="?", type=Path, metavar="DIR", help=DIR_HELP)
    test.add_argument("-v", "--verbose", action="store_true", help="list every case")
    test.add_argument("-r", "--run", metavar="REGEX", help="only cases whose name matches")
    add_config_option(test)
    test.set_defaults(handler=test_command)

    explain = commands.add_parser("explain", help="the decision a packet would get, and why")
    explain.add_argument("packet", type=Path, metavar="PACKET.json")
    explain.add_argument("--autonomy", required=True, choices=["A0", "A1", "A2", "A3", "A4"],
                         help="the sending agent's autonomy level")
    explain.add_argument("--dir", type=Path, help=DIR_HELP)
    explain.add_argument("--agent-owner", default=None, help="the agent's owner")
    explain.add_argument("--now", default=None, help="evaluate at this ISO 8601 time")
    explain.add_argument("--kill-switch", action="store_true", help="as if the switch were engaged")
    explain.add_argument("--json", action="store_true", help="print the Decision as JSON")
    explain.add_argument("--opa", metavar="URL", default="",
                         help="ask this OPA server for the policies' `opa` statements (without it they deny)")
    explain.add_argument("--opa-timeout", metavar="S", type=float, default=2.0,
                         help="time budget of one OPA query (default 2 s)")
    add_config_option(explain)
    explain.set_defaults(handler=explain_command)

    analyze.register(commands)

    from gateway.cli.replay import register_policy_commands

    register_policy_commands(commands)


def _print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.render())


def check_command(args: argparse.Namespace) -> int:
    directory = policy_dir(args)
    policy_set = compile_dir(directory)
    _print_diagnostics(policy_set.warnings)
    print(f"{directory}: {len(policy_set.files)} file(s), {len(policy_set.policies)} "
          f"policies, 0 errors, {len(policy_set.warnings)} warning(s); {policy_set.digest}")
    return EXIT_OK


def test_command(args: argparse.Namespace) -> int:
    from gateway.engine.cases import load_cases, run_case
    from gateway.engine.decider import Decider

    directory = policy_dir(args)
    policy_set = compile_dir(directory)
    cases = load_cases(directory / "tests")  # a malformed case file: CaseFileError, exit 2
    try:
        pattern = re.compile(args.run) if args.run else None
    except re.error as exc:
        raise CommandError(f"--run: not a regular expression: {exc}") from None
    if pattern is not None:
        cases = [c for c in cases if pattern.search(c.name)]
    if not cases:
        raise CommandError(f"{directory / 'tests'}: no policy test cases found")
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
    proved, asserted = analyze.test_assertions(directory, policy_set, args.verbose, pattern)
    passed = sum(1 for r in results if r.passed) + proved
    total = len(results) + asserted
    print("-" * 80)
    print(f"PASS: {passed}/{total}" + (f" ({asserted} assertion(s))" if asserted else ""))
    if passed != total:
        print(f"FAIL: {total - passed}/{total}")
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
        raise CommandError(f"{args.packet}: not a valid packet: {first_error(exc)}") from None
    now = _parse_now(args.now)
    policy_set = compile_dir(policy_dir(args))
    engine = Decider(policy_set)
    decision = engine.decide(packet, agent, now=now, kill_switch=args.kill_switch, dry_run=True,
                             delegated=_ask_opa(args, engine, packet, agent))
    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        print(render_decision(decision, packet, policy_set))
    return EXIT_OK


def _ask_opa(args: argparse.Namespace, engine: Any, packet: Any, agent: Any) -> dict[str, Any]:
    """OPA's answers for the packet's `opa` statements: from `--opa URL`, or none (they deny)."""
    delegations = engine.delegations_for(packet.action.tool)
    if not delegations:
        return {}
    from gateway.delegation.opa import OpaDelegate

    try:
        delegate = OpaDelegate(args.opa, timeout=args.opa_timeout)
    except ValueError as exc:
        raise CommandError(f"--opa: {exc}") from None
    try:
        return delegate.ask(delegations, packet, agent)
    finally:
        delegate.close()


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                           f"{exc.msg}") from None
    except RecursionError:
        raise CommandError(f"{path}: JSON nested too deeply to be a packet") from None


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--now: not an ISO 8601 date-time: {text!r}") from None
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
