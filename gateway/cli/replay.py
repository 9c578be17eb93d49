"""The policy author's history commands: replay, and the policy sets kept by digest.

    warden replay DECISION_ID [--json]             decide a recorded decision again; say what differs
    warden replay --all [--from SEQ] [--since 30d] every recorded decision; exit 1 on any difference
    warden policy show DIGEST                      print a kept policy set (a unique prefix will do)
    warden policy show --list                      every kept set, oldest first
    warden policy diff A B                         compare two sets (digests, or policy folders)
    warden policy impact CANDIDATE_DIR [--since 30d | --from SEQ] [--json] [--threshold N|P%]

Each reads the database (`--db URL`, else the database_url setting) or, with `--export DIR`, an
audit export, offline. `impact` exits 0 when no more decisions changed (or could not be decided
under the candidate) than the threshold (0 by default), 1 when more did, 3 when the candidate does not compile; `replay` exits 1 when a decision
is not identical (a determinism bug) and 0 otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option, add_db_option

if TYPE_CHECKING:
    from gateway.replay.history import History, Window
    from gateway.replay.replay import Replayed


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_config_option(parser)
    parser.add_argument("--export", type=Path, metavar="DIR",
                        help="read an audit export (`warden audit export`) instead of the database")


def _add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_seq", type=int, default=0, metavar="SEQ",
                        help="only decisions at or after this audit seq")
    parser.add_argument("--since", metavar="AGE|TIME",
                        help="only decisions of the last AGE (30d, 12h, 45m) or since an ISO 8601 time")


def register(subparsers: Any) -> None:
    """Add `warden replay`."""
    replay = subparsers.add_parser(
        "replay", help="decide recorded decisions again and show what differs",
        description="Decide a recorded packet again, under the policy set, time, autonomy and "
                    "kill switch it was decided with, and show that the result is identical or "
                    "exactly what differs (a difference is a determinism bug).")
    replay.add_argument("decision_id", nargs="?", metavar="DECISION_ID")
    replay.add_argument("--all", action="store_true", help="every recorded decision (in the window)")
    _add_window_options(replay)
    replay.add_argument("--json", action="store_true", help="JSON output")
    _add_source_options(replay)
    replay.set_defaults(handler=replay_command)


def register_policy_commands(commands: Any) -> None:
    """Add `warden policy show | diff | impact`."""
    show = commands.add_parser("show", help="print a policy set kept by its digest")
    show.add_argument("digest", nargs="?", metavar="DIGEST", help="sha256:... (a unique prefix will do)")
    show.add_argument("--list", action="store_true", help="list every kept set instead")
    _add_source_options(show)
    show.set_defaults(handler=show_command)

    diff = commands.add_parser("diff", help="compare two policy sets (digests or folders)")
    diff.add_argument("a", metavar="A", help="a digest (or prefix) or a policy folder")
    diff.add_argument("b", metavar="B", help="a digest (or prefix) or a policy folder")
    _add_source_options(diff)
    diff.set_defaults(handler=diff_command)

    impact = commands.add_parser(
        "impact", help="what a candidate policy set would have decided for recorded history",
        description="Replay every recorded decision in the window under the policies in "
                    "CANDIDATE_DIR and report what would change. Exit 0: no more changed "
                    "decisions than --threshold; 1: more; 3: the candidate does not compile.")
    impact.add_argument("candidate", type=Path, metavar="CANDIDATE_DIR")
    _add_window_options(impact)
    impact.add_argument("--json", action="store_true", help="the stable JSON report")
    impact.add_argument("--threshold", default="0", metavar="N|P%",
                        help="changed decisions tolerated before exiting 1: a count, or a percentage "
                             "of the decisions replayed (default 0)")
    impact.add_argument("--examples", type=int, default=3, metavar="N", help="examples per transition")
    _add_source_options(impact)
    impact.set_defaults(handler=impact_command)


# ------------------------------------------------------------------ sources


@contextmanager
def history(args: argparse.Namespace) -> Iterator[History]:
    from gateway.replay.history import DatabaseHistory, ExportHistory

    if args.export is not None:
        if args.db is not None:
            raise CommandError("give --export DIR or --db URL, not both")
        yield ExportHistory(args.export)
        return
    from gateway.cli.db import open_database

    with open_database(args, create=False) as engine:
        yield DatabaseHistory(engine)


_AGE = re.compile(r"^([0-9]{1,6})([dhms])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def window(args: argparse.Namespace, now: datetime | None = None) -> Window:
    from gateway.replay.history import Window

    if args.from_seq < 0:
        raise CommandError("--from must be a seq, 0 or more")
    since = None
    if args.since:
        found = _AGE.match(args.since)
        if found:
            since = (now or datetime.now(UTC)) - timedelta(**{_UNITS[found[2]]: int(found[1])})
        else:
            try:
                since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
            except ValueError:
                raise CommandError(f"--since {args.since!r}: give an age (30d, 12h, 45m, 90s) "
                                   "or an ISO 8601 time") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
    return Window(from_seq=args.from_seq, since=since)


def resolve_digest(source: History, given: str) -> str:
    """A full digest from a unique prefix (with or without `sha256:`)."""
    wanted = given if given.startswith("sha256:") else "sha256:" + given
    if not re.fullmatch(r"sha256:[0-9a-f]{4,64}", wanted):
        raise CommandError(f"{given!r} is not a policy digest (sha256: and at least 4 hex digits)")
    if len(wanted) == len("sha256:") + 64:
        return wanted
    matches = [d for d, _ in source.policy_digests() if d.startswith(wanted)]
    if len(matches) != 1:
        raise CommandError(f"{given!r} matches {'no' if not matches else len(matches)} kept policy sets")
    return matches[0]


def _files(source: History, given: str) -> tuple[str, dict[str, str]]:
    """(label, files) of a digest kept in the history, or of a policy folder."""
    folder = Path(given)
    if folder.is_dir():
        from dsl.compiler import read_policy_dir

        return str(folder), {p: b.decode("utf-8", errors="replace") for p, b in read_policy_dir(folder).items()}
    digest = resolve_digest(source, given)
    files = source.policy_files(digest)
    if files is None:
        raise CommandError(f"policy set {digest} is not kept here")
    return digest, files


# ------------------------------------------------------------------ commands


def show_command(args: argparse.Namespace) -> int:
    with history(args) as source:
        if args.list:
            for digest, at in source.policy_digests():
                print(f"{digest}  first activated {at}")
            return EXIT_OK
        if not args.digest:
            raise CommandError("give a DIGEST, or --list")
        digest, files = _files(source, args.digest)
    print(f"# policy set {digest}: {len(files)} file(s)")
    for path, text in files.items():
        print(f"\n# ---- {path}")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def diff_command(args: argparse.Namespace) -> int:
    with history(args) as source:
        label_a, a = _files(source, args.a)
        label_b, b = _files(source, args.b)
    changed = 0
    for path in sorted(set(a) | set(b)):
        lines = list(difflib.unified_diff(
            a.get(path, "").splitlines(keepends=True), b.get(path, "").splitlines(keepends=True),
            fromfile=f"{label_a}/{path}" if path in a else "/dev/null",
            tofile=f"{label_b}/{path}" if path in b else "/dev/null"))
        if lines:
            changed += 1
            sys.stdout.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
    print(f"{changed} file(s) differ" if changed else "the two sets have the same files")
    return EXIT_OK


def replay_command(args: argparse.Namespace) -> int:
    from gateway.replay.replay import Replayer

    if bool(args.decision_id) == bool(args.all):
        raise CommandError("give a DECISION_ID, or --all")
    with history(args) as source:
        replayer = Replayer(source)
        if args.decision_id:
            result = replayer.replay(source.decision(args.decision_id))
            print(json.dumps(result.to_json(), indent=2) if args.json else describe(result))
            return EXIT_OK if result.verdict != "different" else EXIT_CHECK_FAILED
        return _replay_all(replayer, source, window(args), as_json=args.json)


def _replay_all(replayer: Any, source: History, span: Window, *, as_json: bool) -> int:
    counts = {"identical": 0, "different": 0, "not_replayable": 0}
    reconstructed = redecisions = 0
    for recorded in source.decisions(span, redecisions=True):
        result = replayer.replay(recorded)
        counts[result.verdict] += 1
        reconstructed += result.reconstructed
        redecisions += recorded.kind == "reevaluation"
        if result.verdict != "identical":
            print(json.dumps(result.to_json(), sort_keys=True) if as_json else describe(result))
    total = sum(counts.values())
    summary = {"replayed": total, **counts, "inputs_reconstructed": reconstructed, "redecisions": redecisions}
    if as_json:
        print(json.dumps({"summary": summary}, sort_keys=True))
    else:
        print(f"{total} decision(s) replayed ({redecisions} of them re-decisions at the last approval): "
              f"{counts['identical']} identical, {counts['different']} different, "
              f"{counts['not_replayable']} not replayable"
              + (f" ({reconstructed} with inputs reconstructed)" if reconstructed else ""))
    # a decision made under inputs reconstructed from an old entry is not proof of a bug
    return EXIT_CHECK_FAILED if counts["different"] > 0 else EXIT_OK


def describe(result: Replayed) -> str:
    """A replay's result in words."""
    what = " (the re-decision at its last approval)" if result.recorded.kind == "reevaluation" else ""
    head = f"{result.recorded.decision_id}{what} (seq {result.recorded.seq}, {result.policy_digest})"
    lines = []
    if result.problem is not None:
        lines.append(f"{head}: not replayable: {result.problem}")
    elif not result.differences:
        lines.append(f"{head}: identical ({result.recorded.decision.get('status')}, "
                     f"{result.recorded.decision.get('risk')})")
    else:
        lines.append(f"{head}: DIFFERENT in {', '.join(d.field for d in result.differences)}")
        for d in result.differences:
            lines.append(f"  {d.field}:\n    recorded: {json.dumps(d.recorded)}\n    replayed: {json.dumps(d.replayed)}")
    if result.reconstructed:
        lines.append("  (inputs reconstructed: the entry predates recorded inputs)")
    lines.extend(f"  note: {note}" for note in result.notes)
    return "\n".join(lines)


