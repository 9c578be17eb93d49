# policies/shadow.policy in Rego: evaluated and reported, never enforced.
package warden

import rego.v1

shadow_findings contains "margin_target_trial.margin_target" if {
	tool in {"shopify.update_price", "shopify.create_discount"}
	not margin_target_met
}

margin_target_met if {
	is_number(evidence.projected_margin)
	evidence.projected_margin >= 0.25
}

shadow_findings contains "refund_review_trial.refund_review" if {
	tool == "stripe.refund"
	not refund_review_passes
}

# The trial escalation fires above $200, and (like any condition) errors without an amount.
refund_review_passes if {
	is_number(params.amount)
	params.amount <= 20000
}
