"""Tamper alarms: the running gateway re-verifies its own log and opens an incident when an entry
was altered behind its back."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import update

from gateway_server import Server, note, server_config, start_server
from ledger.schema import entries


def _incidents(server: Server) -> list[dict]:
    return server.client("auditor").get("/v1/incidents", params={"kind": "tamper_alarm"}).json()


def test_an_edited_entry_raises_a_tamper_alarm(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    for _ in range(3):
        assert agent.post("/v1/actions", json=note("a2")).status_code == 200
    runtime = warden_server.runtime
    assert runtime.tamper.check(runtime.db) is None  # sound so far
    assert _incidents(warden_server) == []
    runtime.tamper_full_seconds = 0.5  # re-verify everything on every housekeeping tick
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


def test_the_full_check_runs_as_often_as_its_setting_says(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path, tamper_full_check_seconds=1))
    try:
        runtime = server.runtime
        assert runtime.tamper_full_seconds == 1.0
        for _ in range(2):
            assert server.client("a2").post("/v1/actions", json=note("a2")).status_code == 200
        assert runtime.tamper.check(runtime.db) is None  # verified: only a full check looks at it again
        with runtime.db.begin() as conn:
            body = conn.execute(entries.select().where(entries.c.seq == 1)).one().body
            conn.execute(update(entries).where(entries.c.seq == 1).values(body=bytes(body) + b" "))
        deadline = time.monotonic() + 15
        while not _incidents(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ["entry 1" in alarm["summary"] for alarm in _incidents(server)] == [True]
    finally:
        stop()
