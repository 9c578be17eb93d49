"""Risk tiers, autonomy levels and the built-in roles: one definition, read from two places."""

from __future__ import annotations

import dsl.model
import dsl.vocabulary
from dsl import compile_sources
from dsl.vocabulary import BUILTIN_ROLES, PEOPLE_ROLES, Autonomy, Risk


def test_the_model_hands_on_the_vocabulary_itself() -> None:
    for name in ("Risk", "Autonomy", "BUILTIN_ROLES", "PEOPLE_ROLES"):
        assert getattr(dsl.model, name) is getattr(dsl.vocabulary, name), name


def test_people_roles_are_the_builtin_roles_in_a_stable_order() -> None:
    assert PEOPLE_ROLES == ("founder", "approver", "auditor", "viewer")
    assert BUILTIN_ROLES == frozenset(PEOPLE_ROLES)


def test_tiers_and_levels_are_ordered_and_spelt_as_in_policies() -> None:
    assert [str(r) for r in sorted(Risk)] == ["L0", "L1", "L2", "L3"]
    assert [str(a) for a in sorted(Autonomy)] == ["A0", "A1", "A2", "A3", "A4"]
    assert Risk.parse("L2") is Risk.L2 and Autonomy.parse("A3") is Autonomy.A3


def test_every_policy_set_knows_the_builtin_roles() -> None:
    approvals = "".join(f'  require approval from role "{role}"\n' for role in PEOPLE_ROLES)
    policy_set = compile_sources({"r.policy": 'policy p {\n  applies to tool "t"\n'
                                  + approvals + "}\n"})
    assert policy_set.roles == BUILTIN_ROLES
    assert [a.role for a in policy_set.policies[0].approvals] == list(PEOPLE_ROLES)
