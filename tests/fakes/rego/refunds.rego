# The refunds check an organisation keeps in OPA, for the tests of `opa` delegation: a refund is
# allowed unless the customer's risk score is high or the refund is over $2,000; over $300 the
# risk is raised to L2 (an approver), whatever Warden's own rules say.
package warden.refunds

import rego.v1

deny_reasons contains "the customer's risk score is too high for an automatic refund" if {
	input.evidence.risk_score > 80
}

deny_reasons contains "refunds over $2,000 are signed off by finance" if {
	input.params.amount > 200000
}

decision := {"allow": true, "risk": "L2"} if {
	count(deny_reasons) == 0
	input.params.amount > 30000
}

decision := {"allow": true} if {
	count(deny_reasons) == 0
	input.params.amount <= 30000
}

decision := {"allow": false, "reasons": sort([r | some r in deny_reasons])} if {
	count(deny_reasons) > 0
}

# The same check as a plain boolean.
allow if count(deny_reasons) == 0
