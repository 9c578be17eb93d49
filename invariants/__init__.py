"""CEL invariants and conditions: compile at load, evaluate per packet, within bounds.

    from invariants import compile_expression, activation, Outcome

    program = compile_expression("params.amount > 50000")       # CelCompileError(msg, line, col)
    act = activation(params=..., evidence=..., agent=..., context=..., now=aware_datetime)
    outcome = program.evaluate(act)                              # never raises on data problems
    outcome.verdict  # "PASS" | "FAIL" | "ERROR";  outcome.holds  # True | False | None

The engine is the Rust core of `common-expression-language` (`import cel`). What policies rely
on, as measured against it (the test suite pins each point):

- Numbers: int and double compare across types by value (`60000 > 50000.0`, `60000.0 == 60000`,
  `1 in [1.0]`, `[1] == [1.0]` are all true), as the current CEL spec says; arithmetic does not
  mix them (`1 + 2.5` is a "no such overload" ERROR). cel-python 0.5 refuses mixed comparisons.
- int arithmetic overflow is an ERROR, except unary minus: `-x` for x = -2**63 wraps silently.
  Double division by zero gives infinity, not an error; int division/modulo by zero is an ERROR.
- Equality across unrelated types is false, not an error (`1 == "1"`, `true == 1`); ordering
  across them (`"a" < 1`, `null < 1`) is an ERROR.
- A missing field (`params.nope`) is an ERROR "no such field 'nope'"; `has(params.nope)` is
  false; `false && params.nope` is false and `true || params.nope` is true in either operand
  order (CEL's commutative short-circuit absorbs errors).
- `size()` of a string counts UTF-8 bytes, not code points (`size("é") == 2`; the CEL spec and
  cel-python say 1).
- `matches` uses Rust's `regex` crate: linear time in the input, no backreferences or
  look-around, and a pattern whose compiled form passes 10 MB is an ERROR. With packet strings
  bounded by the 64 KiB packet limit, a regex cannot stall evaluation.
- `in` works on lists and on map keys, not on strings (`"a" in "abc"` is an ERROR; use
  `contains`). `contains`, `startsWith`, `endsWith` work on strings only.
- Timestamps: `now` is a UTC timestamp; `now - timestamp("2024-01-01T00:00:00Z") >
  duration("24h")` works; the getters (`getHours()`, ...) take no time-zone argument and answer
  in UTC. `duration("...")` beyond ~292 years clamps to the maximum rather than failing.
  `timestamp(int)` does not exist.
- Only the receiver forms of the comprehensions are macros (`list.all(x, p)`); `map` also takes
  a filter (`list.map(x, p, f)`). Two-variable comprehensions, `cel.bind`, optional syntax and
  the cel-go extension libraries (`math.*`, `strings.*`, `lowerAscii`, ...) are not available
  and are refused at load.
- Map literals with duplicate keys keep the last value instead of failing.
- The engine's recursive evaluator overflows the native stack (killing the process) somewhere
  past 20,000 operands in one chain; the length limit keeps every source far below that.
"""

from invariants.activation import Activation, activation
from invariants.errors import CelCompileError, PacketLimitError
from invariants.limits import DEFAULT_LIMITS, Limits
from invariants.program import FAIL, PASS, Outcome, Program, compile_expression
from invariants.reads import Needs

__all__ = [
    "DEFAULT_LIMITS",
    "FAIL",
    "PASS",
    "Activation",
    "CelCompileError",
    "Limits",
    "Needs",
    "Outcome",
    "PacketLimitError",
    "Program",
    "activation",
    "compile_expression",
]
