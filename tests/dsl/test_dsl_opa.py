"""The `opa` statement: `opa [NAME] "path" [reads FIELD, ...]`, parsed, checked and located."""

from __future__ import annotations

import pytest

from dsl import PolicyCompileError, compile_sources
from dsl.model import Delegation, Span

HEAD = 'policy refunds {\n  applies to tool "stripe.refund"\n  risk L1\n'


def _delegations(body: str) -> tuple[Delegation, ...]:
    return compile_sources({"r.policy": HEAD + body + "}\n"}).policies[0].delegations


def _errors(body: str, more: str = "") -> list[tuple[str, str, int, int]]:
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"r.policy": HEAD + body + "}\n" + more})
    return [(d.code, d.span.file, d.span.line, d.span.column) for d in caught.value.diagnostics]


def test_a_bare_statement_reads_the_params_and_the_agent() -> None:
    [d] = _delegations('  opa "warden/refunds/allow"\n')
    assert d == Delegation("opa_1", "warden/refunds/allow", (("agent",), ("params",)), Span("r.policy", 4, 3))
    assert d.id == "opa:warden/refunds/allow"


def test_a_named_statement_with_reads() -> None:
    [d] = _delegations('  opa finance "warden/refunds/decision"\n'
                       "    reads params.amount, evidence.risk_score, context.region\n")
    assert d.name == "finance"
    assert d.reads == (("context", "region"), ("evidence", "risk_score"), ("params", "amount"))


def test_a_whole_root_covers_its_fields() -> None:
    [d] = _delegations('  opa "a/b" reads params.amount, params, params, agent.name\n')
    assert d.reads == (("agent", "name"), ("params",))


def test_unnamed_statements_are_numbered_and_their_names_are_claimed() -> None:
    names = [d.name for d in _delegations('  opa "a/b"\n  opa "a/c"\n')]
    assert names == ["opa_1", "opa_2"]
    assert _errors('  opa dup "a/b"\n  deny dup when true because "x"\n') == [
        ("duplicate_name", "r.policy", 5, 8)]


def test_a_statement_after_a_condition_is_not_read_as_cel() -> None:
    [d] = _delegations('  deny big when params.amount > 1\n    because "big"\n  opa "a/b"\n')
    assert d.path == "a/b"


@pytest.mark.parametrize("path, column", [
    ("warden.refunds.allow", 7), ("/warden/allow", 7), ("warden//allow", 7), ("warden/re-funds", 7),
    ("", 7), ("warden/allow/", 7),
])
def test_a_path_that_is_not_an_opa_data_path_is_located(path: str, column: int) -> None:
    assert _errors(f'  opa "{path}"\n') == [("bad_opa_path", "r.policy", 4, column)]


def test_a_read_outside_the_packet_is_located() -> None:
    assert _errors('  opa "a/b" reads params, packet_id, evidence.x\n') == [
        ("unknown_opa_read", "r.policy", 4, 27)]


def test_one_path_must_read_the_same_fields_everywhere() -> None:
    other = 'policy more {\n  applies to tool "stripe.refund"\n  opa "a/b" reads params\n}\n'
    assert _errors('  opa "a/b" reads params, evidence.x\n', other) == [
        ("opa_reads_differ", "r.policy", 8, 3)]


def test_a_statement_without_a_path_is_located_and_explained() -> None:
    assert _errors("  opa finance\n") == [("opa_missing_path", "r.policy", 4, 14)]


def test_reads_without_fields_is_located_and_explained() -> None:
    assert _errors('  opa "a/b" reads\n') == [("opa_reads_syntax", "r.policy", 4, 18)]


def test_the_digest_still_covers_the_file_bytes() -> None:
    one = compile_sources({"r.policy": HEAD + '  opa "a/b"\n}\n'}).digest
    two = compile_sources({"r.policy": HEAD + '  opa "a/c"\n}\n'}).digest
    assert one != two and one.startswith("sha256:")
