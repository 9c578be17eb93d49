"""Compile policy files into a `PolicySet`: a table of named stages, like OPA's compile.go.

    Decode              bytes -> text (UTF-8), paths checked, size bounded
    Parse               cut out conditions, parse with policies.lark, recover, explain mistakes
    BuildModel          parse trees -> syntax dataclasses (`dsl.syntax`)
    ResolveNames        roles, names, tiers, levels, durations -> model `Policy`s (`dsl.resolve`)
    CompileExpressions  every condition compiled by `invariants` (`dsl.expressions`)
    Lint                warnings (`dsl.lint`)

Each stage reports into one `DiagnosticBag`; the compiler stops after the first stage that
reported an error (later stages would only trip over the same mistakes) and raises
`PolicyCompileError` with every error found so far, up to `MAX_ERRORS`. Each stage is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import dsl.syntax as ast
from dsl.cel_regions import line_column, line_starts
from dsl.digest import policy_digest
from dsl.errors import DiagnosticBag, PolicyCompileError, SourceLines, TooManyErrors
from dsl.expressions import compile_policies
from dsl.grammar import grammar_bytes
from dsl.lint import lint_policies
from dsl.mistakes import value_message
from dsl.model import Diagnostic, Policy, PolicySet, Span
from dsl.parser import ParsedFile, parse_file
from dsl.resolve import resolve_policies, resolve_roles
from dsl.shipped import builtin_policy_dir

#: A policy file larger than this is refused (policies are short; this bounds the work).
MAX_FILE_BYTES = 1024 * 1024
POLICY_SUFFIX = ".policy"


@dataclass
class Compilation:
    """Everything the stages share: the input, what each stage produced, the diagnostics."""

    sources: dict[str, bytes]
    known_tools: Collection[str] | None
    lines: SourceLines = field(default_factory=SourceLines)
    texts: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, ParsedFile] = field(default_factory=dict)
    files: list[ast.PolicyFile] = field(default_factory=list)
    roles: frozenset[str] = frozenset()
    policies: list[Policy] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    bag: DiagnosticBag = field(init=False)

    def __post_init__(self) -> None:
        self.bag = DiagnosticBag(self.lines)


def _decode(c: Compilation) -> None:
    if not c.sources:
        c.bag.error("no_policy_files", "no policy files to compile", Span("<policies>", 1, 1))
    for path, data in sorted(c.sources.items()):
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        c.lines.add(path, text)
        problem = _path_problem(path)
        if problem:
            c.bag.error("bad_path", problem, Span(path or "<unnamed>", 1, 1))
            continue
        if len(data) > MAX_FILE_BYTES:
            c.bag.error("file_too_large", f"the file is {len(data)} bytes; the limit is "
                        f"{MAX_FILE_BYTES}", Span(path, 1, 1))
            continue
        try:
            c.texts[path] = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            good = data[: err.start].decode("utf-8-sig", errors="replace")
            line, column = line_column(line_starts(good), len(good))
            c.bag.error("not_utf8", f"the file is not UTF-8 text (byte 0x{data[err.start]:02X})",
                        Span(path, line, column))


def _path_problem(path: str) -> str | None:
    """Paths are relative and `/`-separated, so digests agree across machines."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8"
    pure = PurePosixPath(path)
    if not path or "\\" in path or pure.is_absolute() or ".." in pure.parts or str(pure) != path:
        return f"`{path}` is not a plain relative path (like payments.policy)"
    return None


def _parse(c: Compilation) -> None:
    for path, text in c.texts.items():
        parsed = parse_file(text)
        c.parsed[path] = parsed
        starts = line_starts(text) if parsed.problems else []
        for problem in parsed.problems:
            line, column = line_column(starts, problem.offset)
            c.bag.error(problem.code, problem.message, Span(path, line, column))


def _build(c: Compilation) -> None:
    for path, parsed in c.parsed.items():
        if parsed.tree is None:
            continue
        policy_file, string_problems = ast.build_syntax(parsed.tree, path, parsed.regions)
        c.files.append(policy_file)
        for problem in string_problems:
            c.bag.error("bad_escape", value_message("bad_escape", problem.escape), problem.span)


