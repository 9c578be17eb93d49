# Warden's decision semantics in Rego: the baseline `bench/decide.py` measures Warden against.
#
# The rules themselves are in payments.rego, cash.rego, catalog.rego, crm.rego and shadow.rego,
# one per policy file, each a faithful translation of policies/*.policy. Like Warden, they fail
# closed: a condition over a missing or mistyped field is a violation, never a pass (CEL raises
# an error there; Rego would quietly be undefined, hence the `is_number` / `is_string` guards).
#
# input: {"packet": <packet JSON>, "autonomy": "A0".."A4", "kill_switch": bool}
# query: data.warden.decision
package warden

import rego.v1

tool := input.packet.action.tool

params := input.packet.action.params

evidence := input.packet.evidence

autonomy := {"A0": 0, "A1": 1, "A2": 2, "A3": 3, "A4": 4}[input.autonomy]

tier_names := ["L0", "L1", "L2", "L3"]

# Base tiers, as the enforced policies' `risk` lines give them.
base_risk := {
	"stripe.refund": 1,
	"stripe.transfer": 2,
	"stripe.payout": 3,
	"shopify.update_price": 1,
	"shopify.publish_listing": 1,
	"shopify.create_discount": 1,
	"shopify.adjust_inventory": 1,
	"crm.log_note": 0,
	"crm.upsert_contact": 1,
	"crm.update_deal_stage": 1,
	"crm.delete_contact": 2,
	"crm.send_business_case": 1,
}

known_tool if base_risk[tool]

# Warden's own gates.
violations contains "warden.kill_switch" if input.kill_switch == true

violations contains "warden.unknown_tool" if not known_tool

# An invariant that did not PASS is a violation.
violations contains name if some name in failed_invariants

escalated_tiers contains tier if some _, tier in escalations

risk := max({base_risk[tool]} | escalated_tiers) if known_tool

else := 3

# The autonomy x risk matrix (DESIGN.md): A1 needs approval from L1, A2-A4 from L2.
matrix_needs_approval if risk >= 2

matrix_needs_approval if {
	autonomy == 1
	risk >= 1
}

needs_approval if matrix_needs_approval

needs_approval if count(approvals) > 0

status := "denied" if {
	count(violations) > 0
} else := "drafted" if {
	autonomy == 0
} else := "pending_approval" if {
	needs_approval
} else := "allowed"

approval_role := "founder" if {
	risk == 3
} else := "founder" if {
	some _, role in approvals
	role == "founder"
} else := "approver"

# Proof check: the agent's claims against Warden's verdicts, both directions.
claims := {c.id: c.status | some c in object.get(input.packet, ["proof", "invariant_checks"], [])}

flags contains "proof_mismatch" if {
	some name, claimed in claims
	claimed == "PASS"
	failed_invariants[name]
}

flags contains "proof_mismatch" if {
	some name, claimed in claims
	claimed != "PASS"
	applicable_invariants[name]
	not failed_invariants[name]
}

approval_obligation := {"required_role": approval_role} if {
	status == "pending_approval"
} else := null

decision := {
	"status": status,
	"risk": tier_names[risk],
	"violations": violations,
	"escalations": escalations,
	"approval": approval_obligation,
	"flags": flags,
	"shadow": shadow_findings,
}
