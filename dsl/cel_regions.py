"""Find the CEL conditions in a policy file before the grammar sees it.

CEL has its own syntax (strings with any characters, operators, brackets) that a line-oriented
policy grammar cannot describe without either mis-reading `because` inside a string or stopping
a condition at the first line break. So a small scanner runs first: it walks the file, skipping
policy strings and `#` comments, and at every `when` or `:` it reads one CEL condition:

- up to the next reserved word `because`, `expires` or `count` outside string literals
  (a word after `.` is a field name, so `params.count` is fine), or an unmatched `}`;
- or up to the end of the line, unless a bracket is still open, the line ends with an operator
  (`&&`, `||`, `,`, `+`, `==`, ...) or the next line starts with one (`&& ...`, `|| ...`);
- never into a line that starts a new statement (`deny`, `escalate`, `policy`, ...).

Each condition is then replaced by `CEL_MARK` characters of the same length (newlines kept),
which the grammar's `CEL` terminal matches, so every offset, line and column in the masked text
is the same as in the file. The conditions themselves are kept, with their positions, for the
compiler.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

CEL_MARK = "\x1e"

#: Words that end a condition: they belong to the statement, not to the expression.
STOP_WORDS = frozenset({"because", "expires", "count"})

#: Words that start a statement when they open a line; a condition never runs into them.
STATEMENT_WORDS = frozenset(
    {
        "policy", "role", "applies", "risk", "mode", "invariant",
        "escalate", "deny", "require", "min_autonomy", "opa",
    }
)

_OPERATORS = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "?",
              ":", ",", ".")
#: Operators a continuation line may start with (a statement never starts with one of these).
_LEADING_OPERATORS = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "+", "*", "/", "%", "?",
                      ":", ".")
_OPEN = "([{"
_CLOSE = {")": "(", "]": "[", "}": "{"}
_STRING_PREFIXES = frozenset({"r", "R", "b", "B", "rb", "rB", "Rb", "RB", "br", "bR", "Br", "BR"})


@dataclass(frozen=True, slots=True)
class Region:
    """One CEL condition: its text as written (comments blanked) and where it starts."""

    start: int
    end: int
    line: int
    column: int
    text: str


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """Something the scanner can already tell is wrong, e.g. a bracket that is never closed."""

    offset: int
    code: str
    message: str


@dataclass(slots=True)
class ScannedSource:
    masked: str
    regions: dict[int, Region] = field(default_factory=dict)
    problems: list[ScanProblem] = field(default_factory=list)


_WORD = re.compile(r"[A-Za-z0-9_]*")
#: What the structure scan stops at: a comment, a policy string, `:`, the word `when`, or a
#: statement word (an invariant's `:` starts a condition; a `:` anywhere else does not).
_STRUCTURE = re.compile(
    r'[#":]|(?<![A-Za-z0-9_])(when|' + "|".join(sorted(STATEMENT_WORDS)) + r")(?![A-Za-z0-9_])"
)


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _word_at(text: str, i: int) -> str:
    match = _WORD.match(text, i)
    return match.group() if match else ""


def _line_end(text: str, i: int) -> int:
    nl = text.find("\n", i)
    return len(text) if nl < 0 else nl


def _skip_policy_string(text: str, i: int) -> int:
    """From an opening `"` to just after its closing quote (or the end of the line)."""
    j = i + 1
    while j < len(text) and text[j] not in '"\n':
        j += 2 if text.startswith("\\", j) and not text.startswith("\\\n", j) else 1
    return min(j + 1, len(text)) if j < len(text) and text[j] == '"' else j


class _ConditionReader:
    """Reads one condition starting at `start`; see the module docstring for where it stops."""

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.i = start
        self.stack: list[tuple[str, int]] = []
        self.content_end = start  # just after the last character that belongs to the condition
        self.last_token = ""  # the last significant token, to spot a trailing operator
        self.comments: list[tuple[int, int]] = []
        self.problems: list[ScanProblem] = []

    def read(self) -> tuple[int, list[tuple[int, int]]]:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c in " \t\r\f":
                self.i += 1
            elif c == "\n":
                if not self._continues_after_newline():
                    break
                self.i += 1
            elif c == "#":
                end = _line_end(text, self.i)
                self.comments.append((self.i, end))
                self.i = end
            elif c in "\"'":
                self._string(self.i, raw=False)
            elif _is_word_char(c):
                if not self._word():
                    break
            elif c in _OPEN:
                self.stack.append((c, self.i))
                self._take(self.i + 1, c)
            elif c in _CLOSE:
                if not self.stack and c == "}":
                    break  # the policy block's closing brace
                if self.stack:
                    self.stack.pop()
                self._take(self.i + 1, c)
            else:
                op = next((o for o in _OPERATORS if text.startswith(o, self.i)), c)
                self._take(self.i + len(op), op)
        for bracket, offset in self.stack:
            self.problems.append(
                ScanProblem(offset, "unclosed_bracket", f"this '{bracket}' is never closed")
            )
        return self.content_end, self.comments

    def _take(self, end: int, token: str) -> None:
        self.i = end
        self.content_end = end
        self.last_token = token

    def _word(self) -> bool:
        """Consume a word; False when it is a reserved word that ends the condition."""
        text, start = self.text, self.i
        word = _word_at(text, start)
        after = start + len(word)
        if word in _STRING_PREFIXES and after < len(text) and text[after] in "\"'":
            self._string(after, raw="r" in word.lower())
            return True
        if word in STOP_WORDS and not self._after_dot(start):
            return False
        self._take(after, "in" if word == "in" else "word")
        return True

    def _after_dot(self, start: int) -> bool:
        j = start - 1
        while j >= 0 and self.text[j] in " \t":
            j -= 1
        return j >= 0 and self.text[j] == "."

    def _string(self, quote_at: int, raw: bool) -> None:
        text = self.text
        q = text[quote_at]
        if text.startswith(q * 3, quote_at):
            close = text.find(q * 3, quote_at + 3)
            if close >= 0:
                self._take(close + 3, "string")
                return
            self._take(_line_end(text, quote_at), "string")  # unterminated: CEL will say so
            return
        j = quote_at + 1
        while j < len(text) and text[j] not in (q, "\n"):
            j += 2 if (text[j] == "\\" and not raw and not text.startswith("\\\n", j)) else 1
        self._take(min(j + 1, len(text)) if j < len(text) and text[j] == q else j, "string")

    def _continues_after_newline(self) -> bool:
        nxt = self._next_significant_line()
        if nxt is None:
            return False
        stripped = self.text[nxt:_line_end(self.text, nxt)].lstrip(" \t\r\f")
        first_word = _word_at(stripped, 0)
        if first_word in STATEMENT_WORDS or first_word in STOP_WORDS:
            return False
        if self.stack:
            return True
        if stripped.startswith("}"):
            return False
        if self.last_token in _OPERATORS or self.last_token == "in":
            return True
        return stripped.startswith(_LEADING_OPERATORS) or first_word == "in"

    def _next_significant_line(self) -> int | None:
        """Offset of the next line holding something other than blanks and comments."""
        text, j = self.text, self.i + 1
        while j < len(text):
            end = _line_end(text, j)
            body = text[j:end].strip(" \t\r\f")
            if body and not body.startswith("#"):
                return j
            j = end + 1
        return None


def line_starts(text: str) -> list[int]:
    """Offsets at which each line begins, for turning offsets into line and column."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def line_column(starts: list[int], offset: int) -> tuple[int, int]:
    """1-based line and column of `offset`, given `line_starts(text)`."""
    line = bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def scan(text: str) -> ScannedSource:
    """Find every condition in `text` and return the masked text with the conditions aside."""
    out = list(text)
    starts = line_starts(text)
    result = ScannedSource(masked="")
    i = 0
    statement = ""
    while (found := _STRUCTURE.search(text, i)) is not None:
        c, i = found.group(), found.start()
        if c == "#":
            i = _line_end(text, i)
        elif c == '"':
            i = _skip_policy_string(text, i)
        elif c == ":":
            i = _read_condition(text, i + 1, out, result, starts) if statement == "invariant" \
                else i + 1
            statement = ""
        elif c == "when":
            i = _read_condition(text, i + 4, out, result, starts)
        else:
            statement = c
            i += len(c)
    result.masked = "".join(out)
    return result


