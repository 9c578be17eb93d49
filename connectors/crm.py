"""The CRM (HubSpot-like): notes, contacts, deals and the business cases sent to prospects.

Sandbox answers follow HubSpot's CRM v3 objects: `{"id": "<digits>", "properties": {...},
"createdAt", "updatedAt", "archived"}` with every property value a string. A contact upserted
twice by the same email keeps its id; a deal remembers its stage, so a move reports the stage it
left (`previous_stage`, what a compensation needs). Magic values (see `connectors.sandbox`) are
looked for in `record_id`, `email`, `deal_id` and every element of `contact_ids`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from connectors.base import ToolSpec
from connectors.call_ledger import Answer, LedgerView
from connectors.fields import GenericId, Number, Params, Price
from connectors.sandbox import SandboxConnector, new_number, stable_number
from dsl.model import Risk

Email = Annotated[str, StringConstraints(max_length=254,
                                         pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
PropertyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
PropertyValue = (Annotated[str, StringConstraints(max_length=10_000)] | bool | int
                 | Annotated[float, Field(allow_inf_nan=False)])
Stage = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                         pattern=r"^[A-Za-z0-9_\-]+$")]
Assumption = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class LogNoteParams(Params):
    """Add a note to a CRM record (contact, company or deal)."""

    record_id: GenericId = Field(description="the record the note is attached to")
    body: Annotated[str, StringConstraints(min_length=1, max_length=65_536)] = Field(
        description="the note's text (never card numbers: policies deny them)")


class UpsertContactParams(Params):
    """Create a contact, or update the one with this email."""

    email: Email = Field(description="the contact's email address, its unique key")
    properties: dict[PropertyName, PropertyValue] = Field(
        max_length=100,
        description="contact properties by internal name (firstname, lifecyclestage, ...)",
        json_schema_extra={"additionalProperties": False})


class UpdateDealStageParams(Params):
    """Move a deal to another pipeline stage."""

    deal_id: GenericId = Field(description="the deal moved")
    stage: Stage = Field(description="the pipeline stage's internal id (qualified, closedwon)")
    amount: Price | None = Field(
        None, description="the deal's amount in minor units (cents), when it is set or changed")


class DeleteContactParams(Params):
    """Delete (archive) contacts in one batch."""

    contact_ids: list[GenericId] = Field(
        min_length=1, max_length=1000, description="the contacts deleted, each once (1 to 1000)")

    @field_validator("contact_ids")
    @classmethod
    def _each_once(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("each contact id may appear only once")
        return ids


class SendBusinessCaseParams(Params):
    """Send a prospect the business case for a deal: the return they can expect."""

    deal_id: GenericId = Field(description="the deal the business case is for")
    roi_multiple: Annotated[Number, Field(ge=0, le=1000)] = Field(
        description="the return promised, as a multiple of the cost (2.5 is 2.5x)")
    payback_months: Annotated[Number, Field(ge=0, le=1200)] = Field(
        description="months until the purchase has paid for itself")
    assumptions: list[Assumption] = Field(
        max_length=50, description="the assumptions behind the numbers, one sentence each")


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("crm.log_note", LogNoteParams, Risk.L0,
             "Add a note to a CRM record.", reversible=True,
             compensation="delete the note (DELETE /crm/v3/objects/notes/{id})"),
    ToolSpec("crm.upsert_contact", UpsertContactParams, Risk.L1,
             "Create or update a contact by email.", reversible=True,
             compensation="set the changed properties back to their previous values, or "
                          "archive the contact if the upsert created it (summary: new)"),
    ToolSpec("crm.update_deal_stage", UpdateDealStageParams, Risk.L1,
             "Move a deal to another pipeline stage.", reversible=True,
             compensation="move the deal back to the stage it left (summary: previous_stage)"),
    ToolSpec("crm.delete_contact", DeleteContactParams, Risk.L2,
             "Delete (archive) contacts in one batch.", reversible=False,
             compensation="none through the API: archived contacts can be restored by hand "
                          "from the CRM's recycle bin within 90 days"),
    ToolSpec("crm.send_business_case", SendBusinessCaseParams, Risk.L1,
             "Send a prospect the business case (ROI, payback) for a deal.", reversible=False,
             compensation="none: a sent document cannot be unsent; send the prospect a "
                          "correction"),
)


def _hubspot_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _object(object_id: str, properties: dict[str, Any], now: str, *,
            created: str | None = None) -> dict[str, Any]:
    return {"id": object_id, "properties": {**properties, "hs_object_id": object_id},
            "createdAt": created or now, "updatedAt": now, "archived": False}


class CrmSandbox(SandboxConnector):
    """The CRM without the network: HubSpot-like objects, recorded per key."""

    name = "crm"
    tools = TOOLS
    magic_fields = {"crm.log_note": ("record_id",), "crm.upsert_contact": ("email",),
                    "crm.update_deal_stage": ("deal_id",), "crm.delete_contact": ("contact_ids",),
                    "crm.send_business_case": ("deal_id",)}
    declined_codes = {tool.name: "validation_error" for tool in TOOLS}

    def answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if tool == "crm.log_note":
            note_id = str(new_number())
            note = _object(note_id, {"hs_note_body": params["body"], "hs_timestamp": now}, now)
            note["associations"] = {"records": {"results": [
                {"id": params["record_id"], "type": "note_to_record"}]}}
            return note_id, note, {"note_id": note_id, "record_id": params["record_id"],
                                   "body_chars": len(params["body"])}
        if tool == "crm.upsert_contact":
            email = params["email"].lower()
            contact_id = str(stable_number("contact", email))
            earlier = list(view.responses(tool, {"$.id": contact_id}))
            props = {**(earlier[-1]["properties"] if earlier else {}),
                     **{k: _hubspot_value(v) for k, v in params["properties"].items()},
                     "email": email, "lastmodifieddate": now}
            props.setdefault("createdate", now)
            contact = _object(contact_id, props, now, created=props["createdate"])
            contact["new"] = not earlier
            return contact_id, contact, {"contact_id": contact_id, "new": not earlier,
                                         "properties": sorted(params["properties"])}
        if tool == "crm.update_deal_stage":
            return self._deal(params, view, now)
        if tool == "crm.delete_contact":
            ids = list(params["contact_ids"])
            batch_id = str(new_number())
            batch = {"status": "COMPLETE", "results": [{"id": i, "archived": True} for i in ids],
                     "startedAt": now, "completedAt": now}
            return batch_id, batch, {"batch_id": batch_id, "archived": len(ids),
                                     "contact_ids": ids[:20], "truncated": len(ids) > 20}
        return self._business_case(params, now)

    def _deal(self, params: Mapping[str, Any], view: LedgerView, now: str) -> Answer:
        deal_id = str(stable_number("deal", params["deal_id"]))
        earlier = list(view.responses("crm.update_deal_stage", {"$.id": deal_id}))
        before = earlier[-1]["properties"] if earlier else {}
        props = {**before, "dealstage": params["stage"], "hs_lastmodifieddate": now}
        if params.get("amount") is not None:
            props["amount"] = f"{params['amount'] // 100}.{params['amount'] % 100:02d}"
        deal = _object(deal_id, props, now)
        summary = {"deal_id": params["deal_id"], "crm_deal_id": deal_id,
                   "stage": params["stage"], "previous_stage": before.get("dealstage")}
        if params.get("amount") is not None:
            summary["amount"] = params["amount"]
        return deal_id, deal, summary

    def _business_case(self, params: Mapping[str, Any], now: str) -> Answer:
        document_id = str(new_number())
        text = "\n".join(params["assumptions"])
        document = _object(document_id, {
            "hs_title": f"Business case for deal {params['deal_id']}",
            "hs_status": "SENT", "hs_sent_at": now,
            "roi_multiple": str(params["roi_multiple"]),
            "payback_months": str(params["payback_months"]),
            "assumptions": text}, now)
        document["associations"] = {"deals": {"results": [
            {"id": params["deal_id"], "type": "business_case_to_deal"}]}}
        return document_id, document, {
            "document_id": document_id, "deal_id": params["deal_id"], "status": "SENT",
            "roi_multiple": params["roi_multiple"], "payback_months": params["payback_months"],
            "assumptions": len(params["assumptions"]),
            "assumptions_sha256": hashlib.sha256(text.encode()).hexdigest()}
