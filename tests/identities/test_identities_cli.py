"""`warden agents | users | config`: outputs, the database, exit codes.

Most cases run the real command in this process (`gateway.cli.main`, argv in, exit code and
output out) to stay fast; the shell's view (a token alone on stdout, no traceback, exit codes) is
checked through a real subprocess.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.store import identities as ids
from gateway.store.schema import LATEST_VERSION
from gateway.cli.main import main
from gateway.config import SETTINGS
from ledger.database import make_engine
from ledger.store import Ledger

EXIT_OK, EXIT_USAGE = 0, 2


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


Warden = Callable[..., Ran]


def warden_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Ran:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def warden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Warden:
    """`warden ARGS...` in this process, in tmp_path, with only the WARDEN_* variables given."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("WARDEN_")]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def _one_line_error(done: Ran, text: str) -> None:
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("warden: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert text in done.stderr
    assert "Traceback" not in done.stderr


def test_agent_lifecycle(db_url: str, warden: Warden) -> None:
    run = lambda *args: warden(*args, "--db", db_url)  # noqa: E731
    added = run("agents", "add", "refund-bot", "--autonomy", "A2", "--tools", "stripe.refund, crm.*", "--owner", "Ann@Example.com")
    assert added.returncode == EXIT_OK, added.stderr
    token = added.stdout.removesuffix("\n")
    assert token.startswith("wdn_agent_") and "\n" not in token  # TOKEN=$(warden agents add ...) works
    assert "registered agent refund-bot" in added.stderr and token not in added.stderr

    changed = run("agents", "set", "refund-bot", "--autonomy", "A3", "--owner", "")
    assert changed.returncode == EXIT_OK and "changed autonomy, owner" in changed.stderr
    listed = json.loads(run("agents", "list", "--json").stdout)
    assert [(a["name"], a["autonomy"], a["owner"], a["tools"], a["revoked_at"]) for a in listed] == [
        ("refund-bot", "A3", None, ["stripe.refund", "crm.*"], None)]
    rotated = run("agents", "rotate-token", "refund-bot")
    new_token = rotated.stdout.removesuffix("\n")
    assert rotated.returncode == EXIT_OK and new_token.startswith("wdn_agent_") and new_token != token
    assert run("agents", "revoke", "refund-bot").returncode == EXIT_OK
    table = run("agents", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "AUTONOMY", "OWNER", "TOOLS", "STATUS", "CREATED"]
    assert table[1].split()[:5] == ["refund-bot", "A3", "-", "stripe.refund,crm.*", "revoked"]

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert ids.authenticate_agent(conn, token) is None and ids.authenticate_agent(conn, new_token) is None
            entries = [json.loads(body) for body in Ledger().iter_entries(conn)]
    finally:
        engine.dispose()
    assert [(e["kind"], e["data"].get("field")) for e in entries] == [
        ("agent_registered", None), ("agent_changed", "autonomy"), ("agent_changed", "owner"),
        ("agent_changed", "token"), ("agent_revoked", None)]  # fmt: skip
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}
    assert not any(t in json.dumps(entries) for t in (token, new_token))


def test_user_lifecycle_and_a_token_that_works(tmp_path: Path, warden: Warden) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    added = warden("users", "add", "Founder@Example.com", "--role", "founder", "--db", url)
    assert added.returncode == EXIT_OK, added.stderr
    token = added.stdout.strip()
    assert token.startswith("wdn_user_") and "added founder@example.com as founder" in added.stderr
    last = warden("users", "set-role", "founder@example.com", "--role", "approver", "--db", url)
    assert last.returncode == 2 and "last active founder" in last.stderr  # never leave no founder
    assert warden("users", "add", "second@example.com", "--role", "founder", "--db", url).returncode == EXIT_OK
    assert warden("users", "set-role", "founder@example.com", "--role", "approver", "--db", url).returncode == 0
    engine = make_engine(url)
    with engine.connect() as conn:
        assert ids.authenticate_user(conn, token) == ids.User(email="founder@example.com", role="approver")
    engine.dispose()
    rotated = warden("users", "rotate-token", "FOUNDER@example.com", "--db", url)
    assert rotated.returncode == EXIT_OK and rotated.stdout.strip().startswith("wdn_user_")
    assert warden("users", "revoke", "founder@example.com", "--db", url).returncode == EXIT_OK
    listed = json.loads(warden("users", "list", "--json", "--db", url).stdout)
    assert [(u["email"], u["role"], u["revoked_at"] is not None) for u in listed] == [
        ("founder@example.com", "approver", True), ("second@example.com", "founder", False)]


