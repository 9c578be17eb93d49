"""Tamper alarms: the running gateway re-verifies its own log and opens an incident when an entry
was altered behind its back, and fails closed: the kill switch engaged by `warden` until a founder
releases it. Also the cadence of the checks (incremental every tick, full every interval)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from gateway.runtime.runtime import Runtime
from gateway.runtime.tamper import TamperWatch, alarm_of, fail_closed
from gateway.store.killswitch import read_kill_switch, set_kill_switch
from gateway.store.schema import upgrade
from gateway_server import Server, audit, eventually, note, refund, server_config, start_server
from ledger.database import make_engine
from ledger.checkpointer import Checkpointer
from ledger.note import generate_key
from ledger.schema import entries, head, keys
from ledger.store import Ledger

SMALL = 2_500  # cents: an L1 refund


def _incidents(server: Server) -> list[dict]:
    return server.client("auditor").get("/v1/incidents", params={"kind": "tamper_alarm"}).json()


def test_an_edited_entry_raises_a_tamper_alarm(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    for _ in range(3):
        assert agent.post("/v1/actions", json=note("a2")).status_code == 200
    runtime = warden_server.runtime
    assert runtime.tamper.check(runtime.db) is None  # sound so far
    assert _incidents(warden_server) == []
    runtime.tamper.full_check_seconds = 0.5  # re-verify everything on every housekeeping tick
    with runtime.db.begin() as conn:  # someone edits an entry directly in the database
        body = conn.execute(entries.select().where(entries.c.seq == 2)).one().body
        conn.execute(update(entries).where(entries.c.seq == 2).values(body=bytes(body).replace(b'"', b'"', 1) + b" "))
    deadline = time.monotonic() + 15
    while not _incidents(warden_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    alarms = _incidents(warden_server)
    assert len(alarms) == 1
    assert "entry 2" in alarms[0]["summary"]
    time.sleep(1.5)  # later checks do not repeat the same alarm
    assert len(_incidents(warden_server)) == 1


def test_a_sound_log_raises_no_alarm(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    for _ in range(5):
        agent.post("/v1/actions", json=note("a2"))
    runtime = warden_server.runtime
    with runtime.db.begin() as conn:
        runtime.checkpointer.sign_now(conn)
    assert runtime.tamper.check(runtime.db) is None
    assert _incidents(warden_server) == []


# ------------------------------------------------------------------------- failing closed


def _edit(runtime: Runtime, seq: int) -> None:
    """Someone edits entry `seq` directly in the database: a space after its JSON."""
    with runtime.db.begin() as conn:
        body = conn.execute(entries.select().where(entries.c.seq == seq)).one().body
        conn.execute(update(entries).where(entries.c.seq == seq).values(body=bytes(body) + b" "))


def _calls(server: Server) -> int:
    return sum(server.calls.executions_by_key().values())


def _switch(server: Server) -> dict[str, Any]:
    return dict(server.client("viewer").get("/v1/kill-switch").json())


def test_an_edit_while_running_engages_the_kill_switch_until_a_founder_releases_it(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    first = agent.post("/v1/actions", json=refund("a2", SMALL))
    assert eventually(lambda: agent.get(f"/v1/actions/{first.json()['decision_id']}").json()["status"] == "executed",
                      "the refund before the edit to execute")  # fmt: skip
    runtime = warden_server.runtime
    assert runtime.tamper.check(runtime.db) is None  # every entry so far is verified
    runtime.tamper.full_check_seconds = 0.5
    _edit(runtime, 2)

    [alarm] = eventually(lambda: _incidents(warden_server), "the tamper alarm")
    reason = f"tamper alarm: incident {alarm['id']}: entry 2: the stored leaf hash does not match its bytes"
    assert alarm["summary"] == "the audit log failed verification: entry 2: the stored leaf hash does not match its bytes"
    engaged = _switch(warden_server)
    assert (engaged["engaged"], engaged["reason"], engaged["by"]) == (True, reason, "warden")
    [incident_entry] = audit(warden_server, "incident")
    [switch_entry] = audit(warden_server, "kill_switch")
    assert (switch_entry["actor"], switch_entry["subject"]) == ("warden", "kill_switch")
    assert switch_entry["data"] == {"engaged": True, "reason": reason}
    assert switch_entry["seq"] == incident_entry["seq"] + 1  # one transaction: the alarm and the switch
    ready = warden_server.client().get("/readyz")
    assert (ready.status_code, ready.json()["status"], ready.json()["tamper_alarm"]) == (200, "ready", reason)

    calls = _calls(warden_server)
    denied = agent.post("/v1/actions", json=refund("a2", SMALL))
    assert denied.status_code == 200, denied.text
    assert (denied.json()["status"], denied.json()["risk"], denied.json()["execution"]) == ("denied", "L1", None)
    assert [r["rule"] for r in denied.json()["reasons"]] == ["kill_switch"]
    time.sleep(1.5)  # a full check and the outbox's polls later, still nothing has executed
    assert _calls(warden_server) == calls
    assert agent.get(f"/v1/actions/{denied.json()['decision_id']}").json()["status"] == "denied"

    for who in ("approver", "auditor", "a4"):
        refused = warden_server.client(who).post("/v1/kill-switch", json={"engaged": False, "reason": "mine"})
        assert refused.status_code == 403, refused.text
    released = warden_server.client("founder").post("/v1/kill-switch", json={"engaged": False, "reason": "log restored"})
    assert released.status_code == 200, released.text
    assert warden_server.client().get("/readyz").json()["tamper_alarm"] is None
    resumed = agent.post("/v1/actions", json=refund("a2", SMALL))
    assert resumed.json()["status"] in {"executing", "executed"}, resumed.text
    assert eventually(lambda: agent.get(f"/v1/actions/{resumed.json()['decision_id']}").json()["status"] == "executed",
                      "the refund after the release to execute")  # fmt: skip
    assert _calls(warden_server) == calls + 1
    time.sleep(1.5)  # the same failure, found again by later checks, does not engage it again
    assert _switch(warden_server)["engaged"] is False
    assert len(_incidents(warden_server)) == 1
    assert [e["data"]["engaged"] for e in audit(warden_server, "kill_switch")] == [True, False]


def test_a_missing_entry_engages_the_kill_switch(warden_server: Server) -> None:
    for _ in range(3):
        assert warden_server.client("a2").post("/v1/actions", json=note("a2")).status_code == 200
    runtime = warden_server.runtime
    with runtime.db.begin() as conn:
        conn.execute(entries.delete().where(entries.c.seq == 1))
    runtime.tamper.full_check_seconds = 0.5
    [alarm] = eventually(lambda: _incidents(warden_server), "the tamper alarm")
    assert "entry 1 is missing" in alarm["summary"]
    assert eventually(lambda: _switch(warden_server)["engaged"], "the kill switch")
    assert _switch(warden_server)["reason"] == f"tamper alarm: incident {alarm['id']}: entry 1 is missing (the next stored one is 2)"


# ------------------------------------------------------------------------- the check cadence


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log_db(db_url: str) -> Iterator[Engine]:
    """A gateway database whose log holds five entries."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for n in range(5):
            Ledger().append(conn, "policy_activated", "warden", f"sha256:{n}", {"n": n})
    try:
        yield engine
    finally:
        engine.dispose()


