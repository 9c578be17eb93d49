"""Parse one policy file into a Lark tree, reporting every syntax error it can find.

The grammar is `policies.lark`, shipped with Warden (LALR(1), contextual lexer). Conditions are
cut out first by `dsl.cel_regions` (see there for why). A syntax error is turned into a message
a policy author understands by `dsl.mistakes`; then the parser recovers, panic-mode style: it
blanks the broken statement (keeping every offset) and parses again, so one run reports the
errors of every statement in the file, not only the first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from lark import Lark, Token, Tree
from lark.lark import PostLex
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl.cel_regions import STATEMENT_WORDS, Region, ScannedSource, scan
from dsl.shipped import grammar_path

GRAMMAR_PATH = grammar_path()

#: Syntax errors reported per file before the parser gives up on it.
MAX_SYNTAX_ERRORS_PER_FILE = 20

#: Characters a policy file may not contain: control characters other than tab and line breaks
#: (CEL_MARK among them, which the parser reserves for conditions).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_RULE_WORDS = STATEMENT_WORDS - {"policy", "role"}


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """A syntax error at an offset of the file's text."""

    offset: int
    code: str
    message: str


@dataclass(slots=True)
class ParsedFile:
    """A file's tree (None when it has syntax errors), its conditions and its problems."""

    tree: Tree[Token] | None
    regions: dict[int, Region]
    problems: list[SyntaxProblem]


@functools.cache
def grammar_bytes() -> bytes:
    """The grammar exactly as shipped; part of every policy digest."""
    return GRAMMAR_PATH.read_bytes()


