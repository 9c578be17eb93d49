"""The CRM (HubSpot-like): notes, contacts, deals and the business cases sent to prospects, and
the deletion of a note (the compensation of `crm.log_note`).

Sandbox answers follow HubSpot's CRM v3 objects: `{"id": "<digits>", "properties": {...},
"createdAt", "updatedAt", "archived"}` with every property value a string. A contact upserted
twice by the same email keeps its id, and archiving it (`crm.delete_contact`) makes the next
upsert create it again; a deal remembers its stage, so a move reports the stage it left
(`previous_stage`). Magic values (see `connectors.sandbox`) are looked for in `record_id`,
`email`, `deal_id`, `note_id` and every element of `contact_ids`.

What each summary carries for its compensation (the same keys in sandbox and live mode):

    crm.log_note            note_id                     → crm.delete_note of it
    crm.upsert_contact      new, contact_id, previous   → new: crm.delete_contact of it; else
                                                          crm.upsert_contact of the previous
                                                          values ("" where there was none)
    crm.update_deal_stage   previous_stage (and         → crm.update_deal_stage back to it
                            previous_amount when the
                            move set an amount)

A note's `record_id` names the record it is attached to: a bare id is a contact's,
`deal:<id>` and `company:<id>` name a deal or a company (`contact:<id>` also works).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from connectors.base import Compensation, NotReversible, ToolSpec
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

#: What a note's `record_id` may name: the kind → (HubSpot's object type, the default
#: association type id from a note to it, HUBSPOT_DEFINED)
NOTE_TARGETS: Mapping[str, tuple[str, int]] = {
    "contact": ("contacts", 202), "company": ("companies", 190), "deal": ("deals", 214)}


def note_target(record_id: str) -> tuple[str, str]:
    """(kind, id) of the record a note is attached to: "deal:123" → ("deal", "123"); a bare id
    (or any other prefix, e.g. a gid) is a contact's."""
    kind, colon, rest = record_id.partition(":")
    if colon and kind in NOTE_TARGETS:
        return kind, rest
    return "contact", record_id


class LogNoteParams(Params):
    """Add a note to a CRM record (contact, company or deal)."""

    record_id: GenericId = Field(
        description="the record the note is attached to: a contact's id, or deal:<id> or "
                    "company:<id> for a deal or a company")
    body: Annotated[str, StringConstraints(min_length=1, max_length=65_536)] = Field(
        description="the note's text (never card numbers: policies deny them)")

    @field_validator("record_id")
    @classmethod
    def _names_a_record(cls, record_id: str) -> str:
        kind, colon, rest = record_id.partition(":")
        if colon and kind in NOTE_TARGETS and not rest:
            raise ValueError(f"name the {kind} after the colon ({kind}:<id>)")
        return record_id


