"""`warden users set-password` and `warden users invite`: the console's accounts from the shell.

The prompt is driven in this process (`getpass` replaced); stdin, the link on stdout and the exit
codes are checked through a real subprocess, as a shell runs them.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from cli_support import EXIT_OK, EXIT_USAGE, environment
from gateway.cli.main import main
from gateway.store import identities as ids
from gateway.store.schema import users
from ledger.database import make_engine
from ledger.store import Ledger

PASSWORD = "correct horse battery"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    """A database holding one founder, ana@example.com."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "users", "add", "ana@example.com", "--role", "founder",
                           "--db", url], cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    yield url


def shell(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> Ran:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=environment(env), input=stdin,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def warden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """`warden ARGS...` in this process, in tmp_path, with no WARDEN_* variable."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("WARDEN_")]:
        monkeypatch.delenv(name)

    def run(*args: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def _signs_in(url: str, email: str, password: str) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            try:
                ids.check_password(conn, email, password, None, 10.0**10, max_failures=100,
                                   max_failures_per_address=100, window=1.0)  # fmt: skip
            except ids.LoginRefused:
                return False
            finally:
                conn.rollback()
            return True
    finally:
        engine.dispose()


def _entries(url: str) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [json.loads(body) for body in Ledger().iter_entries(conn)]
    finally:
        engine.dispose()


def _time(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


# -- set-password -------------------------------------------------------------------------------


def test_set_password_from_stdin_in_a_shell(db: str, tmp_path: Path) -> None:
    engine = make_engine(db)
    with engine.begin() as conn:
        token, _session = ids.start_session(conn, "ana@example.com", 1.0, None)
    done = shell("users", "set-password", "ANA@example.com", "--password-stdin", "--db", db, cwd=tmp_path,
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert (done.returncode, done.stdout) == (EXIT_OK, ""), done.stderr
    assert done.stderr == "password set for ana@example.com; their console sessions were ended\n"
    assert _signs_in(db, "ana@example.com", PASSWORD)
    with engine.begin() as conn:
        assert ids.session_for(conn, token, 2.0, idle_seconds=10.0**12, max_seconds=10.0**12) is None
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    engine.dispose()
    assert stored.startswith("$argon2id$") and not PasswordHasher().check_needs_rehash(stored)  # the real parameters
    entry = _entries(db)[-1]
    assert (entry["kind"], entry["subject"], entry["data"]) == (
        "user_changed", "ana@example.com", {"field": "password", "old": None, "new": None})
    assert PASSWORD not in json.dumps(_entries(db))


def test_set_password_refusals_in_a_shell(db: str, tmp_path: Path) -> None:
    for stdin, args, message in [
        ("short\n", ["ana@example.com"], "a password needs at least 12 characters"),
        ("", ["ana@example.com"], "no password on stdin"),
        (PASSWORD + "\n", ["eve@example.com"], "no user 'eve@example.com'"),
    ]:
        done = shell("users", "set-password", *args, "--password-stdin", "--db", db, cwd=tmp_path, stdin=stdin)
        assert (done.returncode, done.stdout) == (EXIT_USAGE, ""), done.stderr
        assert done.stderr.startswith(f"warden: error: {message}") and done.stderr.count("\n") == 1
    assert not _signs_in(db, "ana@example.com", PASSWORD) and len(_entries(db)) == 1


def test_a_password_is_never_an_argument(db: str, warden: Callable[..., Ran]) -> None:
    done = warden("users", "set-password", "ana@example.com", PASSWORD, "--db", db)
    assert done.returncode == EXIT_USAGE and "unrecognized arguments" in done.stderr
    done = warden("users", "set-password", "ana@example.com", "--password", PASSWORD, "--db", db)
    assert done.returncode == EXIT_USAGE
    assert not _signs_in(db, "ana@example.com", PASSWORD)


def test_set_password_asks_twice(db: str, warden: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([PASSWORD, PASSWORD + "!", PASSWORD, PASSWORD])
    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt) or next(answers))
    monkeypatch.setattr(sys, "stdin", io.StringIO("never read\n"))
    done = warden("users", "set-password", "ana@example.com", "--db", db)
    assert (done.returncode, done.stderr) == (EXIT_USAGE, "warden: error: the two passwords differ; nothing changed\n")
    assert not _signs_in(db, "ana@example.com", PASSWORD)
    done = warden("users", "set-password", "ana@example.com", "--db", db)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stderr == "password set for ana@example.com; their console sessions were ended\n"
    assert prompts == ["New console password: ", "Again: "] * 2
    assert _signs_in(db, "ana@example.com", PASSWORD)


# -- invite -------------------------------------------------------------------------------------


def test_invite_prints_a_link_that_sets_the_password(db: str, tmp_path: Path) -> None:
    done = shell("users", "invite", "Ana@Example.com", "--db", db, cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    link = done.stdout.removesuffix("\n")
    assert "\n" not in link and link.startswith("http://localhost:8080/console/invite/wdn_invite_")
    assert "invite for ana@example.com, valid until " in done.stderr and link not in done.stderr
    token = link.rsplit("/", 1)[1]
    entry = _entries(db)[-1]
    assert (entry["kind"], entry["subject"]) == ("user_invited", "ana@example.com")
    expires = entry["data"]["expires_at"]  # type: ignore[index]
    assert f"valid until {expires}" in done.stderr  # the default: invite_ttl_seconds, three days
    engine = make_engine(db)
    try:
        with engine.begin() as conn:
            ids.redeem_invite(conn, Ledger(), token, PASSWORD, _time(entry) + 60)
    finally:
        engine.dispose()
    assert _signs_in(db, "ana@example.com", PASSWORD)


def test_invite_uses_public_url_and_ttl(db: str, tmp_path: Path) -> None:
    env = {"WARDEN_PUBLIC_URL": "https://warden.example.com/"}
    done = shell("users", "invite", "ana@example.com", "--ttl", "120", "--db", db, cwd=tmp_path, env=env)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith("https://warden.example.com/console/invite/wdn_invite_")
    entry = _entries(db)[-1]
    assert abs(_time({"time": entry["data"]["expires_at"]}) - _time(entry) - 120) < 2  # type: ignore[index]
    (tmp_path / "warden.toml").write_text('host = "::1"\nport = 9000\n')
    done = shell("users", "invite", "ana@example.com", "--db", db, cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith("http://[::1]:9000/console/invite/wdn_invite_")


def test_invite_refusals(db: str, warden: Callable[..., Ran]) -> None:
    for args, message in [(["eve@example.com"], "no user 'eve@example.com'"),
                          (["ana@example.com", "--ttl", "0"], "an invite must stay valid for some seconds")]:
        done = warden("users", "invite", *args, "--db", db)
        assert (done.returncode, done.stdout) == (EXIT_USAGE, ""), done.stderr
        assert done.stderr.startswith(f"warden: error: {message}")
    assert len(_entries(db)) == 1
