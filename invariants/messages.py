"""Author-facing wording for the engine's parse errors and evaluation errors.

The engine reports a parse error as one `ValueError` whose text repeats the whole source and
then lists ANTLR diagnostics such as
``ERROR: <input>:1:4: Syntax error: mismatched input '<EOF>' expecting {'[', '{', ...}``.
We keep the first diagnostic's position and say what it means in a sentence.

Evaluation errors arrive as Python exceptions of assorted types (KeyError for a missing map key,
TypeError for "no such overload", OverflowError, ZeroDivisionError, RuntimeError for a function
given arguments it has no overload for). `describe_runtime_error` turns each into one line for
the decision's reasons.
"""

from __future__ import annotations

import re

from invariants.lexer import Token

_DIAGNOSTIC = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*?)(?:\n\| |\nERROR: |\Z)", re.S)
_VALUE_TOKENS = {"NUM_FLOAT", "NUM_INT", "NUM_UINT", "STRING", "BYTES", "IDENTIFIER"}

_FIXED = {
    "invalid argument to has() macro": "has() takes a field selection, as in has(params.reason)",
    "argument must be a simple name": (
        "a comprehension's first argument must be a variable name, "
        "as in params.items.all(item, item.amount > 0)"
    ),
    "invalid int literal": "integer literal out of range (ints are 64-bit signed)",
    "invalid uint literal": "unsigned integer literal out of range (uints are 64-bit)",
    "invalid double literal": "number literal out of range",
    "unsupported syntax '.?'": "optional field selection '.?' is not supported; use has()",
}


def describe_parse_error(text: str, source: str, tokens: list[Token]) -> tuple[str, int, int]:
    """(message, line, column) for the engine's parse error `text` about `source`.

    The engine may list several diagnostics; a syntax error is the cause of any macro error
    that follows it, and a macro error on malformed input can come without a position (0:0),
    so the first located syntax error wins, then the first located one.
    """
    found = [(int(m[1]), int(m[2]), m[3].strip()) for m in _DIAGNOSTIC.finditer(text)]
    if not found:
        return "cannot parse the expression", 1, 1
    located = [d for d in found if d[0] >= 1 and d[1] >= 1]
    syntax = [d for d in located if d[2].startswith("Syntax error: ")]
    line, column, detail = (syntax or located or found)[0]
    lines = source.split("\n")
    line = min(max(line, 1), len(lines))
    column = min(max(column, 1), len(lines[line - 1]) + 1)
    detail = detail.removeprefix("Syntax error: ")
    return _explain(detail, line, column, tokens), line, column


def _explain(detail: str, line: int, column: int, tokens: list[Token]) -> str:
    if detail in _FIXED:
        return _FIXED[detail]
    if m := re.match(r"token recognition error at: '(.*)'\Z", detail, re.S):
        bad = m.group(1)
        if bad[:1] in "\"'" or bad[:2].lower() in {"r'", 'r"', "b'", 'b"'}:
            token = next((t for t in tokens if (t.line, t.column) == (line, column)), None)
            if token is not None and token.kind == "string" and not token.closed:
                return "string literal is not closed"
            return "invalid escape sequence in string literal"
        return f"unexpected character {bad[:1]!r}"
    if m := re.match(r"(mismatched|extraneous) input '(.*)' expecting (.*)\Z", detail, re.S):
        found, expected = m.group(2), _expected(m.group(3))
        if found == "<EOF>":
            return f"the expression ends too early; expected {expected}"
        return f"unexpected {_quote(found)}; expected {expected}"
    if m := re.match(r"missing '(.*)' at '(.*)'\Z", detail, re.S):
        closing, found = m.group(1), m.group(2)
        where = "at the end of the expression" if found == "<EOF>" else f"before {_quote(found)}"
        return f"missing {_quote(closing)} {where}"
    if m := re.match(r"no viable alternative at input '(.*)'\Z", detail, re.S):
        return f"unexpected {_quote(m.group(1)[-1:] or m.group(1))}"
    if "ParseError" in detail or "recursion" in detail.lower():
        return "the expression is nested too deeply to parse"
    return detail.splitlines()[0] if detail else "cannot parse the expression"


def _expected(alternatives: str) -> str:
    names = re.findall(r"'((?:[^'\\]|\\.)*)'|([A-Z_]+|<EOF>)", alternatives)
    flat = {a or b for a, b in names}
    if flat & _VALUE_TOKENS:
        return "a value, a name or an opening bracket"
    if flat == {"<EOF>"}:
        return "the end of the expression (is an operator missing?)"
    shown = sorted(_quote(x) for x in flat if x != "<EOF>")
    return " or ".join(shown) if shown else "something else"


def _quote(text: str) -> str:
    return "the end of the expression" if text == "<EOF>" else f"'{text}'"


def describe_runtime_error(exc: BaseException) -> str:
    """One line saying why an evaluation failed, for a decision's reasons."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if isinstance(exc, KeyError):
        return f"no such field '{text}'"
    if isinstance(exc, ZeroDivisionError):
        return "modulo by zero" if "modulo" in text else "division by zero"
    if isinstance(exc, IndexError):
        return text  # "index out of bounds: 10"
    if isinstance(exc, OverflowError):
        if m := re.match(r"Arithmetic overflow in '(\w+)'", text):
            return f"overflow in {_OPERATION.get(m.group(1), m.group(1))}"
        if m := re.match(r"Function '(\w+)' error", text):
            return f"value out of range in {m.group(1)}()"
        return "numeric overflow"
    if isinstance(exc, TypeError):
        if m := re.match(r"Unsupported operation: (\w+) (\S+) (\w+)", text):
            return f"no such overload: {m.group(1)} {m.group(2)} {m.group(3)}"
        if m := re.match(r"Unexpected type: got '(\w+)', want '([\w|]+)'", text):
            return f"wrong type: got {m.group(1)}, want {m.group(2).replace('|', ' or ')}"
        return "no such overload: the operand types do not fit (CEL does not convert types)"
    if m := re.match(r"Undefined variable or function: '(\w+)'", text):
        return f"no such overload: {m.group(1)}() does not accept these argument types"
    if m := re.match(r"Function '(\w+)' error: (.*?)(?:\. Check function arguments.*)?\Z", text, re.S):
        return f"{m.group(1)}(): {' '.join(m.group(2).split())}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:200]


_OPERATION = {"add": "addition", "sub": "subtraction", "mul": "multiplication",
              "div": "division", "rem": "remainder", "neg": "negation"}  # fmt: skip