def test_the_database_comes_from_the_settings_and_the_schema_is_created(tmp_path: Path, warden: Warden) -> None:
    (tmp_path / "warden.toml").write_text('database_url = "sqlite:///from-file.db"\n')
    assert warden("agents", "add", "a", "--autonomy", "A0", "--tools", "").returncode == EXIT_OK
    assert (tmp_path / "from-file.db").is_file()
    env = {"WARDEN_DATABASE_URL": f"sqlite:///{tmp_path / 'from-env.db'}"}
    assert warden("users", "add", "a@b.co", "--role", "viewer", env=env).returncode == EXIT_OK
    assert (tmp_path / "from-env.db").is_file()
    upgraded = warden("db", "upgrade", env=env)
    assert "ledger schema already at version 1" in upgraded.stdout
    assert f"gateway schema already at version {LATEST_VERSION}" in upgraded.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, warden: Warden) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    base = ["--db", url]
    assert warden("agents", "add", "bot", "--autonomy", "A2", "--tools", "crm.*", *base).returncode == 0
    assert warden("users", "add", "bo@example.com", "--role", "viewer", *base).returncode == 0
    (tmp_path / "bad.toml").write_text("port = 8080\nhost = \n")
    cases = [
        (["agents", "add", "bot", "--autonomy", "A2", "--tools", "crm.*", *base], "agent 'bot' already exists"),
        (["agents", "add", "bot2", "--autonomy", "A7", "--tools", "crm.*", *base], "autonomy must be one of A0"),
        (["agents", "add", "bot2", "--autonomy", "A1", "--tools", "CRM.*", *base], "tool glob 'CRM.*' is not valid"),
        (["agents", "add", "bot2", "--autonomy", "A1", "--tools", "crm.*", "--owner", "x", *base], "not an email"),
        (["agents", "revoke", "ghost", *base], "no agent named 'ghost'"),
        (["agents", "set", "bot", *base], "nothing to change"),
        (["users", "add", "bo@example.com", "--role", "viewer", *base], "user 'bo@example.com' already exists"),
        (["users", "add", "nobody", "--role", "viewer", *base], "not an email address: 'nobody'"),
        (["users", "set-role", "bo@example.com", "--role", "boss", *base], "role must be one of founder"),
        (["agents", "list", "--db", "postgresql+psycopg://warden@127.0.0.1:9/none"], "database error (postgresql+psycopg://warden@127.0.0.1:9/none)"),
        (["agents", "list", "--db", "mysql://x/y"], "unsupported database 'mysql'"),
        (["agents", "list", "--config", "bad.toml"], "bad.toml:2:8: invalid TOML"),
        (["config", "show", "--config", "missing.toml"], "missing.toml: no such config file"),
    ]  # fmt: skip
    for args, message in cases:
        _one_line_error(warden(*args), message)


