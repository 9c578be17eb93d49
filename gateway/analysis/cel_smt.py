"""The CEL subset that policies use, translated into SMT (Z3), errors included.

Every expression becomes a `Term`: its value, and `err`, the condition under which the engine
answers ERROR instead (a missing field, a type mismatch, an int overflow). Rules read those as
the engine does (`gateway.engine.evaluation`): an ERROR is a violation, and `&&`/`||` absorb an
error when the other side decides (CEL's commutative short-circuit).

What is modelled, and how (see ARCHITECTURE.md, "Policy analysis", for the limits):

- params of a catalog tool have the kinds and ranges of its schema (`gateway.analysis.schema`);
  an optional field may be absent (reading it is an ERROR, `has()` is false), and an integer
  field may arrive as a whole double (`1999.0`, which the params model accepts), so every number
  carries `dbl`, whether the engine holds it as a double: int and double compare by value, but
  arithmetic mixing them is an ERROR.
- evidence and context are untyped JSON. Each path read gets `present` (has()) and `typed`
  (present with the kind policies use it with, inferred from the comparisons it appears in,
  `infer_kinds`); a path of another kind compares unequal to everything and makes ordering,
  arithmetic and logic an ERROR; a path read with a kind that cannot be inferred, or with two
  kinds, is unsupported. Nested paths need their parent to be an object.
- numbers are reals: double literals keep their exact binary value, int overflow is an ERROR,
  the result of a double operation is the exact one give or take half an ulp (free in between,
  so a proof holds whichever way the engine rounds), and a double division by zero is left
  unconstrained (the engine gives an infinity).
- strings: equality, `in` a list, `+`, `startsWith`, `endsWith`, `contains`; a params string
  fits its schema's length and, when it is a simple one, its pattern (`patterns`).
- lists: `size()` of a list param and list literals on the right of `in`.

Anything else raises `Unsupported` (`matches`, comprehensions, `now`, maps, int division, ...):
the rule it appears in is then unconstrained (any outcome), which keeps every proof sound, and
the rule is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import z3

from gateway.analysis.cel_ast import Call, Cond, ListLit, Lit, Node, Op, Path, Unsupported
from gateway.analysis.patterns import regex
from gateway.analysis.schema import Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TRUE = z3.BoolVal(True)
FALSE = z3.BoolVal(False)

#: Kinds of a term: bool, num (int or double), string, list, map; "missing" never has a value.
_PARAM_KINDS = {"int": "num", "number": "num", "string": "string", "bool": "bool",
                "list": "list"}
#: Examples prefer numbers below these (params, then evidence and context: days, scores,
#: ratios); a preference only: a query that needs more gets more.
_READABLE = 10_000_000
_SMALL = 1_000
#: A double operation's rounding error: relative (half an ulp), and absolute near zero.
_HALF_ULP = z3.RealVal(f"1/{2**53}")
_TINY = z3.RealVal(f"1/{2**1074}")
#: The functions translated, by the kind they return.
_KNOWN_CALLS = {"size": "num", "double": "num", "startsWith": "bool", "endsWith": "bool",
                "contains": "bool"}
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


@dataclass(frozen=True)
class Term:
    kind: str
    val: Any
    err: Any  # z3 Bool: the engine answers ERROR
    typed: Any = TRUE  # z3 Bool: the value is of `kind` (False: a JSON value of another kind)
    dbl: Any = FALSE  # num: held as a double
    inferred: bool = False  # an untyped path whose kind was inferred
    items: tuple[Term, ...] = ()


def real(value: int | float) -> Any:
    """An exact real for a number literal (a double keeps its binary value: 0.3 is not 3/10)."""
    fraction = Fraction(value)
    return z3.RealVal(f"{fraction.numerator}/{fraction.denominator}")


# ------------------------------------------------------------------------------ kinds


def static_kind(node: Node, kind_of: Callable[[Path], str | None]) -> str | None:
    """The kind `node` evaluates to, when it can be told without the data."""
    if isinstance(node, Lit):
        return {bool: "bool", int: "num", float: "num", str: "string"}[type(node.value)]
    if isinstance(node, Path):
        return kind_of(node)
    if isinstance(node, ListLit):
        return "list"
    if isinstance(node, Call):
        return {"has": "bool", "size": "num", "double": "num", "startsWith": "bool",
                "endsWith": "bool", "contains": "bool", "matches": "bool"}.get(node.name)
    if isinstance(node, Cond):
        return static_kind(node.then, kind_of) or static_kind(node.other, kind_of)
    if node.op in ("!", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "in"):
        return "bool"
    kinds = [static_kind(a, kind_of) for a in node.args]
    return next((k for k in kinds if k is not None), None)


def infer_kinds(nodes: Iterable[Node], is_untyped: Callable[[Path], bool],
                typed_kind: Callable[[Path], str | None]) -> dict[str, set[str]]:
    """For each untyped path (evidence, context, params of a tool without a schema), the kinds
    the expressions use it with: compared with a string, it is a string; read with fields, an
    object; an operand of `&&`, a bool. More than one kind is a conflict (`Env` refuses it)."""
    found: dict[str, set[str]] = {}
    nodes = list(nodes)

    def kind_of(path: Path) -> str | None:
        if is_untyped(path):
            kinds = found.get(str(path), set())
            return next(iter(kinds)) if len(kinds) == 1 else None
        return typed_kind(path)

    def hint(node: Node, kind: str | None) -> None:
        if kind is not None and isinstance(node, Path) and is_untyped(node) and node.fields:
            found.setdefault(str(node), set()).add(kind)

    def walk(node: Node) -> None:
        if isinstance(node, Lit):
            return
        if isinstance(node, Path):
            if is_untyped(node):
                for end in range(1, len(node.fields)):
                    hint(Path(node.root, node.fields[:end]), "map")
            return
        if isinstance(node, ListLit):
            for item in node.items:
                walk(item)
            return
        if isinstance(node, Cond):
            hint(node.test, "bool")
            hint(node.then, static_kind(node.other, kind_of))
            hint(node.other, static_kind(node.then, kind_of))
            for child in (node.test, node.then, node.other):
                walk(child)
            return
        if isinstance(node, Call):
            if node.name == "double":
                hint(node.args[0] if node.args else node, "num")
            elif node.name in ("startsWith", "endsWith", "contains") and node.target is not None:
                hint(node.target, "string")
                for arg in node.args:
                    hint(arg, "string")
            for child in (*node.args, *((node.target,) if node.target is not None else ())):
                walk(child)
            return
        _hint_op(node, hint, kind_of)
        for arg in node.args:
            walk(arg)

    for _ in range(3):  # a path's kind may come from another path's: a few rounds settle it
        for node in nodes:
            walk(node)
    return found


def _hint_op(node: Op, hint: Callable[[Node, str | None], None],
             kind_of: Callable[[Path], str | None]) -> None:
    if node.op in ("!", "&&", "||"):
        for arg in node.args:
            hint(arg, "bool")
    elif node.op == "neg":
        hint(node.args[0], "num")
    elif node.op == "in":
        right = node.args[1]
        if isinstance(right, ListLit):
            kinds = {static_kind(i, kind_of) for i in right.items}
            if len(kinds) == 1:
                hint(node.args[0], kinds.pop())
    elif len(node.args) == 2:
        left, right = node.args
        hint(left, static_kind(right, kind_of))
        hint(right, static_kind(left, kind_of))


# ------------------------------------------------------------------------------ variables


class Env:
    """The SMT variables of one packet: created on first read, named `prefix` + path.

    Copies of a packet (the same tool, other names) are compared variable by variable through
    `variables`, so that two packets can be made to differ in one field only.
    """

    def __init__(self, prefix: str, fields: Mapping[str, Field] | None,
                 kinds: Mapping[str, set[str]]) -> None:
        self.prefix = prefix
        self.fields = fields
        self.kinds = kinds
        self.autonomy = z3.Int(f"{prefix}autonomy")
        self.constraints: list[Any] = [self.autonomy >= 0, self.autonomy <= 4]
        self.variables: dict[str, Any] = {}  # name → z3 var (the packet's content)
        self.params: dict[str, Term] = {}  # params field → term (present or not)
        self.present: dict[str, Any] = {}  # path or params field → present
        self.paths: dict[str, Term] = {}  # untyped path → term
        self.inexact = False  # a double operation's rounding is left free somewhere
        self.rounding: dict[int, Any] = {}  # an operation's node id → its rounding error
        self.nice: list[Any] = []  # what a readable example prefers (ints as ints, ...)
        self.small: list[Any] = []  # and better still (small evidence numbers)

    def _var(self, name: str, make: Callable[[str], Any]) -> Any:
        var = self.variables.get(name)
        if var is None:
            var = make(f"{self.prefix}{name}")
            self.variables[name] = var
        return var

    def untyped(self, path: Path) -> bool:
        return path.root in ("evidence", "context") or (
            path.root == "params" and self.fields is None)

    def typed_kind(self, path: Path) -> str | None:
        if path.root == "params" and self.fields is not None and len(path.fields) == 1:
            field = self.fields.get(path.fields[0])
            return None if field is None else _PARAM_KINDS.get(field.kind)
        if path.root == "agent" and path.fields == ("autonomy",):
            return "string"
        return None

    # -- params of a catalog tool

    def param(self, name: str) -> Term:
        term = self.params.get(name)
        if term is not None:
            return term
        assert self.fields is not None
        field = self.fields.get(name)
        if field is None:  # not in the schema: the engine has no such field
            term = Term("missing", FALSE, TRUE, FALSE)
            self.params[name] = term
            return term
        if field.kind not in _PARAM_KINDS:
            raise Unsupported(f"params.{name} is an object")
        present = TRUE if field.required else self._var(f"params.{name}?", z3.Bool)
        self.present[f"params.{name}"] = present
        term = replace(self._field_value(field), err=z3.Not(present))
        self.params[name] = term
        return term

    def _field_value(self, field: Field) -> Term:
        name = f"params.{field.name}"
        c = self.constraints
        if field.kind in ("int", "number"):
            whole = field.kind == "int"
            number = self._var(name, z3.Int if whole else z3.Real)
            value = z3.ToReal(number) if whole else number
            dbl = self._var(f"{name}:double", z3.Bool)
            if field.bounds[0] is not None:
                c.append(value >= real(field.bounds[0]))
            if field.bounds[1] is not None:
                c.append(value <= real(field.bounds[1]))
            if not whole:
                c.append(z3.Or(dbl, z3.IsInt(value)))
            self.nice += [z3.Not(dbl) if whole else dbl, value <= _READABLE, value >= -_READABLE]
            return Term("num", value, FALSE, dbl=dbl)
        if field.kind == "string":
            text = self._var(name, z3.String)
            if field.lengths[0] is not None:
                c.append(z3.Length(text) >= field.lengths[0])
            if field.lengths[1] is not None:
                c.append(z3.Length(text) <= field.lengths[1])
            if field.enum:
                c.append(z3.Or([text == z3.StringVal(e) for e in field.enum]))
            shape = regex(field.pattern) if field.pattern else None
            if shape is not None:
                c.append(z3.InRe(text, shape))
            return Term("string", text, FALSE)
        if field.kind == "bool":
            return Term("bool", self._var(name, z3.Bool), FALSE)
        size = self._var(f"size({name})", z3.Int)
        c.append(size >= (field.lengths[0] or 0))
        if field.lengths[1] is not None:
            c.append(size <= field.lengths[1])
        return Term("list", size, FALSE)

    # -- untyped JSON: evidence, context, params of a tool without a schema

    def path_present(self, path: Path) -> Any:
        key = str(path)
        present = self.present.get(key)
        if present is None:
            present = self._var(f"{key}?", z3.Bool)
            self.present[key] = present
            if len(path.fields) > 1:  # a field exists only inside an object
                parent = self.path(Path(path.root, path.fields[:-1]), "map")
                self.constraints.append(z3.Implies(present, parent.typed))
        return present

    def path(self, path: Path, kind: str | None = None) -> Term:
        key = str(path)
        term = self.paths.get(key)
        if term is not None:
            return term
        kinds = self.kinds.get(key, set())
        if kind is None:
            if len(kinds) > 1:
                raise Unsupported(f"{key} is used as {' and as '.join(sorted(kinds))}")
            if not kinds:
                raise Unsupported(f"the kind of {key} cannot be inferred from its use")
            kind = next(iter(kinds))
        elif kinds - {kind}:
            raise Unsupported(f"{key} is used as {' and as '.join(sorted(kinds | {kind}))}")
        present = self.path_present(path)
        typed = self._var(f"{key}:{kind}", z3.Bool)
        self.constraints.append(z3.Implies(typed, present))
        self.nice.append(present == typed)
        dbl = FALSE
        if kind == "num":
            value = self._var(key, z3.Real)
            dbl = self._var(f"{key}:double", z3.Bool)
            self.nice += [value <= _READABLE, value >= -_READABLE]
            self.small += [value <= _SMALL, value >= -_SMALL]
            self.constraints += [z3.Or(dbl, z3.IsInt(value)),
                                 z3.Implies(z3.Not(dbl), z3.And(value >= INT64_MIN,
                                                                value <= INT64_MAX))]
        elif kind == "string":
            value = self._var(key, z3.String)
        elif kind == "bool":
            value = self._var(key, z3.Bool)
        else:
            value = FALSE  # an object: only its fields are read
        term = Term(kind, value, z3.Not(present), typed, dbl, inferred=True)
        self.paths[key] = term
        return term


# ------------------------------------------------------------------------------ translation


class Translator:
    """CEL trees → Terms over one `Env`. `fresh` names the unconstrained variables it needs."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self._fresh = 0

    def fresh(self, make: Callable[[str], Any]) -> Any:
        self._fresh += 1
        return make(f"{self.env.prefix}~{self._fresh}")

    def condition(self, node: Node) -> tuple[Any, Any]:
        """(holds, err) of a rule's condition: true, false or ERROR (a non-bool is an ERROR)."""
        term = self.term(node)
        if term.kind != "bool":
            return FALSE, TRUE
        return z3.And(term.typed, term.val), z3.Or(term.err, z3.Not(term.typed))

    def term(self, node: Node) -> Term:  # noqa: C901 - one case per node kind
        if isinstance(node, Lit):
            value = node.value
            if isinstance(value, bool):
                return Term("bool", z3.BoolVal(value), FALSE)
            if isinstance(value, str):
                return Term("string", z3.StringVal(value), FALSE)
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                raise Unsupported(f"the integer {value} is out of range")
            return Term("num", real(value), FALSE, dbl=z3.BoolVal(isinstance(value, float)))
        if isinstance(node, Path):
            return self._path(node)
        if isinstance(node, ListLit):
            items = tuple(self.term(i) for i in node.items)
            return Term("list", z3.IntVal(len(items)), z3.Or(FALSE, *(i.err for i in items)),
                        items=items)
        if isinstance(node, Cond):
            return self._cond(node)
        if isinstance(node, Call):
            return self._call(node)
        return self._op(node)

    def _path(self, path: Path) -> Term:
        env = self.env
        if path.root == "params" and env.fields is not None:
            if len(path.fields) != 1:
                raise Unsupported(f"{path}: fields inside a param")
            return env.param(path.fields[0])
        if path.root == "agent":
            if path.fields != ("autonomy",):
                raise Unsupported(f"{path}")
            names = [z3.StringVal(f"A{level}") for level in range(5)]
            value = names[4]
            for level in range(3, -1, -1):
                value = z3.If(env.autonomy == level, names[level], value)
            return Term("string", value, FALSE)
        if path.root == "now" or not path.fields:
            raise Unsupported(f"reading {path}")
        return env.path(path)

    def _cond(self, node: Cond) -> Term:
        test = self.term(node.test)
        then, other = self.term(node.then), self.term(node.other)
        if test.kind != "bool" or then.kind != other.kind or then.kind in ("list", "map"):
            raise Unsupported("a conditional whose branches differ in kind")
        pick = test.val
        return Term(then.kind, z3.If(pick, then.val, other.val),
                    z3.Or(test.err, z3.Not(test.typed), z3.If(pick, then.err, other.err)),
                    z3.If(pick, then.typed, other.typed), z3.If(pick, then.dbl, other.dbl))

    def _call(self, node: Call) -> Term:
        name = node.name
        if name == "has" and node.target is None:
            path = node.args[0]
            assert isinstance(path, Path)
            return self._has(path)
        operands = [*node.args, *((node.target,) if node.target is not None else ())]
        if name in _KNOWN_CALLS and any(self.term(o).kind == "missing" for o in operands):
            return Term(_KNOWN_CALLS[name], FALSE, TRUE)  # a field the tool does not have
        if name == "size" and len(node.args) + (node.target is not None) == 1:
            arg = self.term(node.target if node.target is not None else node.args[0])
            if arg.kind != "list" or arg.inferred:
                raise Unsupported("size() of anything but a list param or literal")
            return Term("num", z3.ToReal(arg.val), arg.err)
        if name == "double" and node.target is None and len(node.args) == 1:
            arg = self.term(node.args[0])
            if arg.kind != "num":
                raise Unsupported("double() of anything but a number")
            if not arg.inferred:  # params: ints up to 2**53, which doubles hold exactly
                return Term("num", arg.val, arg.err, dbl=TRUE)
            # a string holding a number converts too: another kind gives any value or ERROR
            other = z3.Not(arg.typed)
            # and an int beyond 2**53 rounds
            value = self.rounded(arg.val, z3.Not(arg.dbl))
            return Term("num", z3.If(other, self.fresh(z3.Real), value),
                        z3.Or(arg.err, z3.And(other, self.fresh(z3.Bool))), dbl=TRUE)
        if name in ("startsWith", "endsWith", "contains") and node.target is not None \
                and len(node.args) == 1:
            target, arg = self.term(node.target), self.term(node.args[0])
            if target.kind != "string" or arg.kind != "string":
                raise Unsupported(f"{name}() of anything but strings")
            test = {"startsWith": z3.PrefixOf, "endsWith": z3.SuffixOf,
                    "contains": lambda a, b: z3.Contains(b, a)}[name]
            return Term("bool", test(arg.val, target.val), _errs(target, arg))
        raise Unsupported(f"the function {name}()")

    def _has(self, path: Path) -> Term:
        env = self.env
        if path.root == "params" and env.fields is not None:
            if len(path.fields) != 1:
                raise Unsupported(f"has({path})")
            field = env.fields.get(path.fields[0])
            if field is None:
                return Term("bool", FALSE, FALSE)
            if field.required:
                return Term("bool", TRUE, FALSE)
            env.param(path.fields[0])
            return Term("bool", env.present[str(path)], FALSE)
        if path.root not in ("params", "evidence", "context"):
            raise Unsupported(f"has({path})")
        present = env.path_present(path)
        if len(path.fields) == 1:
            return Term("bool", present, FALSE)
        parent = env.path(Path(path.root, path.fields[:-1]), "map")
        return Term("bool", present, z3.Not(parent.typed))

    def _op(self, node: Op) -> Term:
        op = node.op
        if op in ("&&", "||"):
            return _logic(op, self.term(node.args[0]), self.term(node.args[1]))
        if op == "!":
            arg = self.term(node.args[0])
            if arg.kind != "bool":
                return Term("bool", FALSE, TRUE)
            return Term("bool", z3.Not(arg.val), z3.Or(arg.err, z3.Not(arg.typed)))
        if op == "neg":
            arg = self.term(node.args[0])
            if arg.kind != "num":
                raise Unsupported("unary minus of anything but a number")
            return Term("num", -arg.val, z3.Or(arg.err, z3.Not(arg.typed)), dbl=arg.dbl)
        left, right = self.term(node.args[0]), self.term(node.args[1])
        if op in ("==", "!="):
            holds = _equal(left, right)
            return Term("bool", holds if op == "==" else z3.Not(holds), _errs(left, right))
        if op == "in":
            if not isinstance(node.args[1], ListLit):
                raise Unsupported("`in` anything but a list literal")
            return Term("bool", z3.Or(FALSE, *(_equal(left, item) for item in right.items)),
                        _errs(left, right))
        if op in _COMPARE:
            return self._order(op, left, right)
        return self._arith(op, left, right)

    def _order(self, op: str, left: Term, right: Term) -> Term:
        if "missing" in (left.kind, right.kind):
            return Term("bool", FALSE, TRUE)
        if left.kind != right.kind:
            return Term("bool", FALSE, TRUE)  # ordering across kinds is an ERROR
        if left.kind != "num":
            raise Unsupported(f"ordering of {left.kind}s")
        return Term("bool", _COMPARE[op](left.val, right.val), _typed_errs(left, right))

    def _arith(self, op: str, left: Term, right: Term) -> Term:
        if "missing" in (left.kind, right.kind):
            return Term("num", z3.RealVal(0), TRUE)
        if left.kind == right.kind == "string" and op == "+":
            return Term("string", z3.Concat(left.val, right.val), _typed_errs(left, right))
        if left.kind != "num" or right.kind != "num":
            raise Unsupported(f"`{op}` of {left.kind} and {right.kind}")
        errs = z3.Or(_typed_errs(left, right), left.dbl != right.dbl)
        if op == "/":
            if not (z3.is_true(z3.simplify(left.dbl)) and z3.is_true(z3.simplify(right.dbl))):
                raise Unsupported("division of values that may be ints (wrap them in double())")
            return Term("num", self.rounded(left.val / right.val, TRUE), errs, dbl=TRUE)
        if op == "%":
            raise Unsupported("the remainder operator")
        value = {"+": lambda: left.val + right.val, "-": lambda: left.val - right.val,
                 "*": lambda: left.val * right.val}[op]()
        overflow = z3.And(z3.Not(left.dbl), z3.Or(value < INT64_MIN, value > INT64_MAX))
        return Term("num", self.rounded(value, left.dbl), z3.Or(errs, overflow), dbl=left.dbl)

    def rounded(self, exact: Any, double: Any) -> Any:
        """`exact` as a double operation gives it: within half an ulp (a relative 2**-53, and
        2**-1074 near zero), left free in between. Ints (`double` false) stay exact."""
        if z3.is_false(z3.simplify(double)):
            return exact
        self.env.inexact = True
        # the same operation on the same values rounds the same way wherever it is written
        # (Z3 shares one node per distinct expression, so its id names the operation)
        error = self.env.rounding.get(exact.get_id())
        if error is None:
            error = self.fresh(z3.Real)
            self.env.rounding[exact.get_id()] = error
            size = z3.If(exact >= 0, exact, -exact)
            bound = size * _HALF_ULP + _TINY
            self.env.constraints += [error <= bound, error >= -bound]
        return exact + z3.If(double, error, z3.RealVal(0))


