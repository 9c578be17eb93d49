"""CEL source → a small expression tree, through cel-python's Lark parser.

Only the shapes the analysis translates get a node of their own; anything else raises
`Unsupported` with the construct's name, so a rule outside the subset is reported as such and
never guessed at. The tree:

    Lit(value)                 int, float, str, bool (null, bytes and uint literals: unsupported)
    Path(root, fields)         params.amount, evidence.reconciliation.status, context.x
    Call(name, args, target)   has(path), size(x), double(x), x.startsWith(s), ...
    Op(op, args)               ! - && || == != < <= > >= in + - * / %
    Cond(test, then, other)    c ? a : b
    ListLit(items)             [1, 2, "a"]
"""

from __future__ import annotations

import ast as python_ast
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

ROOTS = ("params", "evidence", "context", "agent", "now")


class Unsupported(Exception):
    """A construct outside the subset the analysis translates (the message says which)."""


@dataclass(frozen=True)
class Lit:
    value: int | float | str | bool


@dataclass(frozen=True)
class Path:
    root: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join((self.root, *self.fields))


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Cond:
    test: Node
    then: Node
    other: Node


@dataclass(frozen=True)
class ListLit:
    items: tuple[Node, ...]


Node = Union[Lit, Path, Call, Op, Cond, ListLit]

_BINARY = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
    "relation_eq": "==", "relation_ne": "!=", "relation_in": "in",
    "addition_add": "+", "addition_sub": "-",
    "multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%",
}


@lru_cache(maxsize=1)
def _parser() -> Any:
    from celpy.celparser import CELParser

    return CELParser()


@lru_cache(maxsize=4096)
def parse(source: str) -> Node:
    """The tree of `source`; `Unsupported` for constructs outside the subset."""
    from celpy.celparser import CELParseError

    try:
        tree = _parser().parse(source)
    except CELParseError as exc:
        raise Unsupported(f"cel-python cannot parse it: {str(exc).splitlines()[0]}") from None
    return _convert(tree)


def _convert(tree: Any) -> Node:  # noqa: C901 - one case per grammar rule
    data = tree.data
    kids = tree.children
    if data in ("expr",):
        if len(kids) == 1 or kids[1] is None:
            return _convert(kids[0])
        return Cond(_convert(kids[0]), _convert(kids[1]), _convert(kids[2]))
    if data in ("conditionalor", "conditionaland"):
        if len(kids) == 1 or kids[0] is None:
            return _convert(kids[-1])
        op = "||" if data == "conditionalor" else "&&"
        return Op(op, (_convert(kids[0]), _convert(kids[1])))
    if data in ("relation", "addition", "multiplication"):
        if len(kids) == 1 or kids[0] is None:
            return _convert(kids[-1])
        left = kids[0]
        return Op(_BINARY[left.data], (_convert(left.children[0]), _convert(kids[1])))
    if data == "unary":
        if len(kids) == 1:
            return _convert(kids[0])
        return Op("!" if kids[0].data == "unary_not" else "neg", (_convert(kids[1]),))
    if data in ("member", "primary", "paren_expr"):
        return _convert(kids[0])
    if data == "member_dot":
        target = _convert(kids[0])
        name = str(kids[1])
        if isinstance(target, Path):
            return Path(target.root, (*target.fields, name))
        raise Unsupported(f"field .{name} of a computed value")
    if data == "member_dot_arg":
        if str(kids[1]) in _COMPREHENSIONS:
            raise Unsupported(f"the comprehension {kids[1]}()")
        args = _exprlist(kids[2]) if len(kids) > 2 else ()
        return Call(str(kids[1]), args, _convert(kids[0]))
    if data == "ident_arg":
        name = str(kids[0])
        args = _exprlist(kids[1]) if len(kids) > 1 else ()
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], Path) or not args[0].fields:
                raise Unsupported("has() of anything but a field path")
        return Call(name, args)
    if data == "ident":
        name = str(kids[0])
        if name not in ROOTS:
            raise Unsupported(f"identifier {name!r}")
        return Path(name, ())
    if data == "list_lit":
        return ListLit(_exprlist(kids[0]) if kids and kids[0] is not None else ())
    if data == "literal":
        return Lit(_literal(kids[0]))
    raise Unsupported(_WORDS.get(data, data.replace("_", " ")))


_COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_WORDS = {"member_index": "indexing with []", "map_lit": "map literals",
          "member_object": "message construction", "dot_ident": "qualified names",
          "dot_ident_arg": "qualified function names"}


def _exprlist(tree: Any) -> tuple[Node, ...]:
    if tree is None:
        return ()
    return tuple(_convert(child) for child in tree.children)


def _literal(token: Any) -> int | float | str | bool:
    kind = token.type
    text = str(token)
    if kind == "INT_LIT":
        return int(text, 0) if not text.lstrip("-").startswith("0x") else int(text, 16)
    if kind == "FLOAT_LIT":
        return float(text)
    if kind == "BOOL_LIT":
        return text == "true"
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return _string(text)
    raise Unsupported({"UINT_LIT": "unsigned integers", "NULL_LIT": "null",
                       "BYTES_LIT": "bytes"}.get(kind, kind))


def _string(text: str) -> str:
    raw = text[0] in "rR"
    body = text[1:] if raw else text
    quote = '"""' if body.startswith('"""') else body[0]
    inner = body[len(quote):-len(quote)]
    if raw or "\\" not in inner:
        return inner
    try:
        value = python_ast.literal_eval(quote + inner + quote)
    except (ValueError, SyntaxError):
        raise Unsupported(f"string escapes in {text}") from None
    if not isinstance(value, str):
        raise Unsupported(f"string escapes in {text}")
    return value