def _threshold(text: str) -> tuple[float, bool]:
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise CommandError(f"--threshold {text!r}: give a count (5) or a percentage (0.5%)") from None
    if value < 0 or value != value:
        raise CommandError(f"--threshold {text!r} must be 0 or more")
    return value, percent


def impact_command(args: argparse.Namespace) -> int:
    from gateway.cli.compiling import compile_dir
    from gateway.replay import impact as impact_module
    from gateway.replay.replay import Sets

    threshold, percent = _threshold(args.threshold)
    if args.examples < 0:
        raise CommandError("--examples must be 0 or more")
    candidate = compile_dir(args.candidate)
    span = window(args)
    with history(args) as source:
        result = impact_module.analyse(source, candidate, span, sets=Sets(source), examples=args.examples)
    report = result.report(window=span)
    exceeded = result.exceeds(threshold, percent=percent)
    report["threshold"] = {"value": threshold, "unit": "percent" if percent else "decisions",
                           "counted": result.counted, "exceeded": exceeded}
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render_impact(report))
    return EXIT_CHECK_FAILED if exceeded else EXIT_OK


def render_impact(report: dict[str, Any]) -> str:
    counts = report["decisions"]
    out = [f"candidate {report['candidate']['digest']}",
           f"{counts['replayed']} decision(s) replayed: {counts['changed']} changed, "
           f"{counts['unchanged']} unchanged, {counts['not_replayable']} not replayable"]
    for problem in report["not_replayable"]:
        out.append(f"  not replayable ({problem['decisions']}): {problem['reason']}")
    if report["transitions"]:
        out.append("\ntransitions")
    for t in report["transitions"]:
        tools = ", ".join(f"{k} {v}" for k, v in t["by_tool"].items())
        agents = ", ".join(f"{k} {v}" for k, v in t["by_agent"].items())
        out.append(f"  {t['from']} -> {t['to']}: {t['count']}  (tools: {tools}; agents: {agents})")
        for ex in t["examples"]:
            out.append(f"    e.g. {ex['decision_id']} (seq {ex['seq']}, {ex['tool']}, {ex['agent']})")
            out.append(f"      before: {ex['before']['status']} {ex['before']['risk']}: "
                       f"{'; '.join(ex['before']['reasons']) or 'no reasons'}")
            out.append(f"      after:  {ex['after']['status']} {ex['after']['risk']}: "
                       f"{'; '.join(ex['after']['reasons']) or 'no reasons'}")
    for r in report["risk_changes"]:
        out.append(f"risk {r['from']} -> {r['to']}: {r['count']}")
    for direction in ("newly_blocked", "newly_allowed"):
        for m in report["money"][direction]:
            out.append(f"{direction.replace('_', ' ')}: {m['amount']} {m['currency']} (minor units) "
                       f"in {m['decisions']} {m['tool']} decision(s)")
        for tool, n in report["objects"][direction].items():
            out.append(f"{direction.replace('_', ' ')}: {n} object(s) of {tool}")
    if report["rules"]:
        out.append("\nrules firing more or less often")
    for r in report["rules"]:
        out.append(f"  {r['policy']}.{r['rule']}: {r['before']} -> {r['after']} ({r['delta']:+d})")
    for s in report["shadow_enforced"]:
        out.append(f"shadow policy {s['policy']} would enforce: it acts in {s['decisions']} decision(s)")
    threshold = report["threshold"]
    unit = "%" if threshold["unit"] == "percent" else " decision(s)"
    out.append(f"\n{threshold['counted']} decision(s) changed or not replayable: "
               f"{'OVER' if threshold['exceeded'] else 'within'} the threshold of {threshold['value']:g}{unit}")
    return "\n".join(out)