def test_config_show_masks_secrets_and_says_where_values_came_from(tmp_path: Path, warden: Warden) -> None:
    (tmp_path / "warden.toml").write_text("port = 9000\nlog_level = 'debug'\n")
    env = {"WARDEN_DATABASE_URL": "postgresql://w:pw-123@db/w", "WARDEN_LOG_LEVEL": "warning", "WARDEN_PROT": "1"}
    shown = warden("config", "show", env=env)
    assert shown.returncode == EXIT_OK, shown.stderr
    assert "pw-123" not in shown.stdout + shown.stderr
    lines = {line.split(" = ")[0]: line for line in shown.stdout.splitlines()[1:]}
    assert list(lines) == [spec.name for spec in SETTINGS]
    assert lines["port"].split() == ["port", "=", "9000", "#", "warden.toml:1"]
    assert lines["log_level"].split() == ["log_level", "=", '"warning"', "#", "env", "WARDEN_LOG_LEVEL"]
    assert lines["tamper_full_check_seconds"].split() == ["tamper_full_check_seconds", "=", "3600.0", "#", "default"]
    assert '"postgresql://w:***@db/w"' in lines["database_url"]
    assert shown.stderr == "warden: warning: WARDEN_PROT is not a Warden setting; did you mean WARDEN_PORT?\n"
    as_json = json.loads(warden("config", "show", "--json", env=env).stdout)
    assert as_json["port"] == {"value": 9000, "source": "warden.toml:1"}
    assert as_json["database_url"] == {"value": "postgresql://w:***@db/w", "source": "env WARDEN_DATABASE_URL"}


def test_config_show_masks_a_database_url_read_from_a_file(tmp_path: Path, warden: Warden) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg://warden:pw-from-file@db/warden\n")
    shown = warden("config", "show", "--json", env={"WARDEN_DATABASE_URL_FILE": str(secret)})
    assert shown.returncode == EXIT_OK, shown.stderr
    assert "pw-from-file" not in shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["database_url"] == {
        "value": "postgresql+psycopg://warden:***@db/warden", "source": "env WARDEN_DATABASE_URL_FILE"}


def test_config_list_documents_every_setting(tmp_path: Path, warden: Warden) -> None:
    listed = warden("config", "list")
    assert listed.returncode == EXIT_OK
    for spec in SETTINGS:
        assert f"{spec.name} ({spec.type_name}, default " in listed.stdout and spec.env in listed.stdout
        assert spec.help in listed.stdout
    entries = dict(zip(listed.stdout.splitlines()[::2], listed.stdout.splitlines()[1::2]))
    assert len(entries) == len(SETTINGS)
    assert ('database_url (str, default "sqlite:///warden-data/warden.db")  WARDEN_DATABASE_URL or '
            "WARDEN_DATABASE_URL_FILE; a password only there, never in the file") in entries
    assert entries["tamper_full_check_seconds (float, default 3600.0)  WARDEN_TAMPER_FULL_CHECK_SECONDS"] == (
        "    re-verify the whole audit log this often (new entries are verified every second)")
    assert ('stripe_api_key (str, default "")  WARDEN_STRIPE_API_KEY or WARDEN_STRIPE_API_KEY_FILE; the credential '
            "only there, never in the file") in entries


@pytest.mark.parametrize("group", ["agents", "users", "config"])
def test_help_lists_the_commands(warden: Warden, group: str) -> None:
    done = warden(group, "--help")
    assert done.returncode == EXIT_OK and "SUBCOMMAND" in done.stdout


def test_the_shell_sees_a_token_alone_on_stdout_and_errors_without_tracebacks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    added = warden_process("agents", "add", "bot", "--autonomy", "A1", "--tools", "crm.*", "--db", url, cwd=tmp_path)
    assert added.returncode == EXIT_OK, added.stderr
    assert added.stdout.startswith("wdn_agent_") and added.stdout.count("\n") == 1 and added.stdout.endswith("\n")
    assert added.stdout.strip() not in added.stderr
    engine = make_engine(url)
    with engine.connect() as conn:
        assert ids.authenticate_agent(conn, added.stdout.strip()) is not None
    engine.dispose()
    _one_line_error(warden_process("agents", "add", "bot", "--autonomy", "A1", "--tools", "crm.*", "--db", url,
                                   cwd=tmp_path), "agent 'bot' already exists")  # fmt: skip
