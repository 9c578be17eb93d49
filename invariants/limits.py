"""Bounds on the work one expression and one packet may cause.

Expressions come from reviewed policy files and are bounded at load; packets come from agents
and are bounded when their activation is built. Together they bound evaluation: with the
defaults, the worst expression (two nested comprehensions over the largest list a packet may
hold) runs about a million loop steps, which the Rust engine does in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Past roughly 20,000 operands in one chain (`1 + 1 + ...`) the engine's recursive evaluator
#: overflows the native stack and takes the process down; keep every accepted source far below.
HARD_MAX_EXPRESSION_LENGTH = 16_384

#: The engine's parser gives up (with an unhelpful message) somewhere under 100 nested brackets.
HARD_MAX_NESTING_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Load-time limits (expression) and activation limits (packet data).

    Every field is an inclusive maximum.
    """

    max_expression_length: int = 4096  # characters in one expression's source
    max_nesting_depth: int = 24  # open (), [] and {} at once
    max_comprehension_nesting: int = 2  # all/exists/exists_one/map/filter inside each other
    max_data_depth: int = 16  # containers inside containers, counting params itself as 1
    max_data_bytes: int = 65_536  # approximate JSON size of params+evidence+agent+context
    max_collection_items: int = 1_000  # entries in any one list or object of the packet

    def __post_init__(self) -> None:
        checks = {
            "max_expression_length": (1, HARD_MAX_EXPRESSION_LENGTH),
            "max_nesting_depth": (1, HARD_MAX_NESTING_DEPTH),
            "max_comprehension_nesting": (0, 8),
            "max_data_depth": (1, 256),
            "max_data_bytes": (2, 1 << 30),
            "max_collection_items": (0, 1 << 24),
        }
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"Limits.{name} must be an integer in {low}..{high}, not {value!r}")


DEFAULT_LIMITS = Limits()
