"""CompileExpressions: compile every condition with `invariants`, at load, located in the file.

A condition that does not compile is a load error, never a runtime surprise. The invariants
layer reports positions within the expression's own text (1-based line and column); a condition
starts somewhere in a policy file and may run over several lines, so its positions are shifted:
on its first line by the column where it starts, on later lines not at all (the condition's text
keeps the file's own line breaks and indentation).

`compile_condition` is the one place this package calls into `invariants`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from invariants import CelCompileError, compile_expression

from dsl.errors import DiagnosticBag
from dsl.model import Expr, Policy, Span


def compile_condition(source: str) -> Any:
    """The compiled program for `source`; raises `CelCompileError(message, line, column)`."""
    return compile_expression(source)


def file_position(expr_span: Span, line: int, column: int) -> Span:
    """Map a position inside a condition (1-based, within its text) to the policy file."""
    line = max(line, 1)
    column = max(column, 1)
    if line == 1:
        return Span(expr_span.file, expr_span.line, expr_span.column + column - 1)
    return Span(expr_span.file, expr_span.line + line - 1, column)


class _Compiler:
    def __init__(self, bag: DiagnosticBag) -> None:
        self.bag = bag

    def expr(self, expr: Expr) -> Expr:
        try:
            program = compile_condition(expr.source)
        except CelCompileError as err:
            self.bag.error("cel_syntax", err.message,
                           file_position(expr.span, err.line, err.column))
            return expr
        return replace(expr, program=program)

    def maybe(self, expr: Expr | None) -> Expr | None:
        return None if expr is None else self.expr(expr)

    def policy(self, policy: Policy) -> Policy:
        return replace(
            policy,
            invariants=tuple(replace(i, expr=self.expr(i.expr)) for i in policy.invariants),
            escalations=tuple(replace(e, when=self.expr(e.when)) for e in policy.escalations),
            denies=tuple(replace(d, when=self.expr(d.when)) for d in policy.denies),
            approvals=tuple(replace(a, when=self.maybe(a.when)) for a in policy.approvals),
            autonomy_rules=tuple(
                replace(r, when=self.maybe(r.when)) for r in policy.autonomy_rules
            ),
        )


def compile_policies(policies: list[Policy], bag: DiagnosticBag) -> list[Policy]:
    """The policies with every condition's program filled in; failures go to `bag`."""
    compiler = _Compiler(bag)
    return [compiler.policy(p) for p in policies]