def _errs(*terms: Term) -> Any:
    return z3.Or(FALSE, *(t.err for t in terms))


def _typed_errs(*terms: Term) -> Any:
    return z3.Or(FALSE, *(z3.Or(t.err, z3.Not(t.typed)) for t in terms))


def _equal(left: Term, right: Term) -> Any:
    """CEL `==` when neither side is an ERROR: values of different kinds are unequal."""
    if left.kind != right.kind or left.kind in ("missing", "map"):
        return FALSE
    if left.kind == "list":
        raise Unsupported("comparing lists")
    if left.inferred and right.inferred:
        raise Unsupported("comparing two evidence or context values with each other")
    return z3.And(left.typed, right.typed, left.val == right.val)


def _logic(op: str, left: Term, right: Term) -> Term:
    """`&&` / `||` with CEL's error absorption: a deciding side wins over an ERROR."""
    def sides(term: Term) -> tuple[Any, Any]:
        if term.kind != "bool":
            return FALSE, FALSE
        ok = z3.And(z3.Not(term.err), term.typed)
        return z3.And(ok, term.val), z3.And(ok, z3.Not(term.val))

    left_true, left_false = sides(left)
    right_true, right_false = sides(right)
    if op == "&&":
        value = z3.And(left_true, right_true)
        decided = z3.Or(left_false, right_false, value)
    else:
        value = z3.Or(left_true, right_true)
        decided = z3.Or(value, z3.And(left_false, right_false))
    return Term("bool", value, z3.Not(decided))
