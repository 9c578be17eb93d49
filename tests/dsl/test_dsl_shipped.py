"""The policies shipped in `policies/` compile, cleanly, and the public surface stays put."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dsl
from dsl import PolicyCompileError, builtin_policy_dir, compile_policy_dir, load_builtin_policies

REPO = Path(__file__).resolve().parents[2]


def test_shipped_policies_compile_without_warnings() -> None:
    policy_set = compile_policy_dir(REPO / "policies")
    assert policy_set.policies
    assert policy_set.files == tuple(sorted(p.name for p in (REPO / "policies").glob("*.policy")))
    assert policy_set.warnings == ()


def test_builtin_policies_are_the_shipped_ones() -> None:
    assert builtin_policy_dir() == REPO / "policies"
    assert load_builtin_policies().digest == compile_policy_dir(REPO / "policies").digest


def test_every_condition_is_compiled() -> None:
    for policy in load_builtin_policies().policies:
        exprs = [i.expr for i in policy.invariants] + [e.when for e in policy.escalations]
        exprs += [d.when for d in policy.denies]
        exprs += [a.when for a in policy.approvals if a.when is not None]
        exprs += [r.when for r in policy.autonomy_rules if r.when is not None]
        assert all(e.program is not None for e in exprs), policy.name


def test_public_api() -> None:
    assert sorted(dsl.__all__) == sorted([
        "GRAMMAR_PATH", "MAX_ERRORS", "STAGES", "Diagnostic", "PolicyCompileError", "PolicySet",
        "builtin_policy_dir", "compile_policy_dir", "compile_sources", "grammar_bytes",
        "load_builtin_policies", "policy_digest",
    ])
    for name in dsl.__all__:
        assert hasattr(dsl, name)


def test_stage_table() -> None:
    assert [name for name, _ in dsl.STAGES] == [
        "Decode", "Parse", "BuildModel", "ResolveNames", "CompileExpressions", "Lint"]


def test_no_eval_or_exec_and_no_gateway_imports() -> None:
    for path in sorted((REPO / "dsl").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile"), f"{path.name}:{node.lineno}"
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("gateway"), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("gateway") for a in node.names), path.name


def test_policy_dir_problems_are_compile_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyCompileError, match="is not a directory"):
        compile_policy_dir(tmp_path / "missing")
    with pytest.raises(PolicyCompileError, match=r"no \.policy files in"):
        compile_policy_dir(tmp_path)
    (tmp_path / "notes.txt").write_text("policy ignored {")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.policy").write_text("policy ignored {")
    (tmp_path / "p.policy").write_text('policy p {\n  applies to tool "a.b"\n  risk L0\n}\n')
    assert compile_policy_dir(tmp_path).files == ("p.policy",)


def test_the_shipped_files_are_package_data_of_dsl_linked_to_the_top_level() -> None:
    """`dsl/policies.lark` and `dsl/policies` (package data, read with importlib.resources) are
    links to the top-level grammar and policies: one copy in the source tree, files in a wheel."""
    from dsl.shipped import grammar_path

    assert grammar_path() == dsl.GRAMMAR_PATH == REPO / "policies.lark"
    assert dsl.grammar_bytes() == (REPO / "policies.lark").read_bytes()
    for name in ("policies", "policies.lark"):
        link = REPO / "dsl" / name
        assert link.is_symlink() and link.resolve() == REPO / name, link
    for pattern in ("*.policy", "tests/*.toml", "examples/*.json"):
        assert sorted(p.name for p in builtin_policy_dir().glob(pattern)) == \
            sorted(p.name for p in (REPO / "policies").glob(pattern)) != []
