"""`warden audit verify`: run the offline verifier on an export or a live database, and show it.

The checks themselves live in `ledger.verify` (numbered steps, first failure wins); this module
gathers the inputs (key string or key file, trusted checkpoint file, export folder or one
read-only snapshot of the database, plus step (8) for a database: its head row matches the
verified entries), reports progress on stderr for large logs, and prints the
numbered steps with ✓/✗, the first bad entry and the failed step. Exit 0 when the log verifies,
1 when it does not; a log that cannot be checked at all (unreadable key, folder or database)
raises, and `gateway.cli.guard` makes that exit 2.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.cli.guard import CommandError
from ledger.database import describe, make_engine, read_only
from ledger.keys import read_verifier_key
from ledger.report import STEPS, Report, StepResult
from ledger.store import Head, Ledger
from ledger.verify import VerifyError, verify_export, verify_log

HEAD_STEP = max(STEPS) + 1  # (8): after the verifier's own steps; only for a live database
MARKS = {"passed": "✓", "failed": "✗", "skipped": "–", "not reached": "·"}
ASCII_MARKS = {"passed": "ok", "failed": "FAIL", "skipped": "-", "not reached": "."}


class ProgressPrinter:
    """Prints "verified N entries" to stderr at most once a second, and only once the log has
    taken more than a second: small logs stay quiet, big ones show they are moving."""

    def __init__(self, stream: TextIO = sys.stderr, total: int | None = None, every: float = 1.0) -> None:
        self._stream = stream
        self._total = total
        self._every = every
        self._start = time.monotonic()
        self._last = self._start
        self._shown = False

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        of = f" of {self._total:,}" if self._total else ""
        self._stream.write(f"verified {done:,}{of} entries ({rate:,.0f}/s)\n")
        self._stream.flush()
        self._shown = True


def run_verification(directory: Path | None, db_url: str | None, key_arg: str, trusted: Path | None) -> int:
    """Verify and print; returns the exit code. Inputs that cannot be checked at all raise
    (`CommandError`, `VerifyError`, the key's and the database's errors)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")  # entry text in messages: never crash on it
    key = str(read_verifier_key(key_arg))
    trusted_text = _read_trusted(trusted) if trusted is not None else None
    if directory is not None:
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder")
        source = f"export {directory}"
        report = verify_export(directory, key, trusted_text, ProgressPrinter())
    else:
        source, report = _verify_database(db_url or "", key, trusted_text)
    print(render(report, source, key))
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _read_trusted(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise VerifyError(f"trusted checkpoint file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VerifyError(f"cannot read trusted checkpoint file {path}") from exc


def _verify_database(url: str, key: str, trusted: str | None) -> tuple[str, Report]:
    """Verify one consistent snapshot of the live log, streaming its entries."""
    engine = make_engine(url, create=False)
    ledger = Ledger()
    try:
        with engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                head = ledger.head(conn)
                notes = [note for _size, note in ledger.checkpoint_notes(conn)]
                # All rows, not only those below the head: a row inserted behind the head's back
                # must show up as an unsigned tail or a broken sequence, not be skipped.
                report = verify_log(ledger.iter_entries(conn), notes, key, trusted, ProgressPrinter(total=head.size))
    finally:
        engine.dispose()
    return f"database {describe(engine)}", _check_head(report, head)


def _check_head(report: Report, head: Head) -> Report:
    """(8) The database's own head (what the next append chains to and what new checkpoints
    sign) must be the tree of the entries just verified."""
    title = "the database head matches the verified entries"
    if not report.ok:
        return replace(report, steps=[*report.steps, StepResult(HEAD_STEP, title, "not reached")])
    if head.size != report.tree_size or head.root != report.root:
        detail = f"head says {head.size} entries with another tree head; the entries give {report.tree_size}"
        return replace(
            report,
            ok=False,
            failed_step=HEAD_STEP,
            failure=detail,
            steps=[*report.steps, StepResult(HEAD_STEP, title, "failed", detail)],
        )
    return replace(report, steps=[*report.steps, StepResult(HEAD_STEP, title, "passed")])


def _marks() -> dict[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗–·—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return MARKS


def render(report: Report, source: str, key: str) -> str:
    """The numbered steps with ✓/✗, warnings, then the verdict."""
    marks = _marks()
    dash = "—" if marks is MARKS else "-"
    lines = [f"Verifying {source} with key {'+'.join(key.split('+')[:2])}"]
    for step in report.steps:
        detail = f" {dash} {step.detail}" if step.detail else ""
        lines.append(f"  ({step.number}) {marks.get(step.status, '?')} {step.title}{detail}")
    lines.extend(f"  warning: {warning}" for warning in report.warnings)
    if report.ok:
        lines.append(
            f"OK: {report.entries:,} entries, {report.checkpoints} checkpoints, "
            f"{len(report.keys) or 1} key(s); verified tree size {report.tree_size:,}"
            + (f"; {report.signed_approvals()}" if report.passkey_approvals else "")
        )
    else:
        at = report.location()
        lines.append(f"FAILED at step ({report.failed_step}){f' {dash} ' + at if at else ''}: {report.failure}")
    return "\n".join(lines)
