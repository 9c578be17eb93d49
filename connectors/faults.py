"""Fault injection for sandbox connectors: make the next calls of a tool fail, on purpose.

Programmatic::

    faults = SandboxFaults()
    faults.fail_next("stripe.refund", times=2, kind="transient", retry_after=1.5)
    faults.fail_next("shopify.*", kind="timeout")          # globs match tool names
    faults.fail_next("crm.log_note", times=None, kind="permanent")   # every call, until cleared

From a string (`WARDEN_SANDBOX_FAULTS`, handed to `build_registry(faults=...)`)::

    spec     := rule ("," rule)*                  (an empty spec injects nothing)
    rule     := PATTERN "=" KIND ["*" COUNT] ["@" RETRY_AFTER]
    PATTERN  := a tool name or a glob: stripe.refund, shopify.*, *
    KIND     := transient | permanent | timeout
    COUNT    := a positive integer (default 1) or "always"
    RETRY_AFTER := seconds, e.g. 1 or 0.5 (transient only: the API's Retry-After)

    "stripe.refund=transient*2,crm.log_note=permanent,shopify.*=timeout*1"

What a fault raises (always before the call is recorded: a failed call executed nothing):

    transient  TransientError(code="sandbox_unavailable", retry_after=RETRY_AFTER)
    permanent  PermanentError(code="sandbox_rejected")
    timeout    TransientError(code="timeout")

Each is raised after the connector's latency, as an answer would arrive (see connectors.sandbox).

Rules are tried in the order given; the first matching rule with calls left fires. Counts live
in the process: two gateway processes given the same spec each inject their own.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass
from typing import Literal, get_args

from connectors.base import ConnectorConfigError, ConnectorError, PermanentError, TransientError

FaultKind = Literal["transient", "permanent", "timeout"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

_RULE = re.compile(
    r"^(?P<pattern>[A-Za-z0-9_.*?\[\]-]+)=(?P<kind>[a-z]+)"
    r"(?:\*(?P<count>[0-9]+|always))?(?:@(?P<retry>[0-9]+(?:\.[0-9]+)?))?$"
)
GRAMMAR = "PATTERN=KIND[*COUNT][@RETRY_AFTER], comma-separated; KIND is transient, permanent " \
          "or timeout; COUNT a positive integer or 'always'"


class FaultSpecError(ConnectorConfigError):
    """A fault spec string that does not follow the grammar."""


@dataclass
class _Rule:
    pattern: str
    kind: FaultKind
    remaining: int | None  # None: every call
    retry_after: float | None


class SandboxFaults:
    """A thread-safe list of fault rules shared by the sandbox connectors of one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._fired: list[tuple[str, str]] = []  # (tool, kind) in firing order

    @classmethod
    def parse(cls, spec: str) -> SandboxFaults:
        """Faults from a spec string (grammar in the module docstring); FaultSpecError if bad."""
        faults = cls()
        for position, text in enumerate(spec.split(","), start=1):
            text = text.strip()
            if not text:
                if spec.strip():
                    raise FaultSpecError(f"sandbox faults: rule {position} is empty in {spec!r}; "
                                         f"expected {GRAMMAR}")
                continue
            match = _RULE.fullmatch(text.replace(" ", ""))
            if match is None:
                raise FaultSpecError(f"sandbox faults: rule {position} {text!r} is not "
                                     f"{GRAMMAR} (e.g. 'stripe.refund=transient*2')")
            kind = match["kind"]
            if kind not in FAULT_KINDS:
                raise FaultSpecError(f"sandbox faults: rule {position} {text!r}: unknown kind "
                                     f"{kind!r}; expected one of {', '.join(FAULT_KINDS)}")
            count = match["count"]
            times = None if count == "always" else int(count or 1)
            if times == 0:
                raise FaultSpecError(f"sandbox faults: rule {position} {text!r}: the count must "
                                     "be at least 1 (or 'always')")
            retry = float(match["retry"]) if match["retry"] is not None else None
            if retry is not None and kind != "transient":
                raise FaultSpecError(f"sandbox faults: rule {position} {text!r}: @RETRY_AFTER "
                                     "applies to transient faults only")
            faults.fail_next(match["pattern"], times=times, kind=kind,  # type: ignore[arg-type]
                             retry_after=retry)
        return faults

    def fail_next(self, pattern: str, *, times: int | None = 1, kind: FaultKind = "transient",
                  retry_after: float | None = None) -> None:
        """Make the next `times` calls of the tools matching `pattern` fail (None: every call)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every call)")
        with self._lock:
            self._rules.append(_Rule(pattern, kind, times, retry_after))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, tool: str) -> _Rule | None:
        """The rule that fires for this call of `tool` (its count spent), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining != 0 and fnmatch.fnmatchcase(tool, rule.pattern):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self._fired.append((tool, rule.kind))
                    return rule
        return None

    def fired(self, tool: str | None = None) -> list[tuple[str, str]]:
        """The faults injected so far, as (tool, kind), optionally for one tool."""
        with self._lock:
            return [f for f in self._fired if tool is None or f[0] == tool]

    @property
    def pending(self) -> bool:
        """Whether any rule still has calls to fail."""
        with self._lock:
            return any(rule.remaining != 0 for rule in self._rules)


def fault_error(tool: str, rule: _Rule) -> ConnectorError:
    """The error an injected fault raises."""
    if rule.kind == "permanent":
        return PermanentError(f"{tool}: injected permanent failure", code="sandbox_rejected")
    if rule.kind == "timeout":
        return TransientError(f"{tool}: injected timeout", code="timeout")
    return TransientError(f"{tool}: injected transient failure", code="sandbox_unavailable",
                          retry_after=rule.retry_after)
