# policies/payments.policy in Rego: refunds, transfers, payouts.
package warden

import rego.v1

# ---- refunds: L1 -------------------------------------------------------------------------------

applicable_invariants contains "refund_reconciled" if tool == "stripe.refund"

failed_invariants contains "refund_reconciled" if {
	tool == "stripe.refund"
	not evidence.reconciled == true
}

escalations["refunds.large_refund"] := 2 if {
	tool == "stripe.refund"
	is_number(params.amount)
	params.amount > 50000
}

approvals["refunds.large_refund_approval"] := "approver" if {
	tool == "stripe.refund"
	is_number(params.amount)
	params.amount > 50000
}

violations contains "refunds.refund_hard_cap" if {
	tool == "stripe.refund"
	is_number(params.amount)
	params.amount > 500000
}

# The three amount rules cannot be evaluated without a numeric amount: each is a violation.
violations contains name if {
	tool == "stripe.refund"
	not is_number(params.amount)
	some name in ["refunds.large_refund", "refunds.large_refund_approval", "refunds.refund_hard_cap"]
}

# ---- transfers: L2 -----------------------------------------------------------------------------

applicable_invariants contains name if {
	tool == "stripe.transfer"
	some name in ["transfer_reconciled", "transfer_risk_checked"]
}

failed_invariants contains "transfer_reconciled" if {
	tool == "stripe.transfer"
	not evidence.reconciliation.status == "matched"
}

failed_invariants contains "transfer_risk_checked" if {
	tool == "stripe.transfer"
	not risk_score_ok
}

risk_score_ok if {
	is_number(evidence.risk_score)
	evidence.risk_score < 0.3
}

# ---- payouts: L3, founder only -----------------------------------------------------------------

applicable_invariants contains name if {
	tool == "stripe.payout"
	some name in ["payout_reconciled", "payout_risk_checked"]
}

failed_invariants contains "payout_reconciled" if {
	tool == "stripe.payout"
	not evidence.reconciliation.status == "matched"
}

failed_invariants contains "payout_risk_checked" if {
	tool == "stripe.payout"
	not risk_score_ok
}

approvals["payouts.payout_founder"] := "founder" if tool == "stripe.payout"