def _edit_entry(engine: Engine, seq: int) -> None:
    with engine.begin() as conn:
        body = conn.execute(entries.select().where(entries.c.seq == seq)).one().body
        conn.execute(update(entries).where(entries.c.seq == seq).values(body=bytes(body) + b" "))


def test_an_edit_to_a_checked_entry_is_caught_by_the_next_full_check(log_db: Engine) -> None:
    alarms: list[str] = []
    clock = Clock()
    watch = TamperWatch(Ledger(), lambda problem, _detail: alarms.append(problem), full_check_seconds=60.0, clock=clock)
    assert watch.tick(log_db) is None  # t=0: every entry verified
    _edit_entry(log_db, 1)
    for clock.now in (1.0, 30.0, 59.0):  # incremental checks read only new entries
        assert watch.tick(log_db) is None
    clock.now = 60.0
    problem = "entry 1: the stored leaf hash does not match its bytes"
    assert watch.tick(log_db) == problem
    clock.now = 61.0
    assert watch.tick(log_db) == problem
    assert alarms == [problem]  # once per distinct failure


def test_full_checks_recur_every_interval(log_db: Engine) -> None:
    clock = Clock()
    watch = TamperWatch(Ledger(), lambda _problem, _detail: None, full_check_seconds=10.0, clock=clock)
    watch.tick(log_db)
    for clock.now in (10.0, 15.0):
        watch.tick(log_db)
    _edit_entry(log_db, 0)
    clock.now = 19.5
    assert watch.tick(log_db) is None
    clock.now = 20.0
    assert watch.tick(log_db) == "entry 0: the stored leaf hash does not match its bytes"


def test_an_entry_edited_before_its_first_check_is_caught_by_the_next_tick(log_db: Engine) -> None:
    clock = Clock()
    watch = TamperWatch(Ledger(), lambda _problem, _detail: None, full_check_seconds=3600.0, clock=clock)
    assert watch.tick(log_db) is None
    with log_db.begin() as conn:
        Ledger().append(conn, "policy_activated", "warden", "sha256:new", {"n": 5})
    _edit_entry(log_db, 5)
    clock.now = 1.0
    assert watch.tick(log_db) == "entry 5: the stored leaf hash does not match its bytes"


