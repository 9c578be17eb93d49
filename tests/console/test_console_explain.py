"""What the decision page shows of a rule: its file, line and DSL text as written, dedented, with
the lines that continue it; and nothing for a policy or rule that is not in the set."""

from __future__ import annotations

from pathlib import Path

from console.explain import rule_source
from dsl import builtin_policy_dir
from dsl.compiler import compile_policy_dir


def test_a_reason_is_shown_with_its_file_line_and_text() -> None:
    policy_dir = Path(builtin_policy_dir())
    policy_set = compile_policy_dir(policy_dir)
    found = rule_source(policy_set, policy_dir, "refunds", "large_refund_approval")
    assert found is not None
    lines = (policy_dir / found.file).read_text().splitlines()
    assert lines[found.line - 1].strip().startswith("require approval large_refund_approval")
    assert found.text.startswith("require approval large_refund_approval")  # dedented
    assert "expires in" in found.text  # the continuation line comes with it
    assert rule_source(policy_set, policy_dir, "no_such_policy", "x") is None
    whole = rule_source(policy_set, policy_dir, "refunds", "no_such_rule")  # the policy itself
    assert whole is not None and whole.text.startswith("policy refunds")


def test_a_reason_of_an_opa_statement_is_shown_with_the_statement(tmp_path: Path) -> None:
    (tmp_path / "refunds.policy").write_text(
        'policy refunds {\n  applies to tool "stripe.refund"\n  risk L1\n'
        '  opa finance "warden/refunds/decision"\n    reads params.amount, evidence.risk_score\n}\n')
    found = rule_source(compile_policy_dir(tmp_path), tmp_path, "refunds", "finance")
    assert found is not None and found.line == 4
    assert found.text.startswith('opa finance "warden/refunds/decision"')
