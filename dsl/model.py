"""The compiled form of a policy set: plain, frozen data.

Everything after the parser works on these classes, never on parse trees. The decision engine
(`gateway.engine`) reads them; nothing here knows about HTTP, storage or connectors.

    PolicySet
      └── Policy (one `policy NAME { ... }` block)
            ├── ToolSelector      applies to tool "x" | tool in [...] | tool matching "glob"
            ├── Invariant         hard checks: FAIL or ERROR denies, no approval lifts them
            ├── Escalation        raise the risk tier when a condition holds
            ├── DenyRule          deny when a condition holds
            ├── ApprovalRule      who must approve (role, count, expiry), optionally conditional
            ├── AutonomyRule      the lowest autonomy level allowed, optionally conditional
            └── Delegation        `opa "path"`: OPA's answer counts like an invariant
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import timedelta
from collections.abc import Mapping
from typing import Any, Literal

# The vocabulary is part of the model: `from dsl.model import Risk` is the usual spelling.
from dsl.vocabulary import BUILTIN_ROLES as BUILTIN_ROLES
from dsl.vocabulary import PEOPLE_ROLES as PEOPLE_ROLES
from dsl.vocabulary import Autonomy as Autonomy
from dsl.vocabulary import Risk as Risk


Mode = Literal["enforce", "shadow"]
SelectorKind = Literal["tool", "list", "glob"]
Severity = Literal["error", "warning"]

#: Approval expiry when a rule does not say.
DEFAULT_APPROVAL_EXPIRY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Span:
    """Where something is written: 1-based line and column of its first character."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Expr:
    """A CEL expression as written in a policy file, and its compiled program.

    `program` is the object returned by `invariants.compile_expression`; it is compiled once at
    load and evaluated per packet.
    """

    source: str
    span: Span
    program: Any = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ToolSelector:
    """Which tools a policy applies to. `patterns` may hold exact names or globs (`stripe.*`)."""

    kind: SelectorKind
    patterns: tuple[str, ...]

    def matches(self, tool: str) -> bool:
        return any(
            tool == p or (_is_glob(p) and fnmatch.fnmatchcase(tool, p)) for p in self.patterns
        )

    @property
    def exact_tools(self) -> tuple[str, ...]:
        """The patterns that name one tool exactly (used to index policies by tool)."""
        return tuple(p for p in self.patterns if not _is_glob(p))

    @property
    def globs(self) -> tuple[str, ...]:
        return tuple(p for p in self.patterns if _is_glob(p))


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    description: str | None
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Escalation:
    name: str  # given in the file, or derived: "escalate_1", "escalate_2", ... within the policy
    tier: Risk
    when: Expr
    because: str
    span: Span


@dataclass(frozen=True, slots=True)
class DenyRule:
    name: str  # given, or "deny_1", ...
    when: Expr
    because: str
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    name: str  # given, or "approval_1", ...
    role: str
    count: int
    when: Expr | None  # None: always, for the tools the policy applies to
    expires_in: timedelta | None  # None: DEFAULT_APPROVAL_EXPIRY
    span: Span


@dataclass(frozen=True, slots=True)
class AutonomyRule:
    """`min_autonomy A3 [when CEL] [because "..."]`: below the level, the action is denied."""

    name: str  # given, or "min_autonomy_1", ...
    level: Autonomy
    when: Expr | None
    because: str | None
    span: Span


#: What an `opa` statement may read: the roots of the input Warden sends OPA.
DELEGATION_ROOTS = ("params", "evidence", "context", "agent")
#: What an `opa` statement without `reads` sends (besides the tool, always sent).
DEFAULT_DELEGATION_READS: tuple[tuple[str, ...], ...] = (("agent",), ("params",))


@dataclass(frozen=True, slots=True)
class Delegation:
    """`opa [NAME] "path" [reads FIELD, ...]`: the decision of an OPA rule, asked over OPA's REST
    data API (`POST /v1/data/{path}`), counts like an invariant: a deny is a violation no approval
    lifts, an answer's `risk` raises the tier, and no answer denies.

    `reads` are the packet's fields OPA receives, as paths (`("evidence", "risk_score")`); a
    root alone (`("params",)`) sends the whole of it. Nothing else of the packet leaves Warden.
    """

    name: str  # given, or "opa_1", ...
    path: str  # OPA's data path: segments of [A-Za-z0-9_] joined by "/"
    reads: tuple[tuple[str, ...], ...]
    span: Span

    @property
    def id(self) -> str:
        """How the decision's `invariants` name this delegation's outcome."""
        return f"opa:{self.path}"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    description: str | None
    mode: Mode
    applies_to: ToolSelector
    risk: Risk | None  # base tier this policy gives the tools it applies to
    invariants: tuple[Invariant, ...]
    escalations: tuple[Escalation, ...]
    denies: tuple[DenyRule, ...]
    approvals: tuple[ApprovalRule, ...]
    autonomy_rules: tuple[AutonomyRule, ...]
    span: Span
    delegations: tuple[Delegation, ...] = ()

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A compile error or warning, located in a policy file."""

    severity: Severity
    code: str  # stable, e.g. "duplicate_policy", "cel_syntax", "unknown_role"
    message: str
    span: Span
    source_line: str = ""  # the line as written, for the caret display

    def render(self) -> str:
        """`file:line:col: error: message` then the line and a caret under the column."""
        head = f"{self.span}: {self.severity}: {self.message} [{self.code}]"
        if not self.source_line:
            return head
        # keep the line's tabs so the caret lands under the column in any editor
        pad = "".join(c if c == "\t" else " " for c in self.source_line[: self.span.column - 1])
        caret = pad + "^"
        return f"{head}\n    {self.source_line}\n    {caret}"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A compiled set of policies with a digest that every decision records.

    `digest` is `sha256:<hex>` over the grammar and every file's path and bytes, so it changes
    when any policy byte changes, and only then.
    """

    policies: tuple[Policy, ...]
    roles: frozenset[str]
    digest: str
    files: tuple[str, ...]
    warnings: tuple[Diagnostic, ...] = ()
    #: {relative path: bytes} exactly as compiled: what the digest covers besides the grammar,
    #: kept so that the gateway can store the set by its digest and decide again under it later.
    sources: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    _by_tool: dict[str, tuple[Policy, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def policies_for(self, tool: str) -> tuple[Policy, ...]:
        """The policies that apply to `tool`, in file order; cached per tool name."""
        hit = self._by_tool.get(tool)
        if hit is None:
            hit = tuple(p for p in self.policies if p.applies_to.matches(tool))
            if len(self._by_tool) < 10_000:  # bounded: tool names come from packets
                self._by_tool[tool] = hit
        return hit
