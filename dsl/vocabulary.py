"""The shared words of the policy language: risk tiers, autonomy levels and the built-in roles.

A policy raises an action's `Risk`, asks for a minimum `Autonomy` and names the roles that must
approve; the engine compares those with the agent's autonomy, and the gateway grants the same
roles to people. This is their one definition. `dsl.model` re-exports it, so
`from dsl.model import Risk, Autonomy, BUILTIN_ROLES` reads the same names.
"""

from __future__ import annotations

from enum import IntEnum


class Risk(IntEnum):
    """Risk tier of an action. Ordered: L0 < L1 < L2 < L3."""

    L0 = 0
    L1 = 1
    L2 = 2
    L3 = 3

    @classmethod
    def parse(cls, text: str) -> "Risk":
        return cls[text]

    def __str__(self) -> str:
        return self.name


class Autonomy(IntEnum):
    """Autonomy level an agent's owner grants it. Ordered: A0 < A1 < ... < A4."""

    A0 = 0
    A1 = 1
    A2 = 2
    A3 = 3
    A4 = 4

    @classmethod
    def parse(cls, text: str) -> "Autonomy":
        return cls[text]

    def __str__(self) -> str:
        return self.name


#: The roles every policy set knows without declaring them, in a stable order (for listings,
#: forms and help texts). Policy files may declare more.
PEOPLE_ROLES: tuple[str, ...] = ("founder", "approver", "auditor", "viewer")

#: The same roles as a set, for membership checks.
BUILTIN_ROLES: frozenset[str] = frozenset(PEOPLE_ROLES)
