# policies/crm.policy in Rego: notes, contacts, deals, deletions, business cases.
package warden

import rego.v1

# ---- notes: L0 ---------------------------------------------------------------------------------

violations contains "crm_notes.card_number_in_note" if {
	tool == "crm.log_note"
	is_string(params.body)
	regex.match(`\b(?:[0-9][ -]?){12,15}[0-9]\b`, params.body)
}

violations contains "crm_notes.card_number_in_note" if {
	tool == "crm.log_note"
	not is_string(params.body)
}

# ---- deals: L1 ---------------------------------------------------------------------------------

escalations["deals.big_deal"] := 2 if {
	tool == "crm.update_deal_stage"
	is_number(params.amount)
	params.amount > 5000000
}

violations contains "deals.big_deal" if {
	tool == "crm.update_deal_stage"
	"amount" in object.keys(params)
	not is_number(params.amount)
}

# ---- contact deletion: L2, always an approver --------------------------------------------------

approvals["contact_deletion.deletion_approval"] := "approver" if tool == "crm.delete_contact"

sizeable(x) if is_array(x)

sizeable(x) if is_object(x)

sizeable(x) if is_string(x)

mass_deletion if count(params.contact_ids) > 100

escalations["contact_deletion.mass_deletion"] := 3 if {
	tool == "crm.delete_contact"
	sizeable(params.contact_ids)
	mass_deletion
}

violations contains "contact_deletion.mass_deletion" if {
	tool == "crm.delete_contact"
	not sizeable(params.contact_ids)
}

# min_autonomy A3 when more than 100: only agents below A3 are checked at all.
violations contains "contact_deletion.mass_deletion_autonomy" if {
	tool == "crm.delete_contact"
	autonomy < 3
	sizeable(params.contact_ids)
	mass_deletion
}

violations contains "contact_deletion.mass_deletion_autonomy" if {
	tool == "crm.delete_contact"
	autonomy < 3
	not sizeable(params.contact_ids)
}

# ---- business cases: L1 ------------------------------------------------------------------------

applicable_invariants contains "roi_within_benchmark" if tool == "crm.send_business_case"

failed_invariants contains "roi_within_benchmark" if {
	tool == "crm.send_business_case"
	not roi_ok
}

roi_ok if {
	is_number(params.roi_multiple)
	is_number(evidence.benchmark_roi_multiple)
	params.roi_multiple <= evidence.benchmark_roi_multiple
}
