"""The errors the invariants layer raises, translated at its boundary.

    ValueError
      ├── CelCompileError    an expression that cannot become a Program (syntax, unknown name,
      │                      over a load-time limit); carries a 1-based line and column
      └── PacketLimitError   packet data that cannot become an Activation (not JSON-like, too
                             deep, too big); carries the path of the offending value

Nothing above this package sees the engine's own exceptions: a data problem during evaluation is
not an exception at all but an `Outcome` whose verdict is ERROR.
"""

from __future__ import annotations


class CelCompileError(ValueError):
    """A CEL expression that does not compile, or breaks a load-time limit.

    `line` and `column` are 1-based and count characters within the expression's own source,
    so a caller that embeds the expression in a larger file can shift them to file positions.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message, line, column)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


class PacketLimitError(ValueError):
    """Packet data that Warden refuses to evaluate: not JSON-like, too deep or too big.

    `path` names the offending value (`evidence.items[3].name`), or is empty when the whole
    packet is at fault.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message, path)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message