class UpsertContactParams(Params):
    """Create a contact, or update the one with this email."""

    email: Email = Field(description="the contact's email address, its unique key")
    properties: dict[PropertyName, PropertyValue] = Field(
        max_length=100,
        description="contact properties by internal name (firstname, lifecyclestage, ...); "
                    "an empty string clears a property",
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


class DeleteNoteParams(Params):
    """Delete (archive) a note, e.g. one logged by mistake."""

    note_id: GenericId = Field(description="the note deleted (its id, as crm.log_note gave it)")


# ---------------------------------------------------------------------------- compensations

def delete_logged_note(params: Mapping[str, Any], external_id: str,
                       summary: Mapping[str, Any]) -> Compensation:
    """A note is undone by deleting it."""
    return Compensation("crm.delete_note", {"note_id": str(summary.get("note_id") or external_id)})


def restore_contact(params: Mapping[str, Any], external_id: str,
                    summary: Mapping[str, Any]) -> Compensation:
    """A contact the upsert created is deleted; one it changed gets its previous values back."""
    if summary.get("new") is True:
        contact = str(summary.get("contact_id") or external_id)
        return Compensation("crm.delete_contact", {"contact_ids": [contact]})
    previous = summary.get("previous")
    if summary.get("new") is not False or not isinstance(previous, Mapping):
        raise NotReversible("crm.upsert_contact: the execution's summary does not record whether "
                            "the contact was new and its previous values (new, previous)")
    return Compensation("crm.upsert_contact", {
        "email": params["email"],
        "properties": {name: "" if value is None else value for name, value in previous.items()}})


def move_deal_back(params: Mapping[str, Any], external_id: str,
                   summary: Mapping[str, Any]) -> Compensation:
    """A deal moved is moved back to the stage it left (and its amount, when the move set one)."""
    previous = summary.get("previous_stage")
    if not previous:
        raise NotReversible("crm.update_deal_stage: the deal had no stage before this move "
                            "(previous_stage is empty), so there is none to move it back to")
    undo: dict[str, Any] = {"deal_id": params["deal_id"], "stage": previous}
    if "amount" in summary and summary.get("previous_amount") is not None:
        undo["amount"] = summary["previous_amount"]
    return Compensation("crm.update_deal_stage", undo)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("crm.log_note", LogNoteParams, Risk.L0,
             "Add a note to a CRM record.", reversible=True,
             compensation="crm.delete_note: delete the note (DELETE /crm/v3/objects/notes/{id})",
             compensator=delete_logged_note),
    ToolSpec("crm.upsert_contact", UpsertContactParams, Risk.L1,
             "Create or update a contact by email.", reversible=True,
             compensation="crm.upsert_contact of the changed properties' previous values, or "
                          "crm.delete_contact of the contact if the upsert created it "
                          "(summary: new, previous)",
             compensator=restore_contact),
    ToolSpec("crm.update_deal_stage", UpdateDealStageParams, Risk.L1,
             "Move a deal to another pipeline stage.", reversible=True,
             compensation="crm.update_deal_stage back to the stage it left (summary: "
                          "previous_stage)",
             compensator=move_deal_back),
    ToolSpec("crm.delete_contact", DeleteContactParams, Risk.L2,
             "Delete (archive) contacts in one batch.", reversible=False,
             compensation="none through the API: archived contacts can be restored by hand "
                          "from the CRM's recycle bin within 90 days"),
    ToolSpec("crm.send_business_case", SendBusinessCaseParams, Risk.L1,
             "Send a prospect the business case (ROI, payback) for a deal.", reversible=False,
             compensation="none: a sent document cannot be unsent; send the prospect a "
                          "correction"),
    ToolSpec("crm.delete_note", DeleteNoteParams, Risk.L1,
             "Delete (archive) a note.", reversible=False,
             compensation="none through the API: an archived note can be restored by hand from "
                          "the CRM's recycle bin within 90 days"),
)


# ---------------------------------------------------------------------------- shared with live

def hubspot_value(value: Any) -> str:
    """A property value as HubSpot stores it: a string (booleans as "true"/"false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def amount_string(cents: int) -> str:
    """Minor units as a deal's `amount` property: 1500000 → "15000.00"."""
    return f"{cents // 100}.{cents % 100:02d}"


