"""Compile errors and the collector every compiler stage reports into.

    Exception
      └── PolicyCompileError     the policy files do not compile; `.diagnostics` says where and why

Every problem is a `Diagnostic` (see `dsl.model`) located at file:line:col with the source line,
so `warden policy check` can print it with a caret. A stage adds diagnostics to a
`DiagnosticBag`; the compiler stops after the first stage that reported an error. The bag caps
the errors it keeps, so a file of garbage gives a screenful, not ten thousand lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dsl.model import Diagnostic, Severity, Span

#: Errors kept before the compiler stops listing them.
MAX_ERRORS = 50


class PolicyCompileError(Exception):
    """The policy files do not compile. Every diagnostic is an error located in a file."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        count = sum(1 for d in self.diagnostics if d.severity == "error")
        first = self.diagnostics[0].render().splitlines()[0] if self.diagnostics else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}")

    def render(self) -> str:
        """Every diagnostic with its source line and caret, one after the other."""
        return "\n".join(d.render() for d in self.diagnostics)


class SourceLines:
    """The lines of every file being compiled, to show the line an error points at."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, file: str, text: str) -> None:
        self._lines[file] = text.split("\n")

    def line(self, file: str, line: int) -> str:
        lines = self._lines.get(file, [])
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""


class TooManyErrors(Exception):
    """Raised inside a stage when the cap is reached, to stop the stage early."""


class DiagnosticBag:
    """Collects errors (up to MAX_ERRORS) and warnings from the compiler's stages."""

    def __init__(self, sources: SourceLines, max_errors: int = MAX_ERRORS) -> None:
        self.sources = sources
        self.max_errors = max_errors
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.truncated = False

    def error(self, code: str, message: str, span: Span) -> None:
        """Record an error; raises TooManyErrors once the cap is reached."""
        if len(self.errors) >= self.max_errors:
            self.truncated = True
            raise TooManyErrors
        self.errors.append(self._make("error", code, message, span))

    def warning(self, code: str, message: str, span: Span) -> None:
        self.warnings.append(self._make("warning", code, message, span))

    def extend_errors(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.error(d.code, d.message, d.span)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def final_errors(self) -> list[Diagnostic]:
        """The errors, sorted by file and position, with a note when some were left out."""
        ordered = sorted(self.errors, key=lambda d: (d.span.file, d.span.line, d.span.column))
        if self.truncated:
            last = ordered[-1].span if ordered else Span("<policies>", 1, 1)
            ordered.append(
                Diagnostic(
                    "error",
                    "too_many_errors",
                    f"too many errors; stopped after {self.max_errors}",
                    Span(last.file, last.line, last.column),
                )
            )
        return ordered

    def _make(self, severity: Severity, code: str, message: str, span: Span) -> Diagnostic:
        return Diagnostic(severity, code, message, span, self.sources.line(span.file, span.line))