def _condition_start(text: str, i: int) -> int | None:
    """Where the condition after a `when`/`:` at `i` begins; None when there is none.

    It may begin on a later line (`when` at the end of a line), but never on a line that starts
    a statement, a reason (`because`) or closes the block.
    """
    while i < len(text) and text[i] in " \t\r\f":
        i += 1
    if i < len(text) and text[i] == "#":
        i = _line_end(text, i)
    if i < len(text) and text[i] != "\n":
        return i
    probe = _ConditionReader(text, i)
    nxt = probe._next_significant_line() if i < len(text) else None
    if nxt is None:
        return None
    while text[nxt] in " \t\r\f":
        nxt += 1
    word = _word_at(text, nxt)
    if word in STATEMENT_WORDS or word in STOP_WORDS or text[nxt] == "}":
        return None
    return nxt


def _read_condition(
    text: str, i: int, out: list[str], result: ScannedSource, starts: list[int]
) -> int:
    """Read the condition after a `when`/`:` ending at `i`; returns the offset to go on from."""
    start = _condition_start(text, i)
    if start is None:
        return i
    reader = _ConditionReader(text, start)
    end, comments = reader.read()
    result.problems.extend(reader.problems)
    if end <= start:
        return start
    chars = list(text[start:end])
    for c_start, c_end in comments:
        for k in range(max(c_start, start), min(c_end, end)):
            chars[k - start] = " "
    for k in range(start, end):
        if out[k] != "\n":
            out[k] = CEL_MARK
    line, column = line_column(starts, start)
    result.regions[start] = Region(start, end, line, column, "".join(chars))
    return end