def amount_cents(amount: Any) -> int | None:
    """A deal's `amount` property in minor units ("15000" → 1500000); None when unset or not
    a number."""
    if amount is None or amount == "":
        return None
    try:
        cents = (Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return int(cents) if cents.is_finite() and cents >= 0 else None


def business_case_summary(params: Mapping[str, Any], document_id: str,
                          status: str) -> dict[str, Any]:
    text = "\n".join(params["assumptions"])
    return {"document_id": document_id, "deal_id": params["deal_id"], "status": status,
            "roi_multiple": params["roi_multiple"], "payback_months": params["payback_months"],
            "assumptions": len(params["assumptions"]),
            "assumptions_sha256": hashlib.sha256(text.encode()).hexdigest()}


def _object(object_id: str, properties: dict[str, Any], now: str, *,
            created: str | None = None) -> dict[str, Any]:
    return {"id": object_id, "properties": {**properties, "hs_object_id": object_id},
            "createdAt": created or now, "updatedAt": now, "archived": False}


def _archived_since(view: LedgerView, contact_id: str, since: str) -> bool:
    """Whether a crm.delete_contact archived the contact at or after `since` (an ISO time)."""
    for batch in view.responses("crm.delete_contact"):
        if batch["completedAt"] >= since and any(r["id"] == contact_id for r in batch["results"]):
            return True
    return False


class CrmSandbox(SandboxConnector):
    """The CRM without the network: HubSpot-like objects, recorded per key."""

    name = "crm"
    tools = TOOLS
    magic_fields = {"crm.log_note": ("record_id",), "crm.upsert_contact": ("email",),
                    "crm.update_deal_stage": ("deal_id",), "crm.delete_contact": ("contact_ids",),
                    "crm.send_business_case": ("deal_id",), "crm.delete_note": ("note_id",)}
    declined_codes = {tool.name: "validation_error" for tool in TOOLS}

    def answer(self, tool: str, params: Mapping[str, Any], view: LedgerView) -> Answer:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if tool == "crm.log_note":
            note_id = str(new_number())
            kind, record = note_target(params["record_id"])
            note = _object(note_id, {"hs_note_body": params["body"], "hs_timestamp": now}, now)
            note["associations"] = {NOTE_TARGETS[kind][0]: {"results": [
                {"id": record, "type": f"note_to_{kind}"}]}}
            return note_id, note, {"note_id": note_id, "record_id": params["record_id"],
                                   "body_chars": len(params["body"])}
        if tool == "crm.upsert_contact":
            return self._contact(params, view, now)
        if tool == "crm.update_deal_stage":
            return self._deal(params, view, now)
        if tool == "crm.delete_contact":
            ids = list(params["contact_ids"])
            batch_id = str(new_number())
            batch = {"status": "COMPLETE", "results": [{"id": i, "archived": True} for i in ids],
                     "startedAt": now, "completedAt": now}
            return batch_id, batch, {"batch_id": batch_id, "archived": len(ids),
                                     "contact_ids": ids[:20], "truncated": len(ids) > 20}
        if tool == "crm.delete_note":
            # HubSpot answers 204 without a body; recorded as a read with archived=true shows it
            note_id = params["note_id"]
            return note_id, {"id": note_id, "archived": True, "archivedAt": now}, {
                "note_id": note_id, "archived": True}
        return self._business_case(params, now)

    def _contact(self, params: Mapping[str, Any], view: LedgerView, now: str) -> Answer:
        email = params["email"].lower()
        contact_id = str(stable_number("contact", email))
        earlier = list(view.responses("crm.upsert_contact", {"$.id": contact_id}))
        latest = earlier[-1] if earlier else None
        if latest is not None and _archived_since(view, contact_id, latest["updatedAt"]):
            latest = None  # archived since: the upsert creates it again
        before: dict[str, Any] = latest["properties"] if latest else {}
        props = {**before, **{k: hubspot_value(v) for k, v in params["properties"].items()},
                 "email": email, "lastmodifieddate": now}
        if latest is None:
            props["createdate"] = now
        contact = _object(contact_id, props, now, created=props["createdate"])
        contact["new"] = latest is None
        previous = {name: before.get(name) or None for name in params["properties"]}
        return contact_id, contact, {"contact_id": contact_id, "new": latest is None,
                                     "properties": sorted(params["properties"]),
                                     "previous": previous}

    def _deal(self, params: Mapping[str, Any], view: LedgerView, now: str) -> Answer:
        deal_id = str(stable_number("deal", params["deal_id"]))
        earlier = list(view.responses("crm.update_deal_stage", {"$.id": deal_id}))
        before = earlier[-1]["properties"] if earlier else {}
        props = {**before, "dealstage": params["stage"], "hs_lastmodifieddate": now}
        if params.get("amount") is not None:
            props["amount"] = amount_string(params["amount"])
        deal = _object(deal_id, props, now)
        summary = {"deal_id": params["deal_id"], "crm_deal_id": deal_id,
                   "stage": params["stage"], "previous_stage": before.get("dealstage")}
        if params.get("amount") is not None:
            summary["amount"] = params["amount"]
            summary["previous_amount"] = amount_cents(before.get("amount"))
        return deal_id, deal, summary

    def _business_case(self, params: Mapping[str, Any], now: str) -> Answer:
        document_id = str(new_number())
        document = _object(document_id, {
            "hs_title": f"Business case for deal {params['deal_id']}",
            "hs_status": "SENT", "hs_sent_at": now,
            "roi_multiple": str(params["roi_multiple"]),
            "payback_months": str(params["payback_months"]),
            "assumptions": "\n".join(params["assumptions"])}, now)
        document["associations"] = {"deals": {"results": [
            {"id": params["deal_id"], "type": "business_case_to_deal"}]}}
        return document_id, document, business_case_summary(params, document_id, "SENT")