def test_an_alarm_that_could_not_be_recorded_is_raised_again(log_db: Engine) -> None:
    attempts: list[str] = []

    def record(problem: str, _detail: dict[str, object]) -> None:
        attempts.append(problem)
        if len(attempts) == 1:
            raise RuntimeError("database busy")

    watch = TamperWatch(Ledger(), record, clock=Clock())
    _edit_entry(log_db, 3)
    with pytest.raises(RuntimeError, match="database busy"):
        watch.tick(log_db)
    problem = "entry 3: the stored leaf hash does not match its bytes"
    assert watch.tick(log_db) == problem
    assert watch.tick(log_db) == problem
    assert attempts == [problem, problem]  # the failed attempt, then the one that recorded it


def test_failing_closed_records_the_incident_and_engages_the_switch_in_one_transaction(log_db: Engine) -> None:
    ledger = Ledger()
    with log_db.begin() as conn:
        state = fail_closed(conn, ledger, "entry 3: the stored leaf hash does not match its bytes",
                            {"verified_size": 3}, 1234.5)
    reason = "tamper alarm: incident 1: entry 3: the stored leaf hash does not match its bytes"
    assert (state.engaged, state.reason, state.by, state.at) == (True, reason, "warden", 1234.5)
    with log_db.connect() as conn:
        assert read_kill_switch(conn) == state
        assert alarm_of(read_kill_switch(conn)) == reason
        *_, incident, switch = [json.loads(body) for body in ledger.iter_entries(conn)]
    assert (incident["kind"], incident["data"]["kind"], incident["data"]["detail"]) == (
        "incident", "tamper_alarm", {"problem": "entry 3: the stored leaf hash does not match its bytes",
                                     "verified_size": 3})  # fmt: skip
    assert (switch["kind"], switch["actor"], switch["data"]) == ("kill_switch", "warden", {"engaged": True, "reason": reason})
    with log_db.begin() as conn:
        set_kill_switch(conn, ledger, engaged=False, reason="restored", by="founder@example.com", now=1300.0)
        assert alarm_of(read_kill_switch(conn)) is None
        set_kill_switch(conn, ledger, engaged=True, reason=reason, by="founder@example.com", now=1301.0)
        assert alarm_of(read_kill_switch(conn)) is None  # only Warden's own alarm counts as one


def test_the_full_check_runs_as_often_as_its_setting_says(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path, tamper_full_check_seconds=1))
    try:
        runtime = server.runtime
        assert runtime.tamper.full_check_seconds == 1.0
        for _ in range(2):
            assert server.client("a2").post("/v1/actions", json=note("a2")).status_code == 200
        assert runtime.tamper.check(runtime.db) is None  # verified: only a full check looks at it again
        _edit(runtime, 1)
        deadline = time.monotonic() + 15
        while not _incidents(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ["entry 1" in alarm["summary"] for alarm in _incidents(server)] == [True]
    finally:
        stop()


def test_a_stale_tree_head_raises_one_alarm_however_the_log_grows(log_db: Engine) -> None:
    """The alarm appends entries itself: the same failure at a larger size is not a new one."""
    alarms: list[str] = []
    watch = TamperWatch(Ledger(), lambda problem, _detail: alarms.append(problem), clock=Clock())
    assert watch.tick(log_db) is None
    with log_db.begin() as conn:  # the head's stored roots are edited behind the log's back
        frontier = bytes(conn.execute(select(head.c.frontier)).scalar_one())
        conn.execute(update(head).values(frontier=bytes(32) + frontier[32:]))
    for n in range(3):
        assert watch.tick(log_db) == "the stored tree head does not match the entries"
        with log_db.begin() as conn:  # what the alarm, and a founder's release, append
            Ledger().append(conn, "kill_switch", "warden", "kill_switch", {"n": n})
    assert alarms == ["the stored tree head does not match the entries"]


def test_a_log_that_cannot_be_read_as_a_log_is_an_alarm_not_a_skipped_check(log_db: Engine) -> None:
    alarms: list[str] = []
    watch = TamperWatch(Ledger(), lambda problem, _detail: alarms.append(problem), clock=Clock())
    with log_db.begin() as conn:
        Checkpointer(generate_key("warden.test/log")).sign_now(conn)
    assert watch.tick(log_db) is None
    with log_db.begin() as conn:  # the signing key the checkpoints are verified with is garbled
        conn.execute(update(keys).values(verifier_key="not a verifier key"))
    problem = watch.tick(log_db)
    assert problem is not None and problem.startswith("the stored log cannot be read: ")
    assert alarms == [problem]


def test_an_unreachable_database_is_not_an_alarm() -> None:
    alarms: list[str] = []
    watch = TamperWatch(Ledger(), lambda problem, _detail: alarms.append(problem), clock=Clock())
    nowhere = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        assert watch.tick(nowhere) is None
    finally:
        nowhere.dispose()
    assert alarms == []
