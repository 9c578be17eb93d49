# policies/catalog.policy in Rego: prices, discounts, listings, inventory.
package warden

import rego.v1

margin_ok if {
	is_number(evidence.projected_margin)
	evidence.projected_margin >= 0.15
}

# ---- price changes: L1 -------------------------------------------------------------------------

applicable_invariants contains "price_margin_floor" if tool == "shopify.update_price"

failed_invariants contains "price_margin_floor" if {
	tool == "shopify.update_price"
	not margin_ok
}

prices_numeric if {
	is_number(params.old_price)
	is_number(params.new_price)
}

violations contains "price_changes.non_positive_price" if {
	tool == "shopify.update_price"
	is_number(params.new_price)
	params.new_price <= 0
}

violations contains "price_changes.non_positive_price" if {
	tool == "shopify.update_price"
	not is_number(params.new_price)
}

# More than 20% either way, or no current price to measure against.
large_price_change if params.old_price <= 0

large_price_change if {
	params.old_price > 0
	abs(params.new_price - params.old_price) / params.old_price > 0.2
}

escalations["price_changes.large_price_change"] := 2 if {
	tool == "shopify.update_price"
	prices_numeric
	large_price_change
}

violations contains "price_changes.large_price_change" if {
	tool == "shopify.update_price"
	not prices_numeric
}

# ---- discounts: L1 -----------------------------------------------------------------------------

applicable_invariants contains "discount_margin_floor" if tool == "shopify.create_discount"

failed_invariants contains "discount_margin_floor" if {
	tool == "shopify.create_discount"
	not margin_ok
}

violations contains "discounts.deep_discount" if {
	tool == "shopify.create_discount"
	is_number(params.percent_off)
	params.percent_off > 40
}

violations contains "discounts.deep_discount" if {
	tool == "shopify.create_discount"
	not is_number(params.percent_off)
}

# ---- listings: L1 ------------------------------------------------------------------------------

# Case-insensitive by lowering the copy: rego-cpp's regex engine rejects the `(?i)` flag that
# the CEL pattern uses (OPA's RE2 would accept it; the result is the same).
banned_claims := `\b(cures?|guaranteed\s+results|risk[-\s]?free)\b`

copy_readable if {
	is_string(params.title)
	is_string(params.body_html)
}

# Banned copy denies; copy Warden cannot read denies too (the condition errors).
violations contains "listings.banned_claims" if {
	tool == "shopify.publish_listing"
	copy_readable
	regex.match(banned_claims, lower(concat(" ", [params.title, params.body_html])))
}

violations contains "listings.banned_claims" if {
	tool == "shopify.publish_listing"
	not copy_readable
}

# ---- inventory: L1 -----------------------------------------------------------------------------

escalations["inventory.bulk_stock_change"] := 2 if {
	tool == "shopify.adjust_inventory"
	is_number(params.delta)
	abs(params.delta) > 500
}

violations contains "inventory.bulk_stock_change" if {
	tool == "shopify.adjust_inventory"
	not is_number(params.delta)
}

escalations["inventory.large_reorder"] := 2 if {
	tool == "shopify.adjust_inventory"
	is_number(params.delta)
	params.delta > 0
	is_number(params.unit_cost)
	params.delta * params.unit_cost > 500000
}

# `delta > 0 && ...`: a non-positive delta settles it; otherwise both must be numbers.
violations contains "inventory.large_reorder" if {
	tool == "shopify.adjust_inventory"
	not not_a_reorder
	not reorder_cost_numeric
}

reorder_cost_numeric if {
	is_number(params.delta)
	is_number(params.unit_cost)
}
