"""The verdict of ``warden audit verify``: which numbered steps ran, passed or failed, and where.

Kept apart from the verifier so that the CLI, the HTTP API and tests can render or inspect a
report without knowing how it was produced. Its two exceptions::

    VerifyError (ValueError)        the inputs cannot be verified at all (an unusable key, a
                                    missing file): a usage error, never a verdict
    VerificationFailure (Exception) the first failed check inside the verifier: it becomes the
                                    report's verdict (step, message, seq, line, checkpoint)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STEPS", "Report", "StepResult", "VerificationFailure", "VerifyError"]

STEPS: dict[int, str] = {
    1: "every entry parses and is RFC 8785 canonical",
    2: "seq runs 0..n-1 without a gap",
    3: "every prev link matches the previous entry's leaf hash",
    4: "every checkpoint's signature (following key rotations) and root",
    5: "each checkpoint is consistent with the next",
    6: "the trusted checkpoint is consistent with the log",
    7: "every passkey-signed approval verifies under a passkey registered to its approver",
}


class VerifyError(ValueError):
    """The inputs cannot be verified at all (bad key, missing files): a usage error, not a verdict."""


class VerificationFailure(Exception):
    """Raised inside the verifier at the first failed check; becomes the report's verdict."""

    def __init__(
        self,
        step: int,
        message: str,
        *,
        seq: int | None = None,
        line: int | None = None,
        checkpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.seq = seq
        self.line = line
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class StepResult:
    """One numbered step: ``passed``, ``failed``, ``skipped``, or ``not reached`` (verification
    stops at the first failure, so the other steps were not carried to the end)."""

    number: int
    title: str
    status: str
    detail: str = ""


@dataclass
class Report:
    """Outcome of verifying a log. ``ok`` is the verdict; the rest says what was checked."""

    ok: bool
    entries: int
    checkpoints: int
    tree_size: int
    root: bytes
    steps: list[StepResult]
    failed_step: int | None = None
    failure: str | None = None
    seq: int | None = None
    line: int | None = None
    checkpoint: str | None = None
    keys: list[str] = field(default_factory=list)
    latest_checkpoint_size: int | None = None
    unsigned_tail: int = 0
    warnings: list[str] = field(default_factory=list)
    passkey_approvals: int = 0
    """How many approvals carried a passkey assertion that verified (step (7))."""

    def summary(self) -> str:
        """Human-readable, one line per step, then the verdict."""
        lines = [f"({s.number}) {s.title}: {s.status}" + (f" - {s.detail}" if s.detail else "")
                 for s in self.steps]
        lines.extend(f"warning: {w}" for w in self.warnings)
        if self.ok:
            lines.append(
                f"OK: {self.entries} entries, {self.checkpoints} checkpoints, tree head "
                f"{base64.b64encode(self.root).decode()} at size {self.tree_size}"
                + (f", {self.signed_approvals()}" if self.passkey_approvals else "")
            )
        else:
            where = self.location()
            at = f" at {where}" if where else ""
            lines.append(f"FAILED step ({self.failed_step}){at}: {self.failure}")
        return "\n".join(lines)

    def signed_approvals(self) -> str:
        """"3 passkey-signed approvals verified"."""
        plural = "" if self.passkey_approvals == 1 else "s"
        return f"{self.passkey_approvals} passkey-signed approval{plural} verified"

    def location(self) -> str:
        """Where the first failure is: "seq 41, line 42, checkpoint 64", or "" when unknown."""
        where = [f"seq {self.seq}" if self.seq is not None else "",
                 f"line {self.line}" if self.line is not None else "",
                 f"checkpoint {self.checkpoint}" if self.checkpoint is not None else ""]
        return ", ".join(part for part in where if part)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``warden audit verify --json``, the HTTP API)."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "tree_size": self.tree_size,
            "root": base64.b64encode(self.root).decode(),
            "failed_step": self.failed_step,
            "failure": self.failure,
            "seq": self.seq,
            "line": self.line,
            "checkpoint": self.checkpoint,
            "keys": list(self.keys),
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "unsigned_tail": self.unsigned_tail,
            "warnings": list(self.warnings),
            "passkey_approvals": self.passkey_approvals,
            "steps": [
                {"number": s.number, "title": s.title, "status": s.status, "detail": s.detail}
                for s in self.steps
            ],
        }
