"""Every `warden` command reads the same settings: `--config FILE`, else $WARDEN_CONFIG, else
./warden.toml, under the WARDEN_* environment; `--db` overrides the database for one command."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli_support import EXIT_OK, EXIT_USAGE, Serving, free_port, warden
from dsl import compile_policy_dir
from gateway.config import SHIPPED_POLICY_DIR
from ledger.database import make_engine
from ledger.keys import write_signer_key
from ledger.note import generate_key
from ledger.store import Ledger

CASE = """
[[case]]
name = "configured_copy_case"
autonomy = "A2"
tool = "stripe.refund"
params = { charge = "ch_3", amount = 50001, currency = "usd" }
evidence = { reconciled = true }
expect = { status = "pending_approval", risk = "L2", reasons = ["refunds.large_refund"] }
"""
PACKET = {
    "packet_id": "configured-1", "agent": "bot",
    "action": {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": 900, "currency": "usd"}},
    "evidence": {"order_total": 900, "reconciled": True},
    "proof": {"invariant_checks": [{"id": "refund_reconciled", "status": "PASS", "value": True}]},
}  # fmt: skip


def _entries(db: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{db}", create=False)
    try:
        with engine.connect() as conn:
            return [json.loads(body) for body in Ledger().iter_entries(conn)]
    finally:
        engine.dispose()


def _toml(**values: object) -> str:
    return "".join(f"{name} = {json.dumps(str(v) if isinstance(v, Path) else v)}\n" for name, v in values.items())


def test_every_command_uses_the_database_and_files_that_warden_toml_names(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    db, key, data = elsewhere / "db" / "warden.db", elsewhere / "keys" / "ledger.key", elsewhere / "data"
    policies = elsewhere / "policies"
    shutil.copytree(SHIPPED_POLICY_DIR, policies)
    payments = policies / "payments.policy"
    payments.write_text("# the configured copy\n" + payments.read_text())  # its own digest
    (policies / "tests" / "configured.toml").write_text(CASE)
    (work / "packet.json").write_text(json.dumps(PACKET))
    port = free_port()
    (work / "warden.toml").write_text(_toml(
        database_url=f"sqlite:///{db}", data_dir=data, signing_key_file=key, log_origin="settings.test/audit",
        policy_dir=policies, port=port, policy_reload=False, log_level="warning"))  # fmt: skip

    def ok(*args: str | Path) -> str:
        done = warden(*args, cwd=work)
        assert done.returncode == EXIT_OK, f"warden {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    # db, keys
    assert f"sqlite:///{db}: ledger schema upgraded from 0 to version 1" in ok("db", "upgrade")
    verifier = ok("keys", "generate").strip()
    assert verifier.startswith("settings.test/audit+") and key.read_text().startswith("PRIVATE+KEY+settings.test/audit+")

    # agents, users
    token = ok("agents", "add", "bot", "--autonomy", "A2", "--tools", "crm.*").strip()
    assert token.startswith("wdn_agent_")
    ok("agents", "set", "bot", "--autonomy", "A3")
    assert ok("agents", "rotate-token", "bot").strip() != token
    assert [(a["name"], a["autonomy"]) for a in json.loads(ok("agents", "list", "--json"))] == [("bot", "A3")]
    assert ok("agents", "list").splitlines()[1].split()[:2] == ["bot", "A3"]
    ok("users", "add", "ann@example.com", "--role", "founder")
    ok("users", "add", "bo@example.com", "--role", "viewer")
    ok("users", "set-role", "bo@example.com", "--role", "approver")
    ok("users", "rotate-token", "bo@example.com")
    ok("users", "revoke", "bo@example.com")
    listed = json.loads(ok("users", "list", "--json"))
    assert [(u["email"], u["role"], u["revoked_at"] is None) for u in listed] == [
        ("ann@example.com", "founder", True), ("bo@example.com", "approver", False)]
    assert ok("users", "list").splitlines()[1].split()[:3] == ["ann@example.com", "founder", "active"]
    ok("agents", "revoke", "bot")
    kinds = [entry["kind"] for entry in _entries(db)]
    assert kinds == ["agent_registered", "agent_changed", "agent_changed", "user_added", "user_added",
                     "user_changed", "user_changed", "user_revoked", "agent_revoked"]  # fmt: skip

    # config
    shown = json.loads(ok("config", "show", "--json"))
    assert shown["database_url"] == {"value": f"sqlite:///{db}", "source": "warden.toml:1"}
    assert shown["policy_dir"]["value"] == str(policies)
    assert "database_url (str, default " in ok("config", "list")

    # audit, keys rotate
    size = len(kinds)
    assert ok("audit", "checkpoint", "--key", key).strip() == f"signed checkpoint of size {size}"
    new_key = elsewhere / "keys" / "ledger-2.key"
    ok("keys", "rotate", "--key", key, "--new-key-out", new_key)
    assert _entries(db)[-1]["kind"] == "key_rotated"
    toml = (work / "warden.toml").read_text()
    (work / "warden.toml").write_text(toml.replace(json.dumps(str(key)), json.dumps(str(new_key))))
    assert f"exported {size + 1} entries" in ok("audit", "export", "--out", "export")
    verified = ok("audit", "verify", "--db", "--key", verifier)
    assert f"Verifying database sqlite:///{db} " in verified and f"OK: {size + 1:,} entries" in verified
    assert f"OK: {size + 1:,} entries" in ok("audit", "verify", "export", "--key", "export/log.pub")

    # policy: the configured policy_dir, not the shipped one
    digest = compile_policy_dir(policies).digest
    assert digest != compile_policy_dir(SHIPPED_POLICY_DIR).digest
    checked = ok("policy", "check")
    assert checked.splitlines()[-1].startswith(f"{policies}: ") and checked.rstrip().endswith(digest)
    assert "configured.toml: configured_copy_case: PASS" in ok("policy", "test", "-v")
    assert json.loads(ok("policy", "explain", "packet.json", "--autonomy", "A3", "--json"))["policy_digest"] == digest

    # serve: the same database, data folder, key and port
    with Serving("--demo", cwd=work, port=port) as server:
        banner = server.banner()
    assert server.returncode == EXIT_OK
    assert f"database sqlite:///{db}" in banner and f"(also in {data / 'demo-tokens.env'}" in banner
    assert (data / "demo-tokens.env").is_file()
    served = _entries(db)[size + 1:]
    assert {e["kind"] for e in served} >= {"policy_activated", "agent_registered", "user_added"}
    assert any(e["kind"] == "policy_activated" and digest in json.dumps(e) for e in served)

    assert not (work / "warden-data").exists()
    assert sorted(p.name for p in work.iterdir()) == ["export", "packet.json", "warden.toml"]


@pytest.mark.parametrize("found_by", ["./warden.toml", "--config", "WARDEN_CONFIG"])
def test_the_settings_file_is_found_the_same_way_by_every_command(tmp_path: Path, found_by: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    db = tmp_path / "configured.db"
    file = work / "warden.toml" if found_by == "./warden.toml" else tmp_path / "settings" / "w.toml"
    file.parent.mkdir(exist_ok=True)
    file.write_text(_toml(database_url=f"sqlite:///{db}"))
    option = ["--config", str(file)] if found_by == "--config" else []
    env = {"WARDEN_CONFIG": str(file)} if found_by == "WARDEN_CONFIG" else {}

    for command in (["db", "upgrade"], ["agents", "add", "bot", "--autonomy", "A1", "--tools", "crm.*"],
                    ["users", "add", "a@example.com", "--role", "founder"]):  # fmt: skip
        done = warden(*command, *option, cwd=work, env=env)
        assert done.returncode == EXIT_OK, done.stderr
    write_signer_key(tmp_path / "k.key", generate_key("warden.test/log"))
    exported = warden("audit", "export", "--out", "export", "--sign-with", tmp_path / "k.key", *option, cwd=work, env=env)
    assert exported.returncode == EXIT_OK, exported.stderr
    assert "exported 2 entries" in exported.stdout
    shown = warden("config", "show", "--json", *option, cwd=work, env=env)
    assert json.loads(shown.stdout)["database_url"]["value"] == f"sqlite:///{db}"
    assert not (work / "warden-data").exists()


def test_db_and_the_environment_override_the_file(tmp_path: Path) -> None:
    configured, given, from_env = tmp_path / "configured.db", tmp_path / "given.db", tmp_path / "env.db"
    (tmp_path / "warden.toml").write_text(_toml(database_url=f"sqlite:///{configured}"))
    assert warden("db", "upgrade", "--db", f"sqlite:///{given}", cwd=tmp_path).returncode == EXIT_OK
    assert given.is_file() and not configured.exists()
    env = {"WARDEN_DATABASE_URL": f"sqlite:///{from_env}"}
    assert warden("agents", "add", "bot", "--autonomy", "A1", "--tools", "crm.*", cwd=tmp_path, env=env).returncode == 0
    assert [e["kind"] for e in _entries(from_env)] == ["agent_registered"] and not configured.exists()
    write_signer_key(tmp_path / "k.key", generate_key("warden.test/log"))
    exported = warden("audit", "export", "--out", "x", "--sign-with", "k.key", cwd=tmp_path, env=env)
    assert exported.returncode == EXIT_OK and "exported 1 entries" in exported.stdout


def test_a_settings_file_named_on_the_command_line_must_exist(tmp_path: Path) -> None:
    done = warden("db", "upgrade", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--config", "nope.toml", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.strip() == "warden: error: nope.toml: no such config file"
    assert not (tmp_path / "x.db").exists()


def test_without_settings_the_defaults_are_under_warden_data(tmp_path: Path) -> None:
    generated = warden("keys", "generate", cwd=tmp_path)
    assert generated.returncode == EXIT_OK, generated.stderr
    assert generated.stdout.startswith("warden.local/audit+")
    assert (tmp_path / "warden-data" / "ledger.key").is_file()
    assert warden("agents", "add", "bot", "--autonomy", "A1", "--tools", "crm.*", cwd=tmp_path).returncode == 0
    assert [e["kind"] for e in _entries(tmp_path / "warden-data" / "warden.db")] == ["agent_registered"]


@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["keys", "generate"], ["keys", "rotate", "--key", "k", "--new-key-out", "n"],
     ["audit", "checkpoint", "--key", "k"], ["audit", "export", "--out", "x"], ["audit", "verify", "--db", "--key", "k"],
     ["agents", "list"], ["users", "list"], ["config", "show"], ["policy", "check"], ["policy", "test"],
     ["policy", "explain", "packet.json", "--autonomy", "A2"], ["serve"]],
    ids=lambda command: "_".join(command[:2]),
)  # fmt: skip
def test_bad_settings_stop_every_command_with_the_place_of_the_mistake(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "warden.toml").write_text('database_url = "sqlite:///w.db"\nport = "eighty"\n')
    (tmp_path / "packet.json").write_text(json.dumps(PACKET))
    write_signer_key(tmp_path / "k", generate_key("warden.test/log"))
    done = warden(*command, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert done.stderr.startswith("warden: error: warden.toml:2:") and done.stderr.count("\n") == 1, done.stderr
    assert "port" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == "" and not (tmp_path / "w.db").exists() and not (tmp_path / "warden-data").exists()
