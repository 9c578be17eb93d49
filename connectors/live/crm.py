"""HubSpot's CRM over httpx, with a private app's access token (`Authorization: Bearer ...`).

Paths: the objects API under `connectors.live.config.CRM_API_PATH` ("/crm/v3", HubSpot's
`/crm/v3/objects/...`; the date-versioned `/crm/objects/2026-03/...` serves the same bodies), each
one in `PATHS` below, and `/account-info/v3/details` for the check.

What each tool sends, and what makes it safe to send again (HubSpot's CRM takes no idempotency
key):

    crm.log_note            search the notes for `warden_decision_id` = the decision id; none:
                            POST /objects/notes, the decision id in that property, associated with
                            the record (note→contact 202, →company 190, →deal 214)
    crm.upsert_contact      GET the contact by email (the previous values of the properties it
                            sets, and whether it is new), then POST /objects/contacts/batch/upsert
                            by email (objectWriteTraceId: the decision id); applying it twice is
                            the same as once
    crm.update_deal_stage   GET the deal (its stage before: previous_stage), then PATCH
                            /objects/deals/{id} dealstage (and amount); twice is the same as once
    crm.delete_contact      POST /objects/contacts/batch/archive, 100 ids per request (HubSpot's
                            batch limit); archiving an archived contact changes nothing
    crm.send_business_case  an email engagement on the deal (POST /objects/emails,
                            hs_email_status SENT, the numbers and assumptions in hs_email_text,
                            associated with the deal, 210), found again like a note by its
                            `warden_decision_id`; HubSpot records it on the deal's timeline, it
                            does not deliver mail
    crm.delete_note         DELETE /objects/notes/{id}: 204, or 404 when it is already gone

Reconciliation (`find`), after an unknown outcome: a note or business case by its decision id; a
contact whose properties equal the requested values (its previous values and `new` read from the
property history against the first attempt's time, within CLOCK_TOLERANCE); a deal at the target
stage (previous_stage from the history likewise); contacts all archived (a batch read finds none
of them). A search may miss an object created in the last seconds (HubSpot indexes them with a
delay): a retry within seconds of a note created and unanswered may then log it a second time.

Setting the portal up: a private app with the scopes below, and a single-line text property
`warden_decision_id` on notes and on emails (Settings → Properties); without it HubSpot refuses
the note (validation_error, PROPERTY_DOESNT_EXIST).

Scopes, per tool:

    crm.log_note            crm.objects.contacts.write, crm.objects.contacts.read (notes live
                            under the contacts scopes); crm.objects.deals.read or
                            crm.objects.companies.read for a note on a deal or a company
    crm.delete_note         crm.objects.contacts.write
    crm.upsert_contact      crm.objects.contacts.read, crm.objects.contacts.write
    crm.update_deal_stage   crm.objects.deals.read, crm.objects.deals.write
    crm.delete_contact      crm.objects.contacts.write, crm.objects.contacts.read
    crm.send_business_case  crm.objects.contacts.write, crm.objects.contacts.read,
                            sales-email-read, crm.objects.deals.read
    check                   none beyond a valid token (account details)

Rate limits: HubSpot allows a private app `requests_per_10s` (100 to 190 by plan) in any rolling
10 s, and searches 5 per second. Every request takes a token from a bucket whose burst plus
refill over the window stay one below the limit (a token bucket of `rate` in bursts of `rate`
would send twice the limit in a window); a search also from the search bucket. A 429 pauses the
buckets for its Retry-After and fails the call as transient, with `retry_after`.

Errors: HubSpot's body `{"status": "error", "message", "correlationId", "category"}`:

    400, 404, 409  PermanentError, code: the category in lower case (validation_error,
                   object_not_found, conflict), the message and correlation id
    401            PermanentError(credentials_refused)
    403            PermanentError(forbidden), with HubSpot's message (a missing scope)
    423            TransientError(locked), after 2 s unless Retry-After says otherwise
    429            TransientError(rate_limited, retry_after)
    503            TransientError(service_unavailable); other 5xx TransientError(provider_error)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from connectors.base import ConnectorError, ExecutionResult, PermanentError, TransientError
from connectors.crm import (
    NOTE_TARGETS,
    TOOLS,
    amount_cents,
    amount_string,
    business_case_summary,
    hubspot_value,
    note_target,
)
from connectors.live.base import LiveConnector
from connectors.live.config import CRM_API_PATH, CrmConfig
from connectors.live.http import client, json_body, redact, retry_after, transport_error
from connectors.live.runner import CallRunner
from connectors.live.throttle import OnWait, TokenBucket

_OBJECTS = f"{CRM_API_PATH}/objects"
#: Every path this connector calls, in one place.
PATHS: Mapping[str, str] = {
    "contact": _OBJECTS + "/contacts/{id}",
    "contacts_upsert": _OBJECTS + "/contacts/batch/upsert",
    "contacts_archive": _OBJECTS + "/contacts/batch/archive",
    "contacts_read": _OBJECTS + "/contacts/batch/read",
    "deal": _OBJECTS + "/deals/{id}",
    "notes": _OBJECTS + "/notes",
    "note": _OBJECTS + "/notes/{id}",
    "notes_search": _OBJECTS + "/notes/search",
    "emails": _OBJECTS + "/emails",
    "emails_search": _OBJECTS + "/emails/search",
    "account": "/account-info/v3/details",
}
#: The property of notes and emails that carries the decision id (a custom property of the portal).
DECISION_PROPERTY = "warden_decision_id"
#: Association type id from an email to a deal (HUBSPOT_DEFINED).
EMAIL_TO_DEAL = 210
#: HubSpot's batch limit (archive, read).
BATCH = 100
#: How far HubSpot's clock and ours may differ when the history is read against a first attempt.
CLOCK_TOLERANCE = 2.0
#: Searches per second HubSpot allows a token.
SEARCHES_PER_SECOND = 5
_MESSAGE_CHARS = 500


def rolling_window_bucket(limit: int, window: float, *, name: str, on_wait: OnWait | None = None,
                          clock: Callable[[], float] = time.monotonic) -> TokenBucket:
    """A token bucket that never sends more than `limit - 1` requests in any `window` seconds
    (one kept spare for arrival jitter): bursts of a tenth of it, the rest refilled over the window."""
    allowed = max(1, limit - 1)
    burst = max(1, allowed // 10)
    refill = max(allowed - burst, 0.5) / window  # per second
    return TokenBucket(burst, burst / refill, name=name, on_wait=on_wait, clock=clock)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def _value_before(history: Sequence[Mapping[str, Any]], target: str | None, since: float) -> str | None:
    """A property's value before the write made at or after `since` that set it to `target`
    (history newest first); the current value when no such write is in the history."""
    for index, entry in enumerate(history):
        if entry.get("value") == target and _epoch(str(entry["timestamp"])) >= since - CLOCK_TOLERANCE:
            older = history[index + 1] if index + 1 < len(history) else None
            return (older.get("value") or None) if older is not None else None
    return (history[0].get("value") or None) if history else None


class CrmLive(LiveConnector):
    """HubSpot's CRM, for real (see the module docstring)."""

    name = "crm"
    tools = TOOLS
    #: HubSpot's rolling window for `requests_per_10s`
    window_seconds: ClassVar[float] = 10.0

    def __init__(self, config: CrmConfig, *, runner: CallRunner, timeout: float,
                 on_wait: OnWait | None = None) -> None:
        super().__init__(runner=runner, timeout=timeout, on_wait=on_wait)
        if config.requests_per_10s < 1:
            raise ValueError("crm: requests_per_10s must be at least 1")
        self.config = config
        self._secrets = (config.access_token,)
        self._client: httpx.AsyncClient | None = None
        self._bucket = rolling_window_bucket(config.requests_per_10s, self.window_seconds,
                                             name="crm", on_wait=on_wait)
        self._search_bucket = rolling_window_bucket(SEARCHES_PER_SECOND, 1.0, name="crm", on_wait=on_wait)
        self._paused_until = 0.0  # monotonic: a 429's Retry-After

    # -- the connector -------------------------------------------------------------------------

    async def call(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        if tool == "crm.log_note":
            return await self._log_note(params, idempotency_key)
        if tool == "crm.upsert_contact":
            return await self._upsert_contact(params, idempotency_key)
        if tool == "crm.update_deal_stage":
            return await self._update_deal_stage(params)
        if tool == "crm.delete_contact":
            return await self._delete_contacts(params, idempotency_key)
        if tool == "crm.send_business_case":
            return await self._send_business_case(params, idempotency_key)
        return await self._delete_note(params)

    async def find(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                   first_attempt_at: float) -> ExecutionResult | None:
        if tool == "crm.log_note":
            note = await self._by_decision("notes", idempotency_key, tool)
            return None if note is None else self._note_result(params, note, replayed=True)
        if tool == "crm.send_business_case":
            email = await self._by_decision("emails", idempotency_key, tool)
            return None if email is None else self._case_result(params, email, replayed=True)
        if tool == "crm.upsert_contact":
            return await self._find_contact(params, first_attempt_at)
        if tool == "crm.update_deal_stage":
            return await self._find_deal(params, first_attempt_at)
        if tool == "crm.delete_contact":
            return await self._find_archived(params, idempotency_key)
        return await self._find_deleted_note(params)

    async def read_only(self) -> str:
        response = await self._send("GET", PATHS["account"], "crm check")
        account = json_body(response, "crm check")
        return f"account {account.get('portalId')} readable"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- notes ---------------------------------------------------------------------------------

    async def _log_note(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "crm.log_note"
        existing = await self._by_decision("notes", key, what)
        if existing is not None:  # a re-drive: the note was written the first time
            return self._note_result(params, existing, replayed=True)
        kind, record = note_target(params["record_id"])
        body = {"properties": {"hs_timestamp": _now(), "hs_note_body": params["body"], DECISION_PROPERTY: key},
                "associations": [_association(record, NOTE_TARGETS[kind][1])]}
        note = json_body(await self._send("POST", PATHS["notes"], what, json=body), what)
        return self._note_result(params, note, replayed=False)

    @staticmethod
    def _note_result(params: Mapping[str, Any], note: Mapping[str, Any], *, replayed: bool) -> ExecutionResult:
        note_id = str(note["id"])
        return ExecutionResult(note_id, {"note_id": note_id, "record_id": params["record_id"],
                                         "body_chars": len(params["body"])},
                               replayed=replayed, response=note)

    async def _delete_note(self, params: Mapping[str, Any]) -> ExecutionResult:
        note_id = params["note_id"]
        path = PATHS["note"].format(id=quote(note_id, safe=""))
        await self._send("DELETE", path, "crm.delete_note", accept=(204, 200, 404))
        return ExecutionResult(note_id, {"note_id": note_id, "archived": True})

    async def _find_deleted_note(self, params: Mapping[str, Any]) -> ExecutionResult | None:
        note_id = params["note_id"]
        path = PATHS["note"].format(id=quote(note_id, safe=""))
        response = await self._send("GET", path, "crm.delete_note", accept=(200, 404),
                                    params={"properties": "hs_object_id"})
        if response.status_code == 200:
            return None
        return ExecutionResult(note_id, {"note_id": note_id, "archived": True})

    # -- contacts ------------------------------------------------------------------------------

    async def _upsert_contact(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "crm.upsert_contact"
        email = params["email"].lower()
        names = sorted(params["properties"])
        before = await self._read_contact(email, names, what)
        previous = {name: (before["properties"].get(name) or None) if before else None for name in names}
        body = {"inputs": [{"id": email, "idProperty": "email", "objectWriteTraceId": key,
                            "properties": {k: hubspot_value(v) for k, v in params["properties"].items()}}]}
        answer = json_body(await self._send("POST", PATHS["contacts_upsert"], what, json=body,
                                            accept=(200, 201, 207)), what)
        results = answer.get("results") or []
        if answer.get("errors") or not results:
            raise _batch_error(answer, what, self._secrets)
        contact = results[0]
        new = bool(contact.get("new", before is None))
        return ExecutionResult(str(contact["id"]), {"contact_id": str(contact["id"]), "new": new,
                                                    "properties": names, "previous": previous},
                               response=contact)

    async def _read_contact(self, email: str, names: Sequence[str], what: str, *,
                            history: bool = False) -> dict[str, Any] | None:
        query = {"idProperty": "email", "properties": ",".join(["email", *names])}
        if history:
            query["propertiesWithHistory"] = ",".join(names)
        path = PATHS["contact"].format(id=quote(email, safe="@"))
        response = await self._send("GET", path, what, params=query, accept=(200, 404))
        if response.status_code == 404:
            return None
        found: dict[str, Any] = json_body(response, what)
        return found

    async def _find_contact(self, params: Mapping[str, Any], since: float) -> ExecutionResult | None:
        what = "crm.upsert_contact"
        names = sorted(params["properties"])
        contact = await self._read_contact(params["email"].lower(), names, what, history=True)
        wanted = {k: hubspot_value(v) for k, v in params["properties"].items()}
        if contact is None or any((contact["properties"].get(k) or "") != v for k, v in wanted.items()):
            return None
        histories = contact.get("propertiesWithHistory") or {}
        previous = {name: _value_before(histories.get(name) or [], wanted[name], since) for name in names}
        new = _epoch(contact["createdAt"]) >= since - CLOCK_TOLERANCE
        return ExecutionResult(str(contact["id"]), {"contact_id": str(contact["id"]), "new": new,
                                                    "properties": names, "previous": previous},
                               response=contact)

    async def _delete_contacts(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        ids = list(params["contact_ids"])
        for start in range(0, len(ids), BATCH):
            body = {"inputs": [{"id": i} for i in ids[start:start + BATCH]]}
            await self._send("POST", PATHS["contacts_archive"], "crm.delete_contact", json=body,
                             accept=(204, 200))
        return self._archived_result(ids, key)

    async def _find_archived(self, params: Mapping[str, Any], key: str) -> ExecutionResult | None:
        """The archive took effect when a batch read finds none of the contacts; if any is still
        there, None: archiving them all again is harmless."""
        what = "crm.delete_contact"
        ids = list(params["contact_ids"])
        for start in range(0, len(ids), BATCH):
            body = {"inputs": [{"id": i} for i in ids[start:start + BATCH]], "properties": ["email"]}
            answer = json_body(await self._send("POST", PATHS["contacts_read"], what, json=body,
                                                accept=(200, 207)), what)
            if answer.get("results"):
                return None
        return self._archived_result(ids, key)

    @staticmethod
    def _archived_result(ids: list[str], key: str) -> ExecutionResult:
        # HubSpot answers an archive 204 without a body: the batch is named by the decision id
        return ExecutionResult(key, {"batch_id": key, "archived": len(ids), "contact_ids": ids[:20],
                                     "truncated": len(ids) > 20})

    # -- deals ---------------------------------------------------------------------------------

    async def _update_deal_stage(self, params: Mapping[str, Any]) -> ExecutionResult:
        what = "crm.update_deal_stage"
        path = PATHS["deal"].format(id=quote(params["deal_id"], safe=""))
        before = json_body(await self._send("GET", path, what, params={"properties": "dealstage,amount"}), what)
        properties = {"dealstage": params["stage"]}
        if params.get("amount") is not None:
            properties["amount"] = amount_string(params["amount"])
        deal = json_body(await self._send("PATCH", path, what, json={"properties": properties}), what)
        known = before.get("properties") or {}
        return self._deal_result(params, deal, known.get("dealstage") or None, known.get("amount"))

    async def _find_deal(self, params: Mapping[str, Any], since: float) -> ExecutionResult | None:
        what = "crm.update_deal_stage"
        path = PATHS["deal"].format(id=quote(params["deal_id"], safe=""))
        deal = json_body(await self._send("GET", path, what, params={
            "properties": "dealstage,amount", "propertiesWithHistory": "dealstage,amount"}), what)
        properties = deal.get("properties") or {}
        if properties.get("dealstage") != params["stage"]:
            return None
        amount = params.get("amount")
        if amount is not None and amount_cents(properties.get("amount")) != amount:
            return None
        histories = deal.get("propertiesWithHistory") or {}
        stage_before = _value_before(histories.get("dealstage") or [], params["stage"], since)
        amount_before = None
        if amount is not None:
            amount_before = _value_before(histories.get("amount") or [], properties.get("amount"), since)
        return self._deal_result(params, deal, stage_before, amount_before)

    @staticmethod
    def _deal_result(params: Mapping[str, Any], deal: Mapping[str, Any], previous_stage: str | None,
                     previous_amount: Any) -> ExecutionResult:
        summary: dict[str, Any] = {"deal_id": params["deal_id"], "crm_deal_id": str(deal["id"]),
                                   "stage": params["stage"], "previous_stage": previous_stage}
        if params.get("amount") is not None:
            summary["amount"] = params["amount"]
            summary["previous_amount"] = amount_cents(previous_amount)
        return ExecutionResult(str(deal["id"]), summary, response=deal)

    # -- business cases ------------------------------------------------------------------------

    async def _send_business_case(self, params: Mapping[str, Any], key: str) -> ExecutionResult:
        what = "crm.send_business_case"
        existing = await self._by_decision("emails", key, what)
        if existing is not None:
            return self._case_result(params, existing, replayed=True)
        lines = [f"Expected return: {params['roi_multiple']:g}x the cost.",
                 f"Payback: {params['payback_months']:g} months.", "", "Assumptions:",
                 *(f"- {assumption}" for assumption in params["assumptions"])]
        body = {"properties": {"hs_timestamp": _now(), "hs_email_direction": "EMAIL", "hs_email_status": "SENT",
                               "hs_email_subject": f"Business case for deal {params['deal_id']}",
                               "hs_email_text": "\n".join(lines), DECISION_PROPERTY: key},
                "associations": [_association(params["deal_id"], EMAIL_TO_DEAL)]}
        email = json_body(await self._send("POST", PATHS["emails"], what, json=body), what)
        return self._case_result(params, email, replayed=False)

    @staticmethod
    def _case_result(params: Mapping[str, Any], email: Mapping[str, Any], *, replayed: bool) -> ExecutionResult:
        status = (email.get("properties") or {}).get("hs_email_status") or "SENT"
        return ExecutionResult(str(email["id"]), business_case_summary(params, str(email["id"]), status),
                               replayed=replayed, response=email)

    async def _by_decision(self, kind: str, key: str, what: str) -> dict[str, Any] | None:
        """The note or email carrying `key` in DECISION_PROPERTY (the oldest, should there be two)."""
        wanted = [DECISION_PROPERTY, "hs_timestamp"] + (["hs_email_status"] if kind == "emails" else [])
        body = {"filterGroups": [{"filters": [{"propertyName": DECISION_PROPERTY, "operator": "EQ", "value": key}]}],
                "properties": wanted, "limit": 10}
        answer = json_body(await self._send("POST", PATHS[f"{kind}_search"], what, json=body, search=True), what)
        found = [r for r in answer.get("results") or [] if (r.get("properties") or {}).get(DECISION_PROPERTY) == key]
        found.sort(key=lambda r: (str(r.get("createdAt", "")), str(r["id"]).zfill(20)))
        return found[0] if found else None

    # -- HTTP ----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = client(self.config.api_base.rstrip("/"), timeout=self.timeout,
                                  headers={"Authorization": f"Bearer {self.config.access_token}",
                                           "Accept": "application/json"})
        return self._client

    async def _send(self, method: str, path: str, what: str, *, json: Any = None,
                    params: Mapping[str, str] | None = None, accept: Sequence[int] = (200, 201),
                    search: bool = False) -> httpx.Response:
        """One request through the rate limiters; an answer outside `accept` raises its error."""
        paused = self._paused_until - time.monotonic()
        if paused > self.timeout / 2:  # waiting here would outlive the call's deadline
            raise TransientError(f"{what}: HubSpot asked to wait {paused:.1f} s (rate limit); nothing was sent",
                                 code="rate_limited", retry_after=paused)
        # the search limit first: a request token taken while waiting for a search token would
        # be spent late, in a burst with others, and could push the window over HubSpot's limit
        if search:
            await self._search_bucket.acquire()
        await self._bucket.acquire()
        try:
            response = await self._http().request(method, path, json=json, params=params)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise transport_error(exc, what, self._secrets) from None
        if response.status_code in accept:
            return response
        raise self._error(response, what)

    def _error(self, response: httpx.Response, what: str) -> ConnectorError:
        status = response.status_code
        body: Any = {}
        if response.content and len(response.content) < 1_000_000:
            try:
                body = response.json()
            except ValueError:
                body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("message") or f"HTTP {status}")[:_MESSAGE_CHARS]
        category = str(body.get("category") or body.get("errorType") or "")
        correlation = body.get("correlationId") or response.headers.get("x-hubspot-correlation-id")
        detail = ", ".join(filter(None, [category, f"correlation id {correlation}" if correlation else ""]))
        text = redact(f"{what}: {message}" + (f" ({detail})" if detail else ""), self._secrets)
        after = retry_after(response.headers)
        if status == 401:
            return PermanentError(text, code="credentials_refused")
        if status == 403:
            return PermanentError(text, code="forbidden")
        if status == 429:
            self._pause(after if after is not None else self.window_seconds / 10)
            return TransientError(text, code="rate_limited", retry_after=after)
        if status == 423:
            return TransientError(text, code="locked", retry_after=after if after is not None else 2.0)
        if status == 503:
            return TransientError(text, code="service_unavailable", retry_after=after)
        if status >= 500 or status == 408:
            return TransientError(text, code="provider_error" if status >= 500 else "timeout", retry_after=after)
        return PermanentError(text, code=category.lower() if category else f"http_{status}")

    def _pause(self, seconds: float) -> None:
        """A 429: every request of this connector waits `seconds` first."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._bucket.pause(seconds)
        self._search_bucket.pause(seconds)


def _association(record_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": record_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


def _batch_error(answer: Mapping[str, Any], what: str, secrets: Sequence[str]) -> ConnectorError:
    """A batch answered with errors (207, or no result): the first error's category and message."""
    errors = answer.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    category = str(first.get("category") or "batch_error")
    message = str(first.get("message") or "the batch returned no result")[:_MESSAGE_CHARS]
    return PermanentError(redact(f"{what}: {message} ({category})", secrets), code=category.lower())

