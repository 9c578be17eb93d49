"""The live CRM connector against a fake HubSpot on loopback: every tool, its errors, its
reconciliation and compensation, and the rate limits, through `CrmLive.execute`, `reconcile` and
`check` as the outbox calls them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConnectorError,
    NotReversible,
    PermanentError,
    TransientError,
    UnknownOutcomeError,
)
from connectors.call_ledger import SandboxCallLedger
from connectors.crm import TOOLS, CrmSandbox
from connectors.live.config import CrmConfig
from connectors.live.crm import DECISION_PROPERTY, CrmLive, rolling_window_bucket
from connectors.live.runner import CallRunner
from fakes.crm import RATE_LIMIT_BODY, FakeHubSpot

SPECS = {spec.name: spec for spec in TOOLS}
EXAMPLES: dict[str, dict[str, Any]] = {
    "crm.log_note": {"record_id": "51000000777", "body": "Called back, wants a quote for 40 units."},
    "crm.upsert_contact": {"email": "ada@example.com", "properties": {"firstname": "Ada", "lifecyclestage": "lead"}},
    "crm.update_deal_stage": {"deal_id": "9001", "stage": "qualifiedtobuy", "amount": 1500000},
    "crm.delete_contact": {"contact_ids": ["51000000777"]},
    "crm.send_business_case": {"deal_id": "9001", "roi_multiple": 2.8, "payback_months": 7.0,
                               "assumptions": ["40 seats", "current churn 3%"]},
    "crm.delete_note": {"note_id": "51000000999"},
}


class FastWindowCrm(CrmLive):
    """HubSpot's rolling window shortened to a second, so that a test can fill it quickly."""

    window_seconds = 1.0


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    hub = FakeHubSpot(hang_seconds=1.0)
    hub.start()
    hub.seed("contacts", "51000000777", {"email": "grace@example.com", "firstname": "Grace"})
    hub.seed("deals", "9001", {"dealstage": "appointmentscheduled", "amount": "1200"}, at=time.time() - 60)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def connect(fake: FakeHubSpot, runner: CallRunner, opened: list[CrmLive]) -> Iterator[Any]:

    def open_crm(*, token: str | None = None, timeout: float = 2.0, per_10s: int = 1000,
                 cls: type[CrmLive] = CrmLive, hub: FakeHubSpot | None = None) -> CrmLive:
        hub = hub or fake
        crm = cls(CrmConfig(access_token=token or hub.token, api_base=hub.base_url, requests_per_10s=per_10s),
                  runner=runner, timeout=timeout)
        opened.append(crm)
        return crm

    yield open_crm


@pytest.fixture
def crm(connect: Any) -> CrmLive:
    return connect()