def _resolve(c: Compilation) -> None:
    c.roles = resolve_roles(c.files, c.bag)
    c.policies = resolve_policies(c.files, c.roles, c.bag)


def _compile_expressions(c: Compilation) -> None:
    c.policies = compile_policies(c.policies, c.bag)


def _lint(c: Compilation) -> None:
    lint_policies(c.policies, c.known_tools, c.bag)


Stage = Callable[[Compilation], None]

#: The compiler, in order. A stage that reports an error is the last one to run.
STAGES: tuple[tuple[str, Stage], ...] = (
    ("Decode", _decode),
    ("Parse", _parse),
    ("BuildModel", _build),
    ("ResolveNames", _resolve),
    ("CompileExpressions", _compile_expressions),
    ("Lint", _lint),
)


def run_stages(c: Compilation) -> None:
    """Run the stages in order; raise PolicyCompileError after the first one that failed."""
    for name, stage in STAGES:
        started = time.perf_counter()
        try:
            stage(c)
        except TooManyErrors:
            # the error cap is reached: stop this stage and report what it collected
            assert c.bag.failed
        c.timings[name] = time.perf_counter() - started
        if c.bag.failed:
            raise PolicyCompileError(c.bag.final_errors())


def compile_sources(
    sources: Mapping[str, str | bytes], *, known_tools: Collection[str] | None = None
) -> PolicySet:
    """Compile `{relative path: text or bytes}` into a PolicySet, or raise PolicyCompileError.

    `known_tools`, when given, lets the linter warn about names and globs that match no tool.
    """
    encoded = {
        path: data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        for path, data in sources.items()
    }
    c = Compilation(encoded, known_tools)
    run_stages(c)
    return PolicySet(
        policies=tuple(c.policies),
        roles=c.roles,
        digest=policy_digest(encoded, grammar_bytes()),
        files=tuple(sorted(encoded)),
        warnings=tuple(sorted(c.bag.warnings, key=_position)),
        sources=MappingProxyType(dict(encoded)),
    )


def _position(d: Diagnostic) -> tuple[str, int, int]:
    return d.span.file, d.span.line, d.span.column


def read_policy_dir(path: str | Path) -> dict[str, bytes]:
    """The `*.policy` files directly inside `path`, by file name; PolicyCompileError if unreadable."""
    directory = Path(path)
    if not directory.is_dir():
        raise PolicyCompileError([Diagnostic("error", "no_policy_dir",
                                             f"{directory} is not a directory", Span(str(directory), 1, 1))])
    sources: dict[str, bytes] = {}
    problems: list[Diagnostic] = []
    for file in sorted(directory.glob("*" + POLICY_SUFFIX)):
        if not file.is_file():
            continue
        try:
            sources[file.name] = file.read_bytes()
        except OSError as err:
            problems.append(Diagnostic("error", "unreadable_file",
                                       f"cannot read the file: {err.strerror or err}",
                                       Span(str(file), 1, 1)))
    if problems:
        raise PolicyCompileError(problems)
    if not sources:
        raise PolicyCompileError([Diagnostic("error", "no_policy_files",
                                             f"no {POLICY_SUFFIX} files in {directory}",
                                             Span(str(directory), 1, 1))])
    return sources


def compile_policy_dir(
    path: str | Path, *, known_tools: Collection[str] | None = None
) -> PolicySet:
    """Compile every `*.policy` file directly inside `path` (file names are the relative paths
    in the digest, so the same files give the same digest wherever the directory is).

    Diagnostics name files as `path/name`, so an editor can jump to them.
    """
    directory = Path(path)
    sources = read_policy_dir(directory)
    try:
        policy_set = compile_sources(sources, known_tools=known_tools)
    except PolicyCompileError as err:
        raise PolicyCompileError([_under(directory, d) for d in err.diagnostics]) from None
    return replace(policy_set, warnings=tuple(_under(directory, d) for d in policy_set.warnings))


def _under(directory: Path, d: Diagnostic) -> Diagnostic:
    if d.span.file.startswith("<"):
        return d
    return replace(d, span=replace(d.span, file=str(directory / d.span.file)))


def load_builtin_policies(*, known_tools: Collection[str] | None = None) -> PolicySet:
    """The shipped policies, compiled."""
    return compile_policy_dir(builtin_policy_dir(), known_tools=known_tools)
