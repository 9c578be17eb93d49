"""Small policy sets with known answers, and the shipped ones.

Every packet a report shows is decided again here by the engine (a fresh `Decider`), valid for
its tool, with the status, risk and reasons the report claims.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_support import check_witness, policies, witnesses

from gateway.analysis.assertions import check, load
from gateway.analysis.questions import Analysis, Answer, Witness
from gateway.analysis.report import Report, run


def answer(text: str, question: str) -> tuple[Analysis, Answer]:
    analysis = Analysis(policies(text))
    result = analysis.answer(question)
    for finding in result.findings:
        for witness in finding.witnesses:
            check_witness(analysis.policy_set, witness)
    return analysis, result


def subjects(result: Answer) -> dict[str, str]:
    return {f.subject: f.message for f in result.findings}


REFUNDS = '''
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  invariant reconciled : evidence.reconciled == true
  escalate big L2 when params.amount > 50000 because "big"
  deny cap when params.amount > 500000 because "cap"
}
'''


# ------------------------------------------------------------------------------ shipped


def test_the_shipped_policies_hold_every_question(shipped: Report) -> None:
    assert shipped.ok
    by_name = {a.question: a for a in shipped.answers}
    assert len(by_name["l3-founder"].proved) == shipped.tools == 16
    assert len(by_name["a1-approval"].proved) == 16
    assert not by_name["dead-rules"].findings
    assert not by_name["gaps"].findings
    conflicts = subjects(by_name["conflicts"])
    assert set(conflicts) == {"stripe.payout: payment_runway / payouts",
                              "shopify.adjust_inventory: reorder_runway / inventory"}
    assert all(not f.fails for f in by_name["conflicts"].findings)
    assert {u.label for u in shipped.unsupported} == {
        "listings.banned_claims", "crm_notes.card_number_in_note"}
    assert shipped.assertions is not None
    assert [r.outcome for r in shipped.assertions] == ["proved"] * len(shipped.assertions) != []


def test_every_packet_the_shipped_report_shows_is_the_engines(shipped: Report) -> None:
    shown = list(witnesses(shipped))
    assert shown
    for witness in shown:
        check_witness(shipped.policy_set, witness)


# ------------------------------------------------------------------------------ dead rules


def test_dead_rules_unsatisfiable_always_an_error_redundant_and_useless() -> None:
    _, result = answer('''
policy transfers {
  applies to tool "stripe.transfer"
  risk L2
  invariant positive : params.amount > 0
  invariant runway : evidence.days >= 30
  deny negative when params.amount < 0 because "never"
  deny cap when params.amount > 500000 because "cap"
  escalate beyond_cap L3 when params.amount > 600000 because "covered by the cap"
  escalate same_tier L2 when params.amount > 10 because "the base is L2 already"
  escalate live L3 when params.amount > 400000 because "fires alone below the cap"
  deny short when evidence.days < 10 because "covered by the runway invariant"
}
policy typos {
  applies to tool "stripe.transfer"
  deny typo when params.amout > 5 because "always an error"
}
''', "dead-rules")
    found = subjects(result)
    assert "can never fail" in found["transfers.positive"]
    assert "can never fire" in found["transfers.negative"]
    assert "ERROR for every packet" in found["typos.typo"]
    assert "redundant" in found["transfers.beyond_cap"] and "cap" in found["transfers.beyond_cap"]
    assert "never raises the risk" in found["transfers.same_tier"]
    assert "redundant" in found["transfers.short"] and "runway" in found["transfers.short"]
    assert not {"transfers.live", "transfers.cap", "transfers.runway"} & set(found)
    assert not result.holds


def test_an_approval_rule_covered_by_a_stricter_one_is_redundant() -> None:
    _, result = answer('''
policy deletions {
  applies to tool "crm.delete_contact"
  risk L2
  require approval two from role "founder" count 2 when size(params.contact_ids) > 10
  require approval one from role "approver" when size(params.contact_ids) > 50
}
''', "dead-rules")
    assert list(subjects(result)) == ["deletions.one"]


# ------------------------------------------------------------------------------ gaps


def test_catalog_tools_no_policy_covers_are_gaps_with_a_denied_packet() -> None:
    analysis, result = answer(REFUNDS, "gaps")
    uncovered = {f.subject for f in result.findings if f.fails}
    assert uncovered == set(analysis.catalog_tools) - {"stripe.refund"}
    for finding in result.findings:
        assert [w.decision.reasons[0].rule for w in finding.witnesses] == ["unknown_tool"]


def _hole(tool: str, field: str, band: str, cap: str) -> list[Witness]:
    """The one hole the gaps question finds in `field` between an escalation and a cap."""
    _, result = answer(f'''
policy one {{
  applies to tool "{tool}"
  risk L1
  escalate band L2 when {band} because "band"
  deny cap when {cap} because "cap"
}}
policy others {{ applies to tool "*" risk L0 }}
''', "gaps")
    (hole,) = [f for f in result.findings if f.subject == f"{tool} params.{field}"]
    return list(hole.witnesses)


def test_a_hole_at_the_boundary_between_two_rules() -> None:
    witnesses = _hole("stripe.refund", "amount",
                      "params.amount > 50000 && params.amount < 500000", "params.amount > 500000")
    amounts = [w.example.packet["action"]["params"]["amount"] for w in witnesses]
    assert amounts == [499999, 500000, 500001]
    assert [w.decision.status for w in witnesses] == ["pending_approval", "executed", "denied"]


def test_a_hole_at_one_point_of_a_number_param() -> None:
    witnesses = _hole("shopify.create_discount", "percent_off",
                      "params.percent_off > 20 && params.percent_off < 40",
                      "params.percent_off > 40")
    values = [w.example.packet["action"]["params"]["percent_off"] for w in witnesses]
    assert values == [40 - 1 / 1024, 40, 40 + 1 / 1024]


def test_one_rule_on_both_sides_of_a_band_is_no_hole() -> None:
    _, result = answer('''
policy prices {
  applies to tool "shopify.update_price"
  risk L1
  escalate swing L2 when params.new_price > params.old_price + 100 ||
                         params.new_price < params.old_price - 100 because "swing"
}
policy others { applies to tool "*" risk L0 }
''', "gaps")
    assert result.holds and "shopify.update_price" in result.proved


# ------------------------------------------------------------------------------ conflicts


def test_two_policies_that_disagree_on_a_packet_are_notes() -> None:
    _, result = answer(REFUNDS + '''
policy review {
  applies to tool "stripe.refund"
  require approval look from role "approver" when params.amount > 100
}
''', "conflicts")
    assert set(subjects(result)) == {"stripe.refund: refunds / review"}
    assert result.holds  # a note, not a failure


# ------------------------------------------------------------------------------ safety questions


@pytest.mark.parametrize("question", ["l3-founder", "a1-approval"])
def test_the_matrix_questions_hold_whatever_the_rules(question: str) -> None:
    _, result = answer(REFUNDS + '''
policy payouts {
  applies to tool "stripe.payout"
  risk L1
  escalate huge L3 when params.amount > 100 because "huge"
  require approval anyone from role "approver"
}
''', question)
    assert result.holds and "stripe.payout" in result.proved


# ------------------------------------------------------------------------------ assertions


def _assertions(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assertions.toml"
    path.write_text(text)
    return path


def test_a_broken_assertion_comes_with_the_engines_packet(tmp_path: Path) -> None:
    policy_set = policies(REFUNDS)
    path = _assertions(tmp_path, '''
[[assert]]
name = "refunds over 1000 wait"
tool = "stripe.refund"
when = "params.amount > 1000"
never = "executed"

[[assert]]
name = "unreconciled refunds are denied"
tool = "stripe.refund"
when = "!has(evidence.reconciled) || evidence.reconciled != true"
only = "denied"

[[assert]]
name = "big refunds: risk L2"
tool = "stripe.refund"
when = "params.amount > 50000"
risk_at_least = "L2"
''')
    report = run(tmp_path, policy_set, load(path), [])
    assert report.assertions is not None
    outcomes = {r.assertion.name: r for r in report.assertions}
    broken = outcomes["refunds over 1000 wait"]
    assert broken.outcome == "failed" and broken.broken == "the decision is executed"
    amount = broken.witnesses[0].example.packet["action"]["params"]["amount"]
    assert 1000 < amount <= 50000
    assert outcomes["unreconciled refunds are denied"].passed
    assert outcomes["big refunds: risk L2"].passed
    assert not report.ok
    for witness in witnesses(report):
        check_witness(policy_set, witness)


def test_an_assertion_outside_the_subset_is_not_proved(tmp_path: Path) -> None:
    path = _assertions(tmp_path, '''
[[assert]]
name = "charges by pattern"
when = "params.charge.matches('^ch_')"
tool = ["stripe.refund"]
autonomy = ["A1", "A2"]
never = ["drafted"]
''')
    analysis = Analysis(policies(REFUNDS))
    (result,) = check(analysis, load(path))
    assert result.outcome == "inconclusive" and "matches" in (result.note or "")


def test_an_unsupported_rule_leaves_proofs_sound_and_is_reported(tmp_path: Path) -> None:
    policy_set = policies('''
policy notes {
  applies to tool "crm.log_note"
  risk L0
  deny cards when params.body.matches("[0-9]{16}") because "cards"
  escalate long L1 when size(params.body) > 10 because "sizes of strings are bytes"
}
''')
    path = _assertions(tmp_path, '''
[[assert]]
name = "notes are never L2"
tool = "crm.log_note"
never = "pending_approval"
autonomy = ["A2", "A3", "A4"]

[[assert]]
name = "notes always run"
tool = "crm.log_note"
only = "executed"
autonomy = "A2"
''')
    report = run(tmp_path, policy_set, load(path), ["dead-rules"])
    assert {u.label for u in report.unsupported} == {"notes.cards", "notes.long"}
    assert report.assertions is not None
    first, second = report.assertions
    assert first.passed
    # a card number denies, but the solver does not know which strings match: the packets it
    # tries the engine executes, so the assertion is neither proved nor broken
    assert second.outcome == "inconclusive" and "did not confirm" in (second.note or "")


# ------------------------------------------------------------------------------ the subset


def test_string_params_fit_their_schema_patterns() -> None:
    _, result = answer('''
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  deny upper when params.currency == "USD" because "currencies are lower case: never"
  deny euros when params.currency == "eur" because "fires"
  deny charges when params.charge.startsWith("tr_") because "charges are ch_ or py_: never"
}
''', "dead-rules")
    assert sorted(subjects(result)) == ["refunds.charges", "refunds.upper"]


def test_rules_outside_the_subset_are_named_with_the_reason() -> None:
    analysis = Analysis(policies('''
policy odd {
  applies to tool "stripe.refund"
  risk L1
  deny clock when now > timestamp("2020-01-01T00:00:00Z") because "time"
  deny any when evidence.items.exists(i, i == "x") because "comprehension"
  deny pair when evidence.a == evidence.b because "no kind"
  deny halves when params.amount / 2 > 3 because "int division"
  deny twice when evidence.k > 1 || evidence.k == "yes" because "two kinds"
  deny typo when params.nope.startsWith("x") because "an ERROR, not unsupported"
}
'''), catalog_tools=["stripe.refund"])
    reasons = {u.label: u.reason for u in analysis.unsupported()}
    assert reasons == {
        "odd.clock": "reading now",
        "odd.any": "the comprehension exists()",
        "odd.pair": "the kind of evidence.a cannot be inferred from its use",
        "odd.halves": "division of values that may be ints (wrap them in double())",
        "odd.twice": "evidence.k is used as num and as string",
    }


def test_double_rounding_never_makes_a_false_proof(tmp_path: Path) -> None:
    # 0.2 + 1.0 is 1.2 in doubles, not more: the engine lets this refund through. Over the reals
    # the sum is above the literal 1.2 (whose double is below 6/5), which would "prove" a denial.
    policy_set = policies('''
policy refunds {
  applies to tool "stripe.refund"
  risk L1
  deny scored when evidence.score + 1.0 > 1.2 because "score"
}
''')
    path = _assertions(tmp_path, '''
[[assert]]
tool = ["stripe.refund"]
when = "evidence.score == 0.2"
name = "a score of 0.2 is denied"
only = ["denied"]
''')
    (result,) = check(Analysis(policy_set), load(path))
    assert result.outcome == "failed"
    assert check_witness(policy_set, result.witnesses[0]).status != "denied"