def sandbox_summary(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    sandbox = CrmSandbox(SandboxCallLedger(None))
    return dict(sandbox.execute(tool, params, idempotency_key="k-sandbox").summary)


def wait_for(condition: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the fake never got there"
        time.sleep(0.02)


# ---- the summaries are the sandbox's ---------------------------------------------------------

@pytest.mark.parametrize("tool", list(EXAMPLES))
def test_live_summaries_have_the_sandbox_keys(crm: CrmLive, fake: FakeHubSpot, tool: str) -> None:
    if tool == "crm.delete_note":
        fake.seed("notes", "51000000999", {"hs_timestamp": "2026-01-01T00:00:00Z"})
    result = crm.execute(tool, EXAMPLES[tool], idempotency_key=f"dec-{tool}")
    assert set(result.summary) == set(sandbox_summary(tool, EXAMPLES[tool]))
    assert result.external_id and not result.replayed and not result.reconciled


# ---- notes -----------------------------------------------------------------------------------

def test_a_note_carries_the_decision_id_and_its_association(crm: CrmLive, fake: FakeHubSpot) -> None:
    result = crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n1")
    (note,) = fake.notes_for("dec-n1")
    assert result.external_id == note.id == result.summary["note_id"]
    assert note.properties["hs_note_body"].startswith("Called back") and note.properties["hs_timestamp"]
    assert note.associations == [("contacts", "51000000777", 202)]
    assert result.summary == {"note_id": note.id, "record_id": "51000000777", "body_chars": 40}
    assert fake.effects_by_key("note_created") == {"dec-n1": 1}
    assert fake.requests("POST /crm/v3/objects/notes/search")  # looked before writing


@pytest.mark.parametrize(("record_id", "expected"), [("deal:9001", ("deals", "9001", 214)),
                                                     ("company:77", ("companies", "77", 190))])
def test_a_note_on_a_deal_or_company_uses_their_association(
    crm: CrmLive, fake: FakeHubSpot, record_id: str, expected: tuple[str, str, int]
) -> None:
    fake.seed("companies", "77", {"name": "Acme"})
    crm.execute("crm.log_note", {"record_id": record_id, "body": "ok"}, idempotency_key="dec-n2")
    assert fake.notes_for("dec-n2")[0].associations == [expected]


def test_the_same_decision_twice_writes_one_note(crm: CrmLive, fake: FakeHubSpot) -> None:
    first = crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n3")
    again = crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n3")
    assert again.replayed and again.external_id == first.external_id and again.summary == first.summary
    assert fake.effects_by_key("note_created") == {"dec-n3": 1}


def test_a_5xx_then_success_writes_one_note(crm: CrmLive, fake: FakeHubSpot) -> None:
    fake.fail("POST /crm/v3/objects/notes", status=502, body={"status": "error", "message": "Bad gateway"})
    with pytest.raises(TransientError) as refused:
        crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n4")
    assert refused.value.code == "provider_error" and "Bad gateway" in str(refused.value)
    crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n4")
    # HubSpot failing after it wrote the note: the retry finds it instead of writing another
    fake.fail_after_effect("POST /crm/v3/objects/notes", status=500)
    with pytest.raises(TransientError):
        crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n5")
    retried = crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n5")
    assert retried.replayed
    assert fake.effects_by_key("note_created") == {"dec-n4": 1, "dec-n5": 1}


def test_a_connection_dropped_after_sending_is_reconciled_not_sent_again(crm: CrmLive, fake: FakeHubSpot) -> None:
    fake.fail("POST /crm/v3/objects/notes", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n6")
    found = crm.reconcile("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n6",
                          first_attempt_at=time.time() - 1)
    assert found is not None and found.reconciled
    (note,) = fake.notes_for("dec-n6")
    assert found.external_id == note.id and found.summary["note_id"] == note.id
    assert len(fake.requests("POST /crm/v3/objects/notes")) == 1
    assert crm.reconcile("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-never",
                         first_attempt_at=time.time()) is None


def test_a_timeout_is_an_unknown_outcome_then_reconciled(connect: Any, fake: FakeHubSpot) -> None:
    crm = connect(timeout=0.4)
    fake.fail("POST /crm/v3/objects/notes", kind="hang_after", seconds=0.8)
    started = time.time()
    with pytest.raises(UnknownOutcomeError) as unknown:
        crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n7")
    assert unknown.value.code == "timeout"
    wait_for(lambda: fake.notes_for("dec-n7"))
    found = crm.reconcile("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n7",
                          first_attempt_at=started)
    assert found is not None and found.external_id == fake.notes_for("dec-n7")[0].id
    # a call that never took effect: reconciliation shows nothing, so it may be sent again
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.log_note", {"record_id": "c_sandbox_timeout", "body": "x"}, idempotency_key="dec-n8")
    assert crm.reconcile("crm.log_note", {"record_id": "c_sandbox_timeout", "body": "x"},
                         idempotency_key="dec-n8", first_attempt_at=started) is None


def test_a_portal_without_the_decision_property_is_told_which_to_create(connect: Any) -> None:
    bare = FakeHubSpot(custom_properties=()).start()
    try:
        bare.seed("contacts", "5", {"email": "a@example.com"})
        crm = connect(hub=bare)
        with pytest.raises(PermanentError) as refused:
            crm.execute("crm.log_note", {"record_id": "5", "body": "x"}, idempotency_key="dec-n9")
    finally:
        bare.stop()
    assert refused.value.code == "validation_error"
    assert "PROPERTY_DOESNT_EXIST" in str(refused.value) and DECISION_PROPERTY in str(refused.value)


def test_deleting_a_note_undoes_log_note_and_a_note_already_gone_is_fine(crm: CrmLive, fake: FakeHubSpot) -> None:
    logged = crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-n10")
    undo = SPECS["crm.log_note"].compensate(EXAMPLES["crm.log_note"], logged.external_id, logged.summary)
    assert (undo.tool, undo.params) == ("crm.delete_note", {"note_id": logged.external_id})
    deleted = crm.execute(undo.tool, undo.params, idempotency_key="dec-n11")
    assert deleted.summary == {"note_id": logged.external_id, "archived": True}
    assert fake.live("notes") == [] and fake.effects_by_key("note_archived") == {None: 1}
    crm.execute(undo.tool, undo.params, idempotency_key="dec-n12")  # 404: already gone
    assert [s.status for s in fake.requests("DELETE *")] == [204, 404]
    found = crm.reconcile(undo.tool, undo.params, idempotency_key="dec-n11", first_attempt_at=time.time())
    assert found is not None and found.summary["archived"] is True
    with pytest.raises(NotReversible):
        SPECS["crm.delete_note"].compensate(undo.params, logged.external_id, deleted.summary)


# ---- contacts --------------------------------------------------------------------------------

def test_a_new_contact_is_undone_by_deleting_it(crm: CrmLive, fake: FakeHubSpot) -> None:
    params = EXAMPLES["crm.upsert_contact"]
    result = crm.execute("crm.upsert_contact", params, idempotency_key="dec-c1")
    assert result.summary == {"contact_id": result.external_id, "new": True,
                              "properties": ["firstname", "lifecyclestage"],
                              "previous": {"firstname": None, "lifecyclestage": None}}
    assert fake.effects_by_key("contact_upserted") == {"dec-c1": 1}  # objectWriteTraceId
    undo = SPECS["crm.upsert_contact"].compensate(params, result.external_id, result.summary)
    assert (undo.tool, undo.params) == ("crm.delete_contact", {"contact_ids": [result.external_id]})
    crm.execute(undo.tool, undo.params, idempotency_key="dec-c2")
    assert [r.id for r in fake.live("contacts")] == ["51000000777"]
    assert crm.execute("crm.upsert_contact", params, idempotency_key="dec-c3").summary["new"] is True


def test_a_changed_contact_gets_its_previous_values_back(crm: CrmLive, fake: FakeHubSpot) -> None:
    params = {"email": "Grace@Example.com", "properties": {"firstname": "Gracie", "lifecyclestage": "customer",
                                                           "vip": True}}
    result = crm.execute("crm.upsert_contact", params, idempotency_key="dec-c4")
    assert result.external_id == "51000000777" and result.summary["new"] is False
    assert result.summary["previous"] == {"firstname": "Grace", "lifecyclestage": None, "vip": None}
    contact = fake.objects["contacts"]["51000000777"]
    assert contact.properties["vip"] == "true" and contact.properties["firstname"] == "Gracie"
    undo = SPECS["crm.upsert_contact"].compensate(params, result.external_id, result.summary)
    assert undo.params == {"email": "Grace@Example.com",
                           "properties": {"firstname": "Grace", "lifecyclestage": "", "vip": ""}}
    crm.execute(undo.tool, undo.params, idempotency_key="dec-c5")
    assert {k: contact.properties[k] for k in ("firstname", "lifecyclestage", "vip")} == {
        "firstname": "Grace", "lifecyclestage": "", "vip": ""}


def test_a_5xx_on_upsert_then_success_upserts_once(crm: CrmLive, fake: FakeHubSpot) -> None:
    fake.fail("POST /crm/v3/objects/contacts/batch/upsert", status=500,
              body={"status": "error", "message": "internal error", "correlationId": "c-1"})
    with pytest.raises(TransientError) as refused:
        crm.execute("crm.upsert_contact", EXAMPLES["crm.upsert_contact"], idempotency_key="dec-c6")
    assert "correlation id c-1" in str(refused.value)
    crm.execute("crm.upsert_contact", EXAMPLES["crm.upsert_contact"], idempotency_key="dec-c6")
    assert fake.effects_by_key("contact_upserted") == {"dec-c6": 1}


@pytest.mark.parametrize("existing", [True, False])
def test_an_upsert_dropped_after_sending_is_reconciled_with_its_previous_values(
    crm: CrmLive, fake: FakeHubSpot, existing: bool
) -> None:
    if existing:
        fake.seed("contacts", None, {"email": "ada@example.com", "firstname": "Adeline"}, at=time.time() - 60)
    fake.fail("POST /crm/v3/objects/contacts/batch/upsert", kind="drop_after")
    started = time.time()
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.upsert_contact", EXAMPLES["crm.upsert_contact"], idempotency_key="dec-c7")
    found = crm.reconcile("crm.upsert_contact", EXAMPLES["crm.upsert_contact"], idempotency_key="dec-c7",
                          first_attempt_at=started)
    assert found is not None and found.reconciled
    assert found.summary["new"] is (not existing)
    assert found.summary["previous"] == {"firstname": "Adeline" if existing else None, "lifecyclestage": None}
    assert len(fake.requests("POST /crm/v3/objects/contacts/batch/upsert")) == 1
    other = {"email": "ada@example.com", "properties": {"firstname": "Someone else"}}
    assert crm.reconcile("crm.upsert_contact", other, idempotency_key="dec-c8", first_attempt_at=started) is None


def test_contacts_are_archived_100_per_request(crm: CrmLive, fake: FakeHubSpot) -> None:
    ids = [fake.seed("contacts", None, {"email": f"p{i}@example.com"}).id for i in range(250)]
    result = crm.execute("crm.delete_contact", {"contact_ids": ids}, idempotency_key="dec-d1")
    assert [s.status for s in fake.requests("POST /crm/v3/objects/contacts/batch/archive")] == [204] * 3
    assert result.summary == {"batch_id": "dec-d1", "archived": 250, "contact_ids": ids[:20], "truncated": True}
    assert {r.id for r in fake.live("contacts")} == {"51000000777"}
    assert sum(fake.effects_by_key("contact_archived").values()) == 250


def test_an_archive_interrupted_is_sent_again_and_one_completed_is_found(crm: CrmLive, fake: FakeHubSpot) -> None:
    ids = [fake.seed("contacts", None, {"email": f"q{i}@example.com"}).id for i in range(150)]
    params = {"contact_ids": ids}
    fake.fail("POST /crm/v3/objects/contacts/batch/archive", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.delete_contact", params, idempotency_key="dec-d2")
    assert crm.reconcile("crm.delete_contact", params, idempotency_key="dec-d2",
                         first_attempt_at=time.time()) is None  # 50 still there: send it again
    crm.execute("crm.delete_contact", params, idempotency_key="dec-d2")
    found = crm.reconcile("crm.delete_contact", params, idempotency_key="dec-d2", first_attempt_at=time.time())
    assert found is not None and found.summary["archived"] == 150
    assert sum(fake.effects_by_key("contact_archived").values()) == 150  # each archived once


# ---- deals -----------------------------------------------------------------------------------

def test_a_deal_moved_records_its_stage_before_and_moves_back(crm: CrmLive, fake: FakeHubSpot) -> None:
    params = EXAMPLES["crm.update_deal_stage"]
    result = crm.execute("crm.update_deal_stage", params, idempotency_key="dec-s1")
    assert result.summary == {"deal_id": "9001", "crm_deal_id": "9001", "stage": "qualifiedtobuy",
                              "previous_stage": "appointmentscheduled", "amount": 1500000,
                              "previous_amount": 120000}
    deal = fake.objects["deals"]["9001"]
    assert (deal.properties["dealstage"], deal.properties["amount"]) == ("qualifiedtobuy", "15000.00")
    undo = SPECS["crm.update_deal_stage"].compensate(params, result.external_id, result.summary)
    assert undo.params == {"deal_id": "9001", "stage": "appointmentscheduled", "amount": 120000}
    again = crm.execute(undo.tool, undo.params, idempotency_key="dec-s2")
    assert (deal.properties["dealstage"], deal.properties["amount"]) == ("appointmentscheduled", "1200.00")
    assert again.summary["previous_stage"] == "qualifiedtobuy"
    fake.seed("deals", "9002", {"dealname": "no stage yet"})
    first = crm.execute("crm.update_deal_stage", {"deal_id": "9002", "stage": "closedwon"}, idempotency_key="dec-s3")
    with pytest.raises(NotReversible, match="no stage before"):
        SPECS["crm.update_deal_stage"].compensate({"deal_id": "9002", "stage": "closedwon"},
                                                   first.external_id, first.summary)


def test_a_deal_that_does_not_exist_or_a_stage_that_does_not_are_refused(connect: Any, fake: FakeHubSpot) -> None:
    crm = connect()
    with pytest.raises(PermanentError) as missing:
        crm.execute("crm.update_deal_stage", {"deal_id": "404404", "stage": "closedwon"}, idempotency_key="dec-s4")
    assert missing.value.code == "object_not_found" and "OBJECT_NOT_FOUND" in str(missing.value)
    fake.deal_stages = frozenset({"appointmentscheduled", "closedwon"})
    with pytest.raises(PermanentError) as bad:
        crm.execute("crm.update_deal_stage", {"deal_id": "9001", "stage": "qualified"}, idempotency_key="dec-s5")
    assert bad.value.code == "validation_error" and "INVALID_OPTION" in str(bad.value)
    assert fake.effects_by_key("deal_updated") == {}


def test_a_deal_move_dropped_after_sending_is_reconciled_from_the_history(crm: CrmLive, fake: FakeHubSpot) -> None:
    params = EXAMPLES["crm.update_deal_stage"]
    fake.fail("PATCH /crm/v3/objects/deals/9001", kind="drop_after")
    started = time.time()
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.update_deal_stage", params, idempotency_key="dec-s6")
    found = crm.reconcile("crm.update_deal_stage", params, idempotency_key="dec-s6", first_attempt_at=started)
    assert found is not None and found.summary["previous_stage"] == "appointmentscheduled"
    assert found.summary["previous_amount"] == 120000
    assert len(fake.requests("PATCH *")) == 1
    moved_elsewhere = {"deal_id": "9001", "stage": "closedlost"}
    assert crm.reconcile("crm.update_deal_stage", moved_elsewhere, idempotency_key="dec-s7",
                         first_attempt_at=started) is None


# ---- business cases --------------------------------------------------------------------------

def test_a_business_case_is_an_email_on_the_deal_found_again_by_its_decision(crm: CrmLive, fake: FakeHubSpot) -> None:
    params = EXAMPLES["crm.send_business_case"]
    fake.fail("POST /crm/v3/objects/emails", kind="drop_after")
    with pytest.raises(UnknownOutcomeError):
        crm.execute("crm.send_business_case", params, idempotency_key="dec-b1")
    found = crm.reconcile("crm.send_business_case", params, idempotency_key="dec-b1", first_attempt_at=time.time())
    assert found is not None and found.summary["status"] == "SENT"
    again = crm.execute("crm.send_business_case", params, idempotency_key="dec-b1")
    assert again.replayed and again.external_id == found.external_id
    (email,) = fake.live("emails")
    assert email.associations == [("deals", "9001", 210)]
    assert email.properties["hs_email_status"] == "SENT" and email.properties[DECISION_PROPERTY] == "dec-b1"
    assert "2.8x" in email.properties["hs_email_text"] and "- 40 seats" in email.properties["hs_email_text"]
    assert found.summary == sandbox_summary("crm.send_business_case", params) | {"document_id": email.id}
    with pytest.raises(NotReversible):
        SPECS["crm.send_business_case"].compensate(params, email.id, found.summary)


# ---- errors ----------------------------------------------------------------------------------

MAGIC = {  # the tool, its params with a magic value where the sandbox looks for one
    "crm.log_note": {"record_id": "c_{magic}", "body": "x"},
    "crm.upsert_contact": {"email": "ada_{magic}@example.com", "properties": {"firstname": "Ada"}},
    "crm.update_deal_stage": {"deal_id": "d_{magic}", "stage": "closedwon"},
    "crm.delete_contact": {"contact_ids": ["51000000777", "c_{magic}"]},
    "crm.send_business_case": {"deal_id": "d_{magic}", "roi_multiple": 2.0, "payback_months": 3.0,
                               "assumptions": []},
    "crm.delete_note": {"note_id": "n_{magic}"},
}


def _with(params: dict[str, Any], magic: str) -> dict[str, Any]:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{magic}", magic)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value
    return {k: fill(v) for k, v in params.items()}


def _failure(run: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as failed:
        run()
    return failed.value


@pytest.mark.parametrize("tool", list(MAGIC))
def test_magic_values_fail_as_the_sandbox_fails(crm: CrmLive, fake: FakeHubSpot, tool: str) -> None:
    sandbox = CrmSandbox(SandboxCallLedger(None))
    for magic in ("sandbox_declined", "sandbox_unavailable"):
        params = _with(MAGIC[tool], magic)
        live = _failure(lambda: crm.execute(tool, params, idempotency_key=f"dec-{magic}"))
        expected = _failure(lambda: sandbox.execute(tool, params, idempotency_key=f"dec-{magic}"))
        assert (type(live), live.code) == (type(expected), expected.code), str(live)
        assert getattr(live, "retry_after", None) == getattr(expected, "retry_after", None)
    created = {"note_created", "email_created", "contact_upserted", "deal_updated", "contact_archived",
               "note_archived"}
    assert [e for e in fake.effects if e["kind"] in created] == []


def test_bad_credentials_are_refused_and_never_repeated(connect: Any, fake: FakeHubSpot) -> None:
    wrong = "pat-na1-0bad0bad-0000-0000-0000-000000000000"
    crm = connect(token=wrong)
    refused = _failure(lambda: crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-e1"))
    assert isinstance(refused, PermanentError) and refused.code == "credentials_refused"
    assert "Authentication credentials not found" in str(refused) and "INVALID_AUTHENTICATION" in str(refused)
    checked = _failure(crm.check)
    assert checked.code == "credentials_refused"
    for message in (str(refused), str(checked)):
        assert wrong not in message and fake.token not in message
    assert fake.requests("*")[0].headers["authorization"] == f"Bearer {wrong}"


def test_a_missing_scope_is_forbidden_with_hubspots_message(crm: CrmLive, fake: FakeHubSpot) -> None:
    fake.fail("GET /crm/v3/objects/contacts/*", status=403, body={
        "status": "error", "category": "MISSING_SCOPES", "correlationId": "7d1c-scopes",
        "message": "This app hasn't been granted all required scopes to make this call."})
    refused = _failure(lambda: crm.execute("crm.upsert_contact", EXAMPLES["crm.upsert_contact"],
                                           idempotency_key="dec-e2"))
    assert isinstance(refused, PermanentError) and refused.code == "forbidden"
    assert "required scopes" in str(refused) and "7d1c-scopes" in str(refused)


def test_the_check_reads_the_account(crm: CrmLive) -> None:
    assert crm.check() == "account 62515 readable"


# ---- rate limits -----------------------------------------------------------------------------

def test_a_429_pauses_every_request_for_its_retry_after(crm: CrmLive, fake: FakeHubSpot) -> None:
    fake.fail("POST /crm/v3/objects/notes/search", status=429, body=RATE_LIMIT_BODY, headers={"Retry-After": "1"})
    limited = _failure(lambda: crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-r1"))
    assert isinstance(limited, TransientError) and limited.code == "rate_limited"
    assert limited.retry_after == 1.0 and "ten_secondly_rolling" in str(limited)
    crm.execute("crm.log_note", EXAMPLES["crm.log_note"], idempotency_key="dec-r1")
    throttled, after = fake.requests("POST /crm/v3/objects/notes/search")
    assert throttled.status == 429 and after.at - throttled.at >= 0.9
    assert fake.effects_by_key("note_created") == {"dec-r1": 1}


def test_a_burst_larger_than_the_limit_waits_instead_of_collecting_429s(connect: Any, fake: FakeHubSpot) -> None:
    fake.rate_limit, fake.window_seconds = 10, 1.0
    deals = [fake.seed("deals", None, {"dealstage": "appointmentscheduled"}).id for _ in range(7)]

    def burst(crm: CrmLive) -> list[BaseException | None]:
        def move(deal: str) -> BaseException | None:
            try:
                crm.execute("crm.update_deal_stage", {"deal_id": deal, "stage": "closedwon"},
                            idempotency_key=f"dec-{deal}")
            except ConnectorError as exc:
                return exc
            return None
        with ThreadPoolExecutor(len(deals)) as pool:
            return list(pool.map(move, deals))

    started = time.monotonic()
    assert burst(connect(cls=FastWindowCrm, per_10s=10)) == [None] * 7  # 14 requests, 10 a second
    assert fake.throttled == 0 and time.monotonic() - started >= 0.5
    assert {s.status for s in fake.requests("*")} == {200}
    # the same burst from a client that ignores the window: the fake's window does refuse it
    time.sleep(1.0)
    failures = burst(connect(cls=FastWindowCrm, per_10s=1000))
    assert fake.throttled > 0 and any(isinstance(f, TransientError) and f.code == "rate_limited" for f in failures)


@pytest.mark.parametrize("limit", [1, 2, 5, 10, 100, 190])
def test_the_bucket_never_sends_more_than_the_rolling_window_allows(limit: int) -> None:
    now = [0.0]
    bucket = rolling_window_bucket(limit, 10.0, name="crm", clock=lambda: now[0])
    sent: list[float] = []
    while now[0] < 60.0:  # a greedy sender: every token as soon as it is there
        wait = bucket.delay()
        if wait == 0:
            sent.append(now[0])
        else:  # (at least a microsecond: a float clock absorbs smaller steps)
            now[0] += max(wait, 1e-6)
    busiest = max(sum(1 for t in sent if start <= t < start + 10.0) for start in sent)
    assert busiest <= max(1, limit - 1)
    if limit >= 10:  # and it is not needlessly slow: most of the limit, sustained
        assert len(sent) >= 0.8 * (limit - 1) * 6


# ---- the fake answers as HubSpot documents ---------------------------------------------------

#: Examples from HubSpot's reference, quoted as data.
DOCUMENTED = {
    # developers.hubspot.com/docs/api-reference/crm-contracts-v3/search (search response)
    "search": {"total": 123, "paging": {"next": {"after": "NTI1Cg%3D%3D", "link": "?after=NTI1Cg%3D%3D"}},
               "results": [{"archived": False, "createdAt": "2019-10-30T03:30:17.883Z", "id": "512",
                            "properties": {"property_number": "17", "property_string": "value"},
                            "updatedAt": "2019-12-07T16:50:06.678Z"}]},
    # .../legacy/crm/objects/contacts/batch/upsert-contacts (response)
    "upsert": {"completedAt": "2023-11-07T05:31:56Z",
               "results": [{"archived": True, "createdAt": "2023-11-07T05:31:56Z", "id": "<string>", "new": True,
                            "properties": {}, "updatedAt": "2023-11-07T05:31:56Z"}],
               "startedAt": "2023-11-07T05:31:56Z", "status": "CANCELED"},
    # .../docs/faq/api-error-responses (every field optional but these)
    "error": {"status": "error", "message": "This will be a human readable message with details about the error.",
              "category": "VALIDATION_ERROR", "correlationId": "a43683b0-5717-4ceb-80b4-104d02915d8c"},
    # .../latest/account/account-information/get-account-details
    "account": {"accountType": "APP_DEVELOPER", "additionalCurrencies": ["<string>"], "companyCurrency": "<string>",
                "dataHostingLocation": "<string>", "portalId": 123, "timeZone": "<string>", "uiDomain": "<string>",
                "utcOffset": "<string>", "utcOffsetMilliseconds": 123},
    # .../docs/api/usage-details (a 429)
    "rate_limited": {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                     "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24", "policyName": "DAILY"},
}


def same_shape(documented: Any, answered: Any, where: str = "$") -> None:
    """Every documented key is answered, with a value of the same JSON type (recursively);
    `properties` hold the portal's own names, so only their values' type is checked."""
    if isinstance(documented, dict):
        assert isinstance(answered, dict), where
        if where.endswith(".properties"):
            assert all(isinstance(v, str) or v is None for v in answered.values()), where
            return
        for key, value in documented.items():
            assert key in answered, f"{where}.{key} is missing"
            same_shape(value, answered[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(answered, list), where
        for item in answered:
            same_shape(documented[0], item, f"{where}[]")
    elif isinstance(documented, bool):
        assert isinstance(answered, bool), where
    elif isinstance(documented, int | float):
        assert isinstance(answered, int | float) and not isinstance(answered, bool), where
    else:
        assert isinstance(answered, type(documented)), where


def test_the_fake_answers_in_hubspots_documented_shapes(fake: FakeHubSpot) -> None:
    auth = {"Authorization": f"Bearer {fake.token}"}
    with httpx.Client(base_url=fake.base_url, headers=auth) as http:
        for i in range(3):
            fake.seed("notes", None, {"hs_timestamp": "2026-01-01T00:00:00Z", DECISION_PROPERTY: "d"})
        search = http.post("/crm/v3/objects/notes/search", json={"filterGroups": [{"filters": [
            {"propertyName": DECISION_PROPERTY, "operator": "EQ", "value": "d"}]}], "limit": 2})
        same_shape(DOCUMENTED["search"], search.json())
        assert search.json()["total"] == 3 and len(search.json()["results"]) == 2
        upsert = http.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
            {"id": "new@example.com", "idProperty": "email", "properties": {"firstname": "N"}}]})
        same_shape(DOCUMENTED["upsert"], upsert.json())
        missing = http.get("/crm/v3/objects/deals/123456")
        same_shape(DOCUMENTED["error"], missing.json())
        assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
        assert missing.headers["X-HubSpot-Correlation-Id"] == missing.json()["correlationId"]
        account = http.get("/account-info/v3/details")
        same_shape(DOCUMENTED["account"], account.json())
        assert (account.headers["X-HubSpot-RateLimit-Max"], account.headers["X-HubSpot-RateLimit-Interval-Milliseconds"]) \
            == ("190", "10000") and int(account.headers["X-HubSpot-RateLimit-Remaining"]) < 190
        fake.rate_limit = 1
        limited = http.get("/account-info/v3/details")
        same_shape(DOCUMENTED["rate_limited"], limited.json())
        assert limited.status_code == 429 and limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert int(limited.headers["Retry-After"]) >= 1
        refused = httpx.get(f"{fake.base_url}/account-info/v3/details", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and refused.json()["category"] == "INVALID_AUTHENTICATION"
