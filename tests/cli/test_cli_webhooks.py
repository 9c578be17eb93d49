"""`warden webhooks`: register, list, disable, enable and remove endpoints from the shell; the
secret alone on stdout, once; bad input is one line and exit 2; every change is an audit entry."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import EXIT_OK, EXIT_USAGE, warden
from gateway.events.reader import read_events
from ledger.database import make_engine, read_only
from ledger.schema import entries
from sqlalchemy import select


def test_add_list_disable_enable_remove(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'warden.db'}"
    added = warden("webhooks", "add", "https://hooks.example.com/warden?token=abc", "--events", "decision,execution",
                   "incident", "--db", db, cwd=tmp_path)
    assert added.returncode == EXIT_OK, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and len(added.stdout.splitlines()) == 1
    endpoint_id = added.stderr.split("registered webhook ")[1].split()[0]

    listed = json.loads(warden("webhooks", "list", "--json", "--db", db, cwd=tmp_path).stdout)
    assert [(e["id"], e["events"], e["state"]) for e in listed] == [
        (endpoint_id, ["decision", "execution", "incident"], "active")]
    assert secret not in json.dumps(listed)
    assert endpoint_id in warden("webhooks", "list", "--db", db, cwd=tmp_path).stdout

    assert warden("webhooks", "disable", endpoint_id, "--db", db, cwd=tmp_path).returncode == EXIT_OK
    assert json.loads(warden("webhooks", "list", "--json", "--db", db, cwd=tmp_path).stdout)[0]["state"] == "disabled"
    again = warden("webhooks", "disable", endpoint_id, "--db", db, cwd=tmp_path)
    assert again.returncode == EXIT_OK and "already disabled" in again.stderr
    assert warden("webhooks", "enable", endpoint_id, "--db", db, cwd=tmp_path).returncode == EXIT_OK
    shown = warden("webhooks", "deliveries", endpoint_id, "--db", db, cwd=tmp_path)
    assert shown.returncode == EXIT_OK and "EVENT" in shown.stdout
    assert warden("webhooks", "remove", endpoint_id, "--db", db, cwd=tmp_path).returncode == EXIT_OK
    assert json.loads(warden("webhooks", "list", "--json", "--db", db, cwd=tmp_path).stdout) == []

    engine = make_engine(db)
    try:
        with read_only(engine.connect()) as conn:
            bodies = [json.loads(bytes(b)) for b in conn.execute(select(entries.c.body).order_by(entries.c.seq)).scalars()]
            _last, events = read_events(conn, -1)
    finally:
        engine.dispose()
    changes = [(b["kind"], b["subject"]) for b in bodies if b["kind"].startswith("webhook_")]
    assert changes == [("webhook_added", endpoint_id), ("webhook_disabled", endpoint_id),
                       ("webhook_enabled", endpoint_id), ("webhook_removed", endpoint_id)]
    added_entry = next(b for b in bodies if b["kind"] == "webhook_added")
    assert added_entry["data"]["url"] == "https://hooks.example.com/warden"  # no query: it may hold a token
    assert secret[6:] not in json.dumps(bodies)
    assert events == []  # changes to webhooks are entries, not events


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'warden.db'}"
    cases = {
        ("https://h.example/x", "--events", "decision,bogus"): "unknown event kind(s) 'bogus'",
        ("ftp://h.example/x", "--events", "decision"): "must be http(s)",
        ("https://user:pw@h.example/x", "--events", "decision"): "must not hold credentials",
        ("https://h.example/x", "--events", ","): "name the events",
    }
    for args, message in cases.items():
        ran = warden("webhooks", "add", *args, "--db", db, cwd=tmp_path)
        assert ran.returncode == EXIT_USAGE and message in ran.stderr and ran.stdout == "", (args, ran.stderr)
        assert len(ran.stderr.strip().splitlines()) == 1
    missing = warden("webhooks", "disable", "whk_nope", "--db", db, cwd=tmp_path)
    assert missing.returncode == EXIT_USAGE and "no webhook endpoint 'whk_nope'" in missing.stderr
