"""Arbitrary input never raises anything but PolicyCompileError (and compiles or not, quietly)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import PolicyCompileError, compile_sources
from dsl.model import PolicySet

WORDS = [
    "policy", "role", "applies", "to", "tool", "in", "matching", "risk", "mode", "invariant",
    "escalate", "deny", "require", "approval", "from", "count", "when", "because", "expires",
    "min_autonomy", "L1", "L2", "L9", "A3", "A7", "shadow", "enforce", "4h", "0h", "2", "0",
    "p", "q", "approver", "founder", "params.x", ">", "1", "&&", "||", "(", ")", "[", "]",
    "{", "}", ",", ":", '"a.b"', '"stripe.*"', '"because"', '"x', "'y'", "#c", "\n", "\n",
    "\n", " ", "\\", '"""', "params.count", "true", "false", "\t", "\r\n", "-", ".", "*",
]

policyish = st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join)


def _compiles_or_explains(text: str | bytes) -> None:
    try:
        result = compile_sources({"f.policy": text})
    except PolicyCompileError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert d.severity == "error" and d.span.line >= 1 and d.span.column >= 1
            d.render()
        return
    assert isinstance(result, PolicySet)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _compiles_or_explains(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    _compiles_or_explains(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policyish)
def test_policy_like_token_soup(text: str) -> None:
    _compiles_or_explains(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policyish)
def test_token_soup_inside_a_valid_policy(body: str) -> None:
    _compiles_or_explains('policy p {\n  applies to tool "a.b"\n  ' + body + "\n}\n")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=4))
def test_arbitrary_file_names(files: dict[str, str]) -> None:
    try:
        compile_sources(files)
    except PolicyCompileError as err:
        assert err.diagnostics
