"""The syntax tree of a policy file: what was written, where, before any checking.

A Lark `Transformer` turns the parse tree into these dataclasses (as Lark's
`examples/advanced/create_ast.py` does); every later stage works on them, never on Lark trees.
Values that need checking (`L5`, `A9`, `4hours`, `count 0`, a role name) are kept as located
words, so the checks in `dsl.resolve` can point at the exact character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from dsl.cel_regions import Region
from dsl.model import SelectorKind, Span


@dataclass(frozen=True, slots=True)
class Word:
    """A value as written, with where it was written."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Condition:
    """A CEL condition: its text (comments blanked) and the position of its first character."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class RoleDecl:
    name: Word
    description: str | None


@dataclass(frozen=True, slots=True)
class Applies:
    kind: SelectorKind
    patterns: tuple[Word, ...]
    span: Span


#: What a tool selector rule gives `applies`: the kind, the names or globs, where they start.
Selector = tuple[SelectorKind, tuple[Word, ...], Span]


@dataclass(frozen=True, slots=True)
class RiskStmt:
    tier: Word
    span: Span


@dataclass(frozen=True, slots=True)
class ModeStmt:
    mode: Word
    span: Span


@dataclass(frozen=True, slots=True)
class InvariantStmt:
    name: Word
    description: str | None
    condition: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class EscalateStmt:
    name: Word | None
    tier: Word
    condition: Condition
    because: str
    span: Span


@dataclass(frozen=True, slots=True)
class DenyStmt:
    name: Word | None
    condition: Condition
    because: str
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovalClause:
    kind: Literal["count", "when", "expires"]
    value: Word | Condition
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovalStmt:
    name: Word | None
    role: Word
    clauses: tuple[ApprovalClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class MinAutonomyStmt:
    name: Word | None
    level: Word
    condition: Condition | None
    because: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class DelegateStmt:
    """`opa [NAME] "path" [reads FIELD, ...]`; each read is a dotted path as written."""

    name: Word | None
    path: Word
    reads: tuple[Word, ...] | None  # None: no `reads` clause
    span: Span


Statement = (
    Applies | RiskStmt | ModeStmt | InvariantStmt | EscalateStmt | DenyStmt | ApprovalStmt
    | MinAutonomyStmt | DelegateStmt
)


@dataclass(frozen=True, slots=True)
class PolicyBlock:
    name: Word
    description: str | None
    header_mode: Word | None
    statements: tuple[Statement, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    roles: tuple[RoleDecl, ...]
    policies: tuple[PolicyBlock, ...]


@dataclass(frozen=True, slots=True)
class StringProblem:
    """A string with an escape the language does not have (only \\" and \\\\)."""

    span: Span
    escape: str


@v_args(inline=True)
class BuildSyntax(Transformer[Token, PolicyFile]):
    """Parse tree -> `PolicyFile`. One instance per file (it knows the path and conditions)."""

    def __init__(self, path: str, regions: dict[int, Region]) -> None:
        super().__init__()
        self.path = path
        self.regions = regions
        self.string_problems: list[StringProblem] = []

    # -- helpers ---------------------------------------------------------------------------
    def _span(self, token: Token) -> Span:
        return Span(self.path, int(token.line or 1), int(token.column or 1))

    def _word(self, token: Token | None) -> Word | None:
        return None if token is None else Word(str(token), self._span(token))

    def _string(self, token: Token | None) -> str | None:
        """Decode a quoted string: only \\" and \\\\ are escapes; others are reported."""
        if token is None:
            return None
        raw, out, i = str(token)[1:-1], [], 0
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                nxt = raw[i + 1]  # the grammar guarantees a character after a backslash
                if nxt not in '"\\':
                    span = self._span(token)
                    self.string_problems.append(
                        StringProblem(Span(span.file, span.line, span.column + 1 + i), c + nxt)
                    )
                out.append(nxt)
                i += 2
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def _at(self, meta: Meta) -> Span:
        """Where a statement starts: its first keyword."""
        return Span(self.path, int(getattr(meta, "line", 1)), int(getattr(meta, "column", 1)))

    def _condition(self, token: Token) -> Condition:
        region = self.regions[int(token.start_pos or 0)]
        return Condition(region.text, Span(self.path, region.line, region.column))

    def _string_word(self, token: Token) -> Word:
        return Word(self._string(token) or "", self._span(token))

    # -- rules -----------------------------------------------------------------------------
    def start(self, *items: RoleDecl | PolicyBlock) -> PolicyFile:
        roles = tuple(i for i in items if isinstance(i, RoleDecl))
        policies = tuple(i for i in items if isinstance(i, PolicyBlock))
        return PolicyFile(self.path, roles, policies)

    def role_decl(self, name: Token, description: Token | None) -> RoleDecl:
        return RoleDecl(Word(str(name), self._span(name)), self._string(description))

    @v_args(meta=True, inline=True)
    def policy(self, meta: Meta, name: Token, description: Token | None, mode: Word | None,
               *statements: Statement) -> PolicyBlock:
        return PolicyBlock(
            Word(str(name), self._span(name)), self._string(description), mode, statements,
            self._at(meta),
        )

    def header_mode(self, mode: Token) -> Word:
        return Word(str(mode), self._span(mode))

    def rule_name(self, name: Token) -> Word:
        return Word(str(name), self._span(name))

    @v_args(meta=True, inline=True)
    def applies(self, meta: Meta, selector: Selector) -> Applies:
        kind, patterns, _ = selector
        return Applies(kind, patterns, self._at(meta))

    def tool_exact(self, tool: Token) -> Selector:
        return "tool", (self._string_word(tool),), self._span(tool)

    def tool_glob(self, glob: Token) -> Selector:
        return "glob", (self._string_word(glob),), self._span(glob)

    def tool_list(self, *tools: Token) -> Selector:
        words = tuple(self._string_word(t) for t in tools)
        return "list", words, words[0].span if words else Span(self.path, 1, 1)

    @v_args(meta=True, inline=True)
    def risk(self, meta: Meta, tier: Token) -> RiskStmt:
        return RiskStmt(Word(str(tier), self._span(tier)), self._at(meta))

    @v_args(meta=True, inline=True)
    def mode(self, meta: Meta, mode: Token) -> ModeStmt:
        return ModeStmt(Word(str(mode), self._span(mode)), self._at(meta))

    @v_args(meta=True, inline=True)
    def invariant(self, meta: Meta, name: Token, description: Token | None, cel: Token) -> InvariantStmt:
        return InvariantStmt(
            Word(str(name), self._span(name)), self._string(description), self._condition(cel),
            self._at(meta),
        )

    @v_args(meta=True, inline=True)
    def escalate(self, meta: Meta, name: Word | None, tier: Token, cel: Token, because: Token) -> EscalateStmt:
        return EscalateStmt(
            name, Word(str(tier), self._span(tier)), self._condition(cel),
            self._string(because) or "", self._at(meta),
        )

    @v_args(meta=True, inline=True)
    def deny(self, meta: Meta, name: Word | None, cel: Token, because: Token) -> DenyStmt:
        return DenyStmt(name, self._condition(cel), self._string(because) or "", self._at(meta))

    @v_args(meta=True, inline=True)
    def approval(self, meta: Meta, name: Word | None, role: Token, *clauses: ApprovalClause) -> ApprovalStmt:
        role_word = self._string_word(role)
        return ApprovalStmt(name, role_word, clauses, self._at(meta))

    def approval_count(self, count: Token) -> ApprovalClause:
        return ApprovalClause("count", Word(str(count), self._span(count)), self._span(count))

    def approval_when(self, cel: Token) -> ApprovalClause:
        condition = self._condition(cel)
        return ApprovalClause("when", condition, condition.span)

    def approval_expiry(self, duration: Token) -> ApprovalClause:
        return ApprovalClause("expires", Word(str(duration), self._span(duration)),
                              self._span(duration))

    @v_args(meta=True, inline=True)
    def min_autonomy(self, meta: Meta, name: Word | None, level: Token, when: Condition | None,
                     because: str | None) -> MinAutonomyStmt:
        level_word = Word(str(level), self._span(level))
        return MinAutonomyStmt(name, level_word, when, because, self._at(meta))

    @v_args(meta=True, inline=True)
    def delegate(self, meta: Meta, name: Word | None, path: Token,
                 reads: tuple[Word, ...] | None) -> DelegateStmt:
        return DelegateStmt(name, self._string_word(path), reads, self._at(meta))

    def delegate_reads(self, *fields: Word) -> tuple[Word, ...]:
        return fields

    def field_path(self, *names: Token) -> Word:
        return Word(".".join(str(n) for n in names), self._span(names[0]))

    def autonomy_when(self, cel: Token) -> Condition:
        return self._condition(cel)

    def autonomy_because(self, because: Token) -> str:
        return self._string(because) or ""


def build_syntax(tree: Tree[Any], path: str, regions: dict[int, Region]
                 ) -> tuple[PolicyFile, list[StringProblem]]:
    """Transform one file's parse tree; also returns the strings with unknown escapes."""
    builder = BuildSyntax(path, regions)
    result = builder.transform(tree)
    return result, builder.string_problems
