"""Load-time checks on what an expression refers to and how deeply it nests.

Two passes over the tokens of one source:

1. `check_nesting` runs *before* the engine parses anything: the engine's parser is recursive,
   so brackets nested past a few dozen levels cost it stack and give an unreadable error.
2. `check_references` runs after the engine has parsed the source, so the source is known to be
   well formed. It walks the tokens with a stack of bracket frames; a frame opened by a
   comprehension macro (`list.all(x, ...)`) binds its first argument until the frame closes.
   Every other bare identifier must be one of the five roots Warden provides. The engine's own
   `functions()` list is checked first (a macro written with the wrong arguments shows up there
   as a call to a function named `all`, `map`, ...), and its `variables()` list last, so a name
   the tokenizer missed still cannot slip through (it is reported at the start of the source).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from invariants.errors import CelCompileError
from invariants.lexer import Token
from invariants.limits import Limits

#: The variables every activation provides.
ROOT_VARIABLES = frozenset({"params", "evidence", "agent", "context", "now"})

#: Type names the engine resolves by itself, for `type(params.amount) == int`.
TYPE_NAMES = frozenset(
    {"int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type"}
)

#: Macros that loop over a list or map and bind a variable.
COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})

#: Functions the engine implements natively (checked against the engine in the test suite).
FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches",
        "int", "uint", "double", "string", "bytes", "dyn", "type", "timestamp", "duration",
        "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    }
)  # fmt: skip

_LITERAL_WORDS = frozenset({"true", "false", "null", "in"})
_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def check_nesting(tokens: list[Token], limits: Limits) -> None:
    """Refuse brackets nested deeper than `limits.max_nesting_depth`, at the offending one."""
    depth = 0
    for token in tokens:
        if token.kind == "open":
            depth += 1
            if depth > limits.max_nesting_depth:
                raise CelCompileError(
                    f"brackets are nested more than {limits.max_nesting_depth} deep; "
                    "split the condition into simpler parts",
                    token.line,
                    token.column,
                )
        elif token.kind == "close" and depth:
            depth -= 1


def check_references(
    tokens: list[Token], variables: Iterable[str], functions: Iterable[str], limits: Limits
) -> frozenset[str]:
    """Check names and comprehension nesting; return the root variables the source reads."""
    for name in sorted(set(functions)):
        if not _NAME.match(name) or name in FUNCTIONS:
            continue  # operators (`_+_`, `@in`, ...) and known functions
        line, column, namespace = _call_position(tokens, name, name not in COMPREHENSIONS)
        if namespace:
            message = f"unknown function '{namespace}.{name}' (extension libraries are not available)"
        elif name in COMPREHENSIONS:
            message = (
                f"{name}() takes a variable name and an expression, "
                f"as in params.items.{name}(item, item.amount > 0)"
            )
        else:
            message = f"unknown function '{name}'{_suggest(name, FUNCTIONS)}"
        raise CelCompileError(message, line, column)
    roots, binders = _walk(tokens, limits)
    for name in sorted(set(variables)):
        if name not in ROOT_VARIABLES and name not in TYPE_NAMES and name not in binders:
            raise CelCompileError(_unknown_variable(name), 1, 1)
    return roots


def _walk(tokens: list[Token], limits: Limits) -> tuple[frozenset[str], frozenset[str]]:
    """Resolve every bare identifier against the comprehension scopes open around it."""
    frames: list[str | None] = []  # per open bracket: the name a macro binds there, or None
    binder_at: set[int] = set()
    binders: set[str] = set()
    roots: set[str] = set()
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if token.kind == "open":
            bound = macro_binding(tokens, i)
            if bound is not None:
                depth = sum(1 for f in frames if f is not None) + 1
                if depth > limits.max_comprehension_nesting:
                    macro = tokens[i - 1]
                    raise CelCompileError(
                        f"comprehensions (all, exists, exists_one, map, filter) are nested "
                        f"more than {limits.max_comprehension_nesting} deep",
                        macro.line,
                        macro.column,
                    )
                binder_at.add(i + 1)
                binders.add(bound)
            frames.append(bound)
        elif token.kind == "close":
            if frames:
                frames.pop()
        elif token.kind == "ident" and i not in binder_at:
            if i > 0 and tokens[i - 1].kind == "dot":
                continue  # a field selection or a method name
            if i < last and tokens[i + 1].text == "(":
                continue  # a function call: checked against the engine's function list
            name = token.text
            if name in _LITERAL_WORDS or name in TYPE_NAMES or name in frames:
                continue
            if name not in ROOT_VARIABLES:
                raise CelCompileError(_unknown_variable(name), token.line, token.column)
            roots.add(name)
    return frozenset(roots), frozenset(binders)


def macro_binding(tokens: list[Token], i: int) -> str | None:
    """The variable bound by a comprehension whose argument list opens at `tokens[i]`."""
    if tokens[i].text != "(" or i < 2 or i + 2 >= len(tokens):
        return None
    name, dot, var, comma = tokens[i - 1], tokens[i - 2], tokens[i + 1], tokens[i + 2]
    if (
        name.kind == "ident"
        and name.text in COMPREHENSIONS
        and dot.kind == "dot"
        and var.kind == "ident"
        and comma.kind == "comma"
    ):
        return var.text
    return None


def _call_position(tokens: list[Token], name: str, namespaced: bool) -> tuple[int, int, str]:
    """Where `name(` is first called; with `namespaced`, also the namespace of `ns.name(`
    written on a bare name that is not a root (`math.abs(...)`), positioned at the namespace."""
    for i, token in enumerate(tokens[:-1]):
        if token.kind == "ident" and token.text == name and tokens[i + 1].text == "(":
            if namespaced and i >= 2 and tokens[i - 1].kind == "dot" and tokens[i - 2].kind == "ident":
                receiver = tokens[i - 2]
                bare = i == 2 or tokens[i - 3].kind != "dot"
                if bare and receiver.text not in ROOT_VARIABLES and receiver.text not in TYPE_NAMES:
                    return receiver.line, receiver.column, receiver.text
            return token.line, token.column, ""
    return 1, 1, ""


def _unknown_variable(name: str) -> str:
    roots = ", ".join(sorted(ROOT_VARIABLES))
    return f"unknown variable '{name}'{_suggest(name, ROOT_VARIABLES)}; expressions read {roots}"


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean '{close[0]}'?)" if close else ""