@functools.cache
def policy_parser() -> Lark:
    """The Lark parser, built once per process."""
    whole_words = _WholeWords()
    parser = Lark(
        grammar_bytes().decode("utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=whole_words,
    )
    whole_words.keywords = {
        str(t.pattern.value): t.name
        for t in parser.terminals
        if t.pattern.type == "str" and str(t.pattern.value).isidentifier()
    }
    return parser


class _WholeWords(PostLex):
    """Make keywords whole, reserved words.

    NAME is accepted in every lexer state: without it the contextual lexer reads `tools` as the
    keyword `tool` followed by `s`, and `policyfoo` as `policy foo`. A NAME that spells a
    keyword is then given the keyword's type, so `when` is never a name, wherever it appears.
    """

    always_accept = ("NAME",)

    def __init__(self) -> None:
        self.keywords: dict[str, str] = {}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        keywords = self.keywords
        for token in stream:
            if token.type == "NAME" and token.value in keywords:
                token.type = keywords[token.value]
            yield token


def parse_masked(masked: str) -> Tree[Token]:
    """Parse text whose conditions are already masked; raises Lark's UnexpectedInput."""
    return policy_parser().parse(masked)


def parse_example(text: str) -> Tree[Token]:
    """Scan and parse `text` the way files are parsed (used to learn the known mistakes)."""
    return parse_masked(scan(text).masked)


def parse_file(text: str) -> ParsedFile:
    """Parse one file's text; never raises for bad input."""
    bad = _FORBIDDEN.search(text)
    if bad:
        message = f"control character U+{ord(bad.group()):04X} is not allowed in a policy file"
        return ParsedFile(None, {}, [SyntaxProblem(bad.start(), "control_character", message)])
    from dsl.mistakes import explain  # the mistakes table parses examples with this module

    scanned: ScannedSource = scan(text)
    problems = [SyntaxProblem(p.offset, p.code, p.message) for p in scanned.problems]
    masked = scanned.masked
    # A condition cut short by an unclosed bracket makes its statement fail where the next one
    # starts; that error is an echo of the bracket's and is not reported again.
    echoes = {_next_statement_line(masked, p.offset) for p in scanned.problems}
    seen: set[int] = set()
    tree: Tree[Token] | None = None
    for _ in range(MAX_SYNTAX_ERRORS_PER_FILE):
        try:
            tree = parse_masked(masked)
            break
        except UnexpectedInput as err:
            offset = _error_offset(err, masked)
            code, message, missing = explain(err, masked, offset)
            if missing or (code not in _TOKEN_IS_THE_PROBLEM and _opens_line(masked, err, offset)):
                shown = _after_previous_word(masked, offset)
            else:
                shown = offset
            if any(p.offset == shown for p in problems) or offset in seen:
                break  # no progress: the same error again
            seen.add(offset)
            if _line_start(masked, offset) not in echoes:
                problems.append(SyntaxProblem(shown, code, message))
            recovered = _skip_statement(masked, err, offset)
            if recovered is None:
                break
            masked = recovered
    return ParsedFile(None if problems else tree, scanned.regions, problems)


#: Mistakes where the unexpected word itself is wrong, so the error points at it.
_TOKEN_IS_THE_PROBLEM = frozenset(
    {"statement_outside_policy", "unmatched_closing_brace", "missing_closing_brace"}
)


def _opens_line(masked: str, err: UnexpectedInput, offset: int) -> bool:
    """The unexpected token starts a new statement (or closes the block) on a line of its own:
    what is wrong is what is missing before it, at the end of the previous line."""
    token = _token_text(err)
    if token not in _RULE_WORDS and token != "}":
        return False
    return not masked[_line_start(masked, offset):offset].strip(" \t\r\f")


def _error_offset(err: UnexpectedInput, text: str) -> int:
    """Where to point: the unexpected token or character, or the end of the last line."""
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        return int(err.token.start_pos or 0)
    if isinstance(err, UnexpectedCharacters):
        return int(err.pos_in_stream or 0)
    return _after_previous_word(text, len(text))


def _after_previous_word(text: str, offset: int) -> int:
    """Just after the last thing written before `offset`, skipping blanks and `#` comments."""
    j = offset
    while j > 0:
        line_start = _line_start(text, j - 1)
        body = _without_comment(text[line_start:j])
        stripped = body.rstrip(" \t\r\f\n")
        if stripped:
            return line_start + len(stripped)
        j = line_start
    return offset


def _without_comment(line: str) -> str:
    """`line` up to a `#` that is not inside a quoted string."""
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
        i += 1
    return line


def _token_text(err: UnexpectedInput) -> str | None:
    if isinstance(err, UnexpectedToken) and not isinstance(err, UnexpectedEOF):
        return None if err.token.type == "$END" else str(err.token)
    return None


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _first_word(text: str, line_start: int) -> str:
    match = re.compile(r"[ \t\r\f]*([A-Za-z_][A-Za-z0-9_]*|\})").match(text, line_start)
    return match.group(1) if match else ""


def _skip_statement(masked: str, err: UnexpectedInput, offset: int) -> str | None:
    """Blank the statement that failed so the rest of the file can be parsed; None: give up.

    Gives up when the error is in a policy or role header, at the end of the file or at a
    `policy`/`role` keyword (a missing `}`): going on would only report echoes of that error.
    """
    token = _token_text(err)
    if token is None and not isinstance(err, UnexpectedCharacters):
        return None
    if token in ("policy", "role"):
        return None
    at_sync = token in _RULE_WORDS or token == "}"
    # (1): the failed statement starts at the last line opening with a statement word; when the
    # unexpected word itself opens its line, the failed statement is on an earlier line.
    probe = _line_start(masked, offset)
    if at_sync and not masked[probe:offset].strip(" \t\r\f"):
        if probe == 0:
            return None
        probe = _line_start(masked, probe - 1)
    while True:
        word = _first_word(masked, probe)
        if word in ("policy", "role"):
            return None
        if word in _RULE_WORDS:
            start = probe
            break
        if probe == 0:
            return None
        probe = _line_start(masked, probe - 1)
    # (2): it ends where the unexpected statement word begins, or else at the next line that
    # starts a statement or closes the block.
    end = offset if at_sync else _next_statement_line(masked, offset)
    if end is None or end <= start or not masked[start:end].strip():
        return None
    blanked = "".join(c if c == "\n" else " " for c in masked[start:end])
    return masked[:start] + blanked + masked[end:]


def _next_statement_line(masked: str, offset: int) -> int | None:
    nl = masked.find("\n", offset)
    while nl >= 0:
        word = _first_word(masked, nl + 1)
        if word in STATEMENT_WORDS or word == "}":
            return nl + 1
        nl = masked.find("\n", nl + 1)
    return None
