"""The analysis as a report: `run` asks the questions, `render_text`/`as_json` show them.

Every counter-example is printed as the packet JSON and the autonomy to give `warden policy
explain`, which shows the same decision (a dry run says `allowed` where a real run executes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.model import PolicySet
from gateway.analysis.assertions import Assertion, AssertionResult, analysis_for, check
from gateway.analysis.questions import (
    QUESTIONS, TITLES, Answer, UnsupportedRule, Witness)


@dataclass
class Report:
    directory: Path
    policy_set: PolicySet
    tools: int
    answers: list[Answer]
    assertions: list[AssertionResult] | None  # None: not asked
    unsupported: list[UnsupportedRule]
    seconds: float
    solver_calls: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.holds for a in self.answers) and all(
            r.passed for r in self.assertions or ())


def run(directory: Path, policy_set: PolicySet, assertions: Sequence[Assertion] | None,
        questions: Sequence[str] = QUESTIONS) -> Report:
    """Ask `questions` (and check `assertions`, when given) of `policy_set`."""
    started = time.perf_counter()
    analysis = analysis_for(policy_set, assertions or ())
    answers = [analysis.answer(q) for q in questions if q in QUESTIONS]
    results = None if assertions is None else check(analysis, assertions)
    return Report(directory, policy_set, len(analysis.tools), answers, results,
                  analysis.unsupported(), time.perf_counter() - started,
                  analysis.searcher.solver_calls)


# ------------------------------------------------------------------------------ text


def explain_status(status: str) -> str:
    """The status as `warden policy explain` (a dry run) shows it."""
    return "allowed" if status == "executed" else status


def explain_command(witness: Witness, directory: Path, packet: str = "packet.json") -> str:
    """The `warden policy explain` command that shows the witness's decision."""
    return (f"warden policy explain {packet} --autonomy {witness.example.autonomy.name} "
            f"--dir {directory}")


def _witness_lines(witness: Witness, directory: Path, indent: str = "      ") -> list[str]:
    example, decision = witness.example, witness.decision
    what = f" ({witness.role})" if witness.role else ""
    packet = json.dumps(example.packet, separators=(", ", ": "))
    return [
        f"{indent}packet{what}, autonomy {example.autonomy.name}: {packet}",
        f"{indent}  engine: {explain_status(decision.status)}, risk {decision.risk.name}"
        + (f", reasons {', '.join(f'{r.policy}.{r.rule}' for r in decision.reasons if r.enforced)}"
           if decision.reasons else ""),
        f"{indent}  reproduce: save the packet as packet.json; {explain_command(witness, directory)}",
        *([f"{indent}  with OPA answering {json.dumps(dict(example.opa), separators=(', ', ': '))} "
           "(explain asks the OPA server given with --opa; a policy test case can give these answers "
           "as `opa = {...}`)"] if example.opa else []),
    ]


_PROVED = {
    "l3-founder": "proved for {n} tool(s)",
    "a1-approval": "proved for {n} tool(s)",
    "dead-rules": "{n} rule(s) proved live",
    "gaps": "{n} tool(s) proved without a hole",
    "conflicts": "{n} pair(s) of policies proved never to disagree",
}


def render_text(report: Report) -> str:
    ps = report.policy_set
    lines = [f"{report.directory}: {len(ps.files)} file(s), {len(ps.policies)} policies, "
             f"{report.tools} tools; {ps.digest}", ""]
    for answer in report.answers:
        failing = [f for f in answer.findings if f.fails]
        mark = "FAILS" if failing else ("notes" if answer.findings else "holds")
        lines.append(f"[{mark}] {answer.question}: {answer.title}")
        proved = _PROVED[answer.question].format(n=len(answer.proved))
        lines.append(f"        {proved}; {len(failing)} finding(s)"
                     + (f", {len(answer.findings) - len(failing)} note(s)"
                        if len(answer.findings) > len(failing) else "")
                     + (f", {len(answer.inconclusive)} inconclusive" if answer.inconclusive else ""))
        for finding in answer.findings:
            lines.append(f"  {'finding' if finding.fails else 'note':<8}{finding.subject}: "
                         f"{finding.message}")
            for witness in finding.witnesses:
                lines += _witness_lines(witness, report.directory)
        lines += [f"  ?       {note}" for note in answer.inconclusive]
        lines.append("")
    if report.assertions == []:
        lines += [f"[holds] assertions: none ({report.directory}/assertions.toml holds none)", ""]
    elif report.assertions is not None:
        passed = sum(1 for r in report.assertions if r.passed)
        mark = "holds" if passed == len(report.assertions) else "FAILS"
        lines.append(f"[{mark}] assertions: {passed}/{len(report.assertions)} proved")
        for result in report.assertions:
            a = result.assertion
            lines.append(f"  {result.outcome:<13}{a.name} ({', '.join(a.tool)}; {a.where})")
            if result.broken:
                lines.append(f"      broken: {result.broken}")
            if result.note:
                lines.append(f"      {result.note}")
            for witness in result.witnesses:
                lines += _witness_lines(witness, report.directory)
        lines.append("")
    if report.unsupported:
        lines.append("unsupported (left free: any outcome, so proofs still hold; not fatal)")
        lines += [f"  {u.label} ({', '.join(u.tools)}): {u.reason}" for u in report.unsupported]
        lines.append("")
    checked = "" if report.assertions is None else ", every assertion is proved"
    lines.append((f"ok: every question asked holds{checked}" if report.ok
                  else "FAILED: see the findings above")
                 + f" ({report.seconds:.2f} s, {report.solver_calls} solver calls)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ JSON


def _witness_json(witness: Witness, directory: Path) -> dict[str, Any]:
    decision = witness.decision
    return {
        "role": witness.role or None,
        "autonomy": witness.example.autonomy.name,
        "packet": witness.example.packet,
        "status": explain_status(decision.status),
        "risk": decision.risk.name,
        "reasons": [f"{r.policy}.{r.rule}" for r in decision.reasons if r.enforced],
        "explain": explain_command(witness, directory, "PACKET.json"),
        "opa": dict(witness.example.opa) or None,
    }


def as_json(report: Report) -> dict[str, Any]:
    ps = report.policy_set
    return {
        "directory": str(report.directory),
        "policy_digest": ps.digest,
        "tools": report.tools,
        "ok": report.ok,
        "seconds": round(report.seconds, 3),
        "questions": [{
            "name": a.question, "title": TITLES[a.question], "holds": a.holds,
            "proved": a.proved, "inconclusive": a.inconclusive,
            "findings": [{"subject": f.subject, "message": f.message, "fails": f.fails,
                          "witnesses": [_witness_json(w, report.directory)
                                        for w in f.witnesses]}
                         for f in a.findings],
        } for a in report.answers],
        "assertions": None if report.assertions is None else [{
            "name": r.assertion.name, "tool": list(r.assertion.tool), "where": r.assertion.where,
            "outcome": r.outcome, "tools": list(r.tools), "note": r.note, "broken": r.broken,
            "witnesses": [_witness_json(w, report.directory) for w in r.witnesses],
        } for r in report.assertions],
        "unsupported": [{"rule": u.label, "reason": u.reason, "tools": list(u.tools)}
                        for u in report.unsupported],
    }
