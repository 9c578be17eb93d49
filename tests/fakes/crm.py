"""A fake HubSpot CRM (v3 objects API) on loopback, answering as HubSpot's reference documents.

    fake = FakeHubSpot(rate_limit=10, window_seconds=1.0).start()
    fake.seed("deals", "901", {"dealstage": "appointmentscheduled", "amount": "1200"})
    ...
    fake.stop()

What it serves (paths under /crm/v3, every request with `Authorization: Bearer <token>`):

    GET    /account-info/v3/details                      the portal (portalId, timeZone, ...)
    GET    /crm/v3/objects/{type}/{id}                   ?idProperty=email, properties=a,b,
                                                         propertiesWithHistory=a,b, archived
    PATCH  /crm/v3/objects/{type}/{id}                   {"properties": {...}}
    DELETE /crm/v3/objects/{type}/{id}                   archive: 204 (404 if absent)
    POST   /crm/v3/objects/{type}                        create, with `associations`: 201
    POST   /crm/v3/objects/{type}/search                 filterGroups (EQ, NEQ, IN,
                                                         HAS_PROPERTY), properties, limit, after
    POST   /crm/v3/objects/contacts/batch/upsert         idProperty "email"; `new` per result
    POST   /crm/v3/objects/{type}/batch/archive          at most 100 inputs: 204
    POST   /crm/v3/objects/{type}/batch/read             200, or 207 with OBJECT_NOT_FOUND errors

Objects are `{"id": "<digits>", "properties": {... strings ...}, "createdAt", "updatedAt",
"archived": false}`; every property change is kept in its history (newest first), served as
`propertiesWithHistory`. Errors are HubSpot's body `{"status": "error", "message",
"correlationId", "category"}` with `X-HubSpot-Correlation-Id`; a bad token is a 401
INVALID_AUTHENTICATION. Every answer carries `X-HubSpot-RateLimit-Max`, `-Remaining` and
`-Interval-Milliseconds` for a real rolling window (`rate_limit` requests per `window_seconds`);
past it, 429 with the TEN_SECONDLY_ROLLING body and `Retry-After`. Searches have their own
rolling limit (`search_per_second`).

Notes and emails must carry `warden_decision_id` only if the portal defines it
(`custom_properties`); a property the portal lacks is refused as HubSpot refuses it
(PROPERTY_DOESNT_EXIST). Deal stages are checked when `deal_stages` is given.

The sandbox's magic values, in any id the request names (a path id, `inputs[].id`,
`associations[].to.id`): `..._sandbox_declined` → 400 VALIDATION_ERROR, `..._sandbox_unavailable`
→ 503 with `Retry-After: 1`, `..._sandbox_timeout` → no answer for `hang_seconds`. With
`autocreate`, a contact, company or deal named by id that does not exist is created empty on
first use (as the sandbox treats any id), for suites that never seed.

Effects (`effects`, for "exactly one"): note_created / email_created (key: the
warden_decision_id), contact_upserted (key: the input's objectWriteTraceId), deal_updated,
contact_archived, note_archived, object_archived (key None).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from fakes.base import FakeProvider, Reply, Request

TOKEN = "pat-na1-5c4d3b2a-fake-0000-0000-000000000000"
DECISION_PROPERTY = "warden_decision_id"
DEFAULT_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                  "decisionmakerboughtin", "contractsent", "closedwon", "closedlost")
#: association type id (HUBSPOT_DEFINED) → the object type it points at
ASSOCIATION_TARGETS = {202: "contacts", 190: "companies", 214: "deals",  # from a note
                       198: "contacts", 186: "companies", 210: "deals"}  # from an email
#: what a read returns when it names no properties
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "emails": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
OBJECT_TYPES = frozenset(DEFAULT_PROPERTIES)
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "notes": "note", "emails": "email"}
RATE_LIMIT_BODY = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                   "errorType": "RATE_LIMIT", "correlationId": "", "policyName": "TEN_SECONDLY_ROLLING"}


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Record:
    """One CRM object as the fake stores it."""

    id: str
    type: str
    created: float
    updated: float
    properties: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # newest first
    associations: list[tuple[str, str, int]] = field(default_factory=list)  # (type, id, type id)
    archived_at: float | None = None

    def set(self, name: str, value: str, at: float) -> None:
        self.properties[name] = value
        self.history.setdefault(name, []).insert(0, (value, at))
        self.updated = at


def error(status: int, category: str, message: str, **extra: Any) -> Reply:
    correlation = str(uuid.uuid4())
    body = {"status": "error", "message": message, "correlationId": correlation, "category": category,
            **extra}
    return Reply(status, body, {"X-HubSpot-Correlation-Id": correlation})


def _not_found(object_id: str) -> Reply:
    return error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                 context={"id": [object_id]})


class FakeHubSpot(FakeProvider):
    """HubSpot's CRM objects API for one portal; see the module docstring."""

    name = "hubspot"

    def __init__(self, *, token: str = TOKEN, portal_id: int = 62515, rate_limit: int = 190,
                 window_seconds: float = 10.0, search_per_second: int = 5, daily_limit: int = 1_000_000,
                 custom_properties: Iterable[str] = (DECISION_PROPERTY,),
                 deal_stages: Iterable[str] | None = None, autocreate: bool = False,
                 hang_seconds: float = 5.0) -> None:
        super().__init__()
        self.token = token
        self.portal_id = portal_id
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.search_per_second = search_per_second
        self.daily_limit = daily_limit
        self.custom_properties = frozenset(custom_properties)
        self.deal_stages = frozenset(deal_stages) if deal_stages is not None else None
        self.autocreate = autocreate
        self.hang_seconds = hang_seconds
        self.objects: dict[str, dict[str, Record]] = {kind: {} for kind in OBJECT_TYPES}
        self.throttled = 0  # 429s answered by the rolling windows
        self._ids = itertools.count(51_000_000_001)
        self._window: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._daily = 0
        self._errors_after_effect: list[tuple[str, int, int]] = []

    # -- set-up for tests ----------------------------------------------------------------------

    def seed(self, object_type: str, object_id: str | None = None, properties: dict[str, str] | None = None,
             *, at: float | None = None) -> Record:
        """An existing object (created `at`, default now), as if made in HubSpot's own UI."""
        with self.lock:
            moment = time.time() if at is None else at
            record = Record(object_id or str(next(self._ids)), object_type, moment, moment)
            for name, value in {**(properties or {}), "hs_object_id": record.id}.items():
                record.set(name, value, moment)
            self.objects[object_type][record.id] = record
            return record

    def fail_after_effect(self, route: str, *, status: int = 500, times: int = 1) -> None:
        """The next `times` requests to `route` ("POST /crm/v3/objects/notes") act, then answer
        `status` (HubSpot failing after it committed)."""
        with self.lock:
            self._errors_after_effect.append((route, status, times))

    def live(self, object_type: str) -> list[Record]:
        with self.lock:
            return [r for r in self.objects[object_type].values() if r.archived_at is None]

    # -- the provider --------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "INVALID_AUTHENTICATION",
                         "Authentication credentials not found. This API supports OAuth 2.0 "
                         "authentication and you can find more details at "
                         "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
        reply = self._throttle(request)
        if reply is None:
            try:
                reply = self._route(request)
            except Reply as raised:
                reply = raised
            if 200 <= reply.status < 300:
                reply = self._error_after_effect(request.route) or reply
        correlation = reply.body.get("correlationId") if isinstance(reply.body, dict) else None
        reply.headers.setdefault("X-HubSpot-Correlation-Id", correlation or str(uuid.uuid4()))
        return reply

    def _error_after_effect(self, route: str) -> Reply | None:
        with self.lock:
            for index, (pattern, status, times) in enumerate(self._errors_after_effect):
                if pattern == route and times > 0:
                    self._errors_after_effect[index] = (pattern, status, times - 1)
                    return error(status, "INTERNAL_ERROR", "internal error")
        return None

    def _throttle(self, request: Request) -> Reply | None:
        """The rolling windows: every request counts, a search also against its own limit."""
        with self.lock:
            now = time.monotonic()
            search = request.path.endswith("/search")
            windows = [(self._window, self.rate_limit, self.window_seconds)]
            if search:
                windows.append((self._searches, self.search_per_second, 1.0))
            for calls, limit, span in windows:
                while calls and calls[0] <= now - span:
                    calls.popleft()
                if len(calls) >= limit:
                    self.throttled += 1
                    wait = max(1, math.ceil(calls[0] + span - now))
                    reply = Reply(429, {**RATE_LIMIT_BODY, "correlationId": str(uuid.uuid4())},
                                  {"Retry-After": str(wait)})
                    reply.headers.update(self._limit_headers())
                    return reply
            for calls, _, _ in windows:
                calls.append(now)
            self._daily += 1
        return None

    def _limit_headers(self) -> dict[str, str]:
        return {"X-HubSpot-RateLimit-Max": str(self.rate_limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_limit - len(self._window))),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily))}

    def _route(self, request: Request) -> Reply:
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        method = request.method
        if parts == ["account-info", "v3", "details"] and method == "GET":
            return self._ok(200, self._account())
        if parts[:3] != ["crm", "v3", "objects"] or len(parts) < 4 or parts[3] not in OBJECT_TYPES:
            raise error(404, "OBJECT_NOT_FOUND", f"No route for {method} {request.path}")
        kind, rest = parts[3], parts[4:]
        body = request.json() if request.body else {}
        if method == "POST" and rest == []:
            return self._create(kind, body)
        if method == "POST" and rest == ["search"]:
            return self._search(kind, body)
        if method == "POST" and rest == ["batch", "upsert"] and kind == "contacts":
            return self._upsert(body)
        if method == "POST" and rest == ["batch", "archive"]:
            return self._archive_batch(kind, body)
        if method == "POST" and rest == ["batch", "read"]:
            return self._read_batch(kind, body, request.query)
        if len(rest) == 1 and method in ("GET", "PATCH", "DELETE"):
            self._magic([rest[0]])
            if method == "GET":
                return self._get(kind, rest[0], request.query)
            if method == "PATCH":
                return self._patch(kind, rest[0], body)
            return self._delete(kind, rest[0])
        raise error(405, "INVALID_REQUEST", f"{method} is not supported on {request.path}")

    def _ok(self, status: int, body: Any) -> Reply:
        with self.lock:
            return Reply(status, body, self._limit_headers())

    # -- magic values --------------------------------------------------------------------------

    def _magic(self, ids: Iterable[Any]) -> None:
        for value in ids:
            text = str(value)
            if "sandbox_declined" in text:
                raise error(400, "VALIDATION_ERROR", f"Object {text} was refused: its values are not valid",
                            errors=[{"message": f"{text} was declined", "in": "id"}])
            if "sandbox_unavailable" in text:
                raise Reply(503, {"status": "error", "message": "Service temporarily unavailable",
                                  "correlationId": str(uuid.uuid4()), "category": "SERVICE_UNAVAILABLE"},
                            {"Retry-After": "1"})
            if "sandbox_timeout" in text:
                time.sleep(self.hang_seconds)
                raise error(504, "GATEWAY_TIMEOUT", "the request timed out")

    # -- objects -------------------------------------------------------------------------------

    def _find(self, kind: str, object_id: str, *, id_property: str | None = None,
              archived: bool = False) -> Record | None:
        with self.lock:
            if id_property not in (None, "", "hs_object_id"):
                wanted = object_id.lower() if id_property == "email" else object_id
                for record in self.objects[kind].values():
                    if record.properties.get(id_property) == wanted and (record.archived_at is not None) == archived:
                        return record
                return None
            record = self.objects[kind].get(object_id)
            if record is None and self.autocreate and kind in ("contacts", "companies", "deals") and not archived:
                record = self.seed(kind, object_id)
            if record is not None and (record.archived_at is not None) == archived:
                return record
            return None

    def _view(self, record: Record, names: Iterable[str] | None = None,
              history: Iterable[str] = ()) -> dict[str, Any]:
        """The object as HubSpot serialises it; `names` None: every property it has."""
        if names is None:
            properties: dict[str, str | None] = dict(record.properties)
        else:
            properties = {name: record.properties.get(name) for name in names}
        body: dict[str, Any] = {"id": record.id, "properties": properties, "createdAt": iso(record.created),
                                "updatedAt": iso(record.updated), "archived": record.archived_at is not None}
        if record.archived_at is not None:
            body["archivedAt"] = iso(record.archived_at)
        if history:
            body["propertiesWithHistory"] = {
                name: [{"value": value, "timestamp": iso(at), "sourceType": "INTEGRATION",
                        "sourceId": "private-app"} for value, at in record.history.get(name, [])]
                for name in history}
        return body

    @staticmethod
    def _names(query: dict[str, str], key: str) -> list[str]:
        return [name for name in query.get(key, "").split(",") if name]

    def _get(self, kind: str, object_id: str, query: dict[str, str]) -> Reply:
        record = self._find(kind, object_id, id_property=query.get("idProperty"),
                            archived=query.get("archived") == "true")
        if record is None:
            raise _not_found(object_id)
        names = self._names(query, "properties") or list(DEFAULT_PROPERTIES[kind])
        with self.lock:
            return self._ok(200, self._view(record, names, self._names(query, "propertiesWithHistory")))

    def _check_properties(self, kind: str, properties: dict[str, Any]) -> dict[str, str]:
        values = {name: _string(value) for name, value in properties.items()}
        invalid = []
        if kind in ("notes", "emails"):
            invalid += [{"isValid": False, "message": f'Property "{name}" does not exist',
                         "error": "PROPERTY_DOESNT_EXIST", "name": name}
                        for name in values if name.startswith("warden_") and name not in self.custom_properties]
        stage = values.get("dealstage")
        if kind == "deals" and self.deal_stages is not None and stage is not None and stage not in self.deal_stages:
            invalid.append({"isValid": False, "message": f"{stage} was not one of the allowed options: "
                            f"[{', '.join(sorted(self.deal_stages))}]", "error": "INVALID_OPTION",
                            "name": "dealstage"})
        if invalid:
            raise error(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(invalid)}")
        return values

    def _patch(self, kind: str, object_id: str, body: dict[str, Any]) -> Reply:
        record = self._find(kind, object_id)
        if record is None:
            raise _not_found(object_id)
        values = self._check_properties(kind, body.get("properties") or {})
        with self.lock:
            now = time.time()
            for name, value in values.items():
                record.set(name, value, now)
            record.set("hs_lastmodifieddate", iso(now), now)
            self.effect(f"{SINGULAR[kind]}_updated", None, id=record.id, properties=values)
            return self._ok(200, self._view(record))

    def _delete(self, kind: str, object_id: str) -> Reply:
        record = self._find(kind, object_id)
        if record is None:
            raise _not_found(object_id)
        with self.lock:
            record.archived_at = time.time()
            self.effect("note_archived" if kind == "notes" else "object_archived", None, id=record.id,
                        type=kind)
            return self._ok(204, None)

    def _create(self, kind: str, body: dict[str, Any]) -> Reply:
        associations = body.get("associations") or []
        self._magic(a.get("to", {}).get("id") for a in associations)
        values = self._check_properties(kind, body.get("properties") or {})
        if kind in ("notes", "emails") and "hs_timestamp" not in values:
            raise error(400, "VALIDATION_ERROR", "Property values were not valid: "
                        '[{"isValid":false,"message":"hs_timestamp is required","error":"REQUIRED_FIELD",'
                        '"name":"hs_timestamp"}]')
        links = []
        for association in associations:
            target_id = str(association.get("to", {}).get("id"))
            for kind_of in association.get("types", []):
                target = ASSOCIATION_TARGETS.get(kind_of.get("associationTypeId"))
                if target is None or self._find(target, target_id) is None:
                    raise error(400, "VALIDATION_ERROR", f"One or more associations are invalid: "
                                f"{target or 'unknown type'} {target_id} (type "
                                f"{kind_of.get('associationTypeId')})")
                links.append((target, target_id, int(kind_of["associationTypeId"])))
        with self.lock:
            now = time.time()
            record = self.seed(kind, None, {**values, "hs_createdate": iso(now), "hs_lastmodifieddate": iso(now)},
                               at=now)
            record.associations = links
            self.effect(f"{SINGULAR[kind]}_created", values.get(DECISION_PROPERTY), id=record.id,
                        associations=links)
            return self._ok(201, self._view(record))

    def _search(self, kind: str, body: dict[str, Any]) -> Reply:
        groups = body.get("filterGroups") or []
        limit = int(body.get("limit") or 10)
        if limit > 200 or len(groups) > 5:
            raise error(400, "VALIDATION_ERROR", "limit must be at most 200, filterGroups at most 5")
        names = body.get("properties") or list(DEFAULT_PROPERTIES[kind])
        with self.lock:
            found = [r for r in self.objects[kind].values()
                     if r.archived_at is None and (not groups or any(_matches(r, g) for g in groups))]
            found.sort(key=lambda r: (r.created, int(r.id)))
            start = int(body.get("after") or 0)
            page = found[start:start + limit]
            answer: dict[str, Any] = {"total": len(found), "results": [self._view(r, names) for r in page]}
            if start + limit < len(found):
                after = str(start + limit)
                answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
            return self._ok(200, answer)

    def _inputs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise error(400, "VALIDATION_ERROR", "inputs must be a non-empty list")
        if len(inputs) > 100:
            raise error(400, "VALIDATION_ERROR", f"Batch size {len(inputs)} is too large: at most 100 inputs")
        self._magic(item.get("id") for item in inputs)
        return inputs

    def _upsert(self, body: dict[str, Any]) -> Reply:
        started = time.time()
        inputs = self._inputs(body)
        for item in inputs:
            if item.get("idProperty") != "email":
                raise error(400, "VALIDATION_ERROR", "contacts are upserted by idProperty email here")
        results = []
        with self.lock:
            for item in inputs:
                email = str(item["id"]).lower()
                values = self._check_properties("contacts", item.get("properties") or {})
                record = self._find("contacts", email, id_property="email")
                new = record is None
                now = time.time()
                if record is None:
                    record = self.seed("contacts", None, {"email": email, "createdate": iso(now)}, at=now)
                for name, value in values.items():
                    record.set(name, value, now)
                record.set("lastmodifieddate", iso(now), now)
                self.effect("contact_upserted", item.get("objectWriteTraceId"), id=record.id, new=new,
                            properties=values)
                result = {**self._view(record), "new": new}
                if item.get("objectWriteTraceId"):
                    result["objectWriteTraceId"] = item["objectWriteTraceId"]
                results.append(result)
            return self._ok(200, {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                                  "completedAt": iso(time.time())})

    def _archive_batch(self, kind: str, body: dict[str, Any]) -> Reply:
        inputs = self._inputs(body)
        with self.lock:
            now = time.time()
            for item in inputs:
                record = self.objects[kind].get(str(item.get("id")))
                if record is not None and record.archived_at is None:
                    record.archived_at = now
                    self.effect("contact_archived" if kind == "contacts" else "object_archived", None,
                                id=record.id, type=kind)
            return self._ok(204, None)

    def _read_batch(self, kind: str, body: dict[str, Any], query: dict[str, str]) -> Reply:
        started = time.time()
        inputs = self._inputs(body)
        archived = query.get("archived") == "true"
        names = body.get("properties") or list(DEFAULT_PROPERTIES[kind])
        with self.lock:
            results, missing = [], []
            for item in inputs:
                record = self._find(kind, str(item.get("id")), id_property=body.get("idProperty"),
                                    archived=archived)
                if record is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(self._view(record, names))
            answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                                      "completedAt": iso(time.time())}
            if not missing:
                return self._ok(200, answer)
            answer["numErrors"] = 1
            answer["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                 "message": f"Could not get some {SINGULAR[kind].upper()} objects, they may be "
                                            "deleted or not exist. Check that ids are valid.",
                                 "context": {"ids": missing}}]
            return self._ok(207, answer)

    def _account(self) -> dict[str, Any]:
        return {"portalId": self.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
                "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1"}

    # -- reading, for tests --------------------------------------------------------------------

    def notes_for(self, decision_id: str) -> list[Record]:
        return [r for r in self.live("notes") if r.properties.get(DECISION_PROPERTY) == decision_id]

    def records(self) -> Iterator[Record]:
        with self.lock:
            for kind in OBJECT_TYPES:
                yield from list(self.objects[kind].values())


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _matches(record: Record, group: dict[str, Any]) -> bool:
    for rule in group.get("filters") or []:
        name, operator = rule.get("propertyName"), rule.get("operator", "EQ")
        value = record.properties.get(str(name))
        if operator == "EQ" and value != _string(rule.get("value")):
            return False
        if operator == "NEQ" and value == _string(rule.get("value")):
            return False
        if operator == "IN" and value not in [_string(v) for v in rule.get("values") or []]:
            return False
        if operator == "HAS_PROPERTY" and not value:
            return False
        if operator not in ("EQ", "NEQ", "IN", "HAS_PROPERTY"):
            raise error(400, "VALIDATION_ERROR", f"operator {operator} is not supported by this fake")
    return True
