# policies/cash.policy in Rego: keep 30 days of cash runway.
package warden

import rego.v1

applicable_invariants contains "payment_runway_floor" if tool in {"stripe.transfer", "stripe.payout"}

failed_invariants contains "payment_runway_floor" if {
	tool in {"stripe.transfer", "stripe.payout"}
	not runway_ok
}

runway_ok if {
	is_number(evidence.cash_runway_days)
	evidence.cash_runway_days >= 30
}

applicable_invariants contains "reorder_runway_floor" if tool == "shopify.adjust_inventory"

# params.delta <= 0 || evidence.cash_runway_days >= 30: either side holding is enough (CEL's
# `||` absorbs an error on the other side).
failed_invariants contains "reorder_runway_floor" if {
	tool == "shopify.adjust_inventory"
	not not_a_reorder
	not runway_ok
}

not_a_reorder if {
	is_number(params.delta)
	params.delta <= 0
}
