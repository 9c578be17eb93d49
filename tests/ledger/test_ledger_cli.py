"""`warden db | keys | audit` through a real subprocess: outputs, files, exit codes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ledger.database import make_engine
from ledger.keys import write_signer_key
from ledger.note import generate_key
from ledger.schema import entries
from ledger.store import Ledger, NewEntry

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def warden(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _no_secrets_or_tracebacks(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "PRIVATE+KEY" not in done.stdout + done.stderr


def _append(url: str, count: int, start: int = 0) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        Ledger().append_many(conn, [NewEntry("decision", "bot", f"d{i}", {"i": i}) for i in range(start, start + count)])
    engine.dispose()


def test_keys_generate_writes_a_private_file_and_prints_the_verifier_key(tmp_path: Path) -> None:
    done = warden("keys", "generate", "--out", "keys/log.key", "--name", "shop.example/audit", cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    key_file = tmp_path / "keys" / "log.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("PRIVATE+KEY+shop.example/audit+")
    assert done.stdout.strip().startswith("shop.example/audit+") and done.stdout.count("\n") == 1
    _no_secrets_or_tracebacks(done)
    again = warden("keys", "generate", "--out", "keys/log.key", cwd=tmp_path)
    assert again.returncode == EXIT_USAGE and "refusing to overwrite" in again.stderr
    _no_secrets_or_tracebacks(again)


def test_the_default_database_is_created_under_warden_data(tmp_path: Path) -> None:
    first = warden("db", "upgrade", cwd=tmp_path)
    second = warden("db", "upgrade", cwd=tmp_path)
    assert first.returncode == second.returncode == EXIT_OK
    assert "upgraded from 0 to version 1" in first.stdout and "already at version 1" in second.stdout
    assert (tmp_path / "warden-data" / "warden.db").is_file()
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert warden("db", "upgrade", cwd=tmp_path, env={"WARDEN_DATABASE_URL": url}).returncode == EXIT_OK
    assert (tmp_path / "elsewhere.db").is_file()


def test_checkpoint_export_verify_rotate_and_tamper(db_url: str, tmp_path: Path) -> None:
    run = lambda *args: warden(*args, cwd=tmp_path)  # noqa: E731
    assert run("db", "upgrade", "--db", db_url).returncode == EXIT_OK
    generated = run("keys", "generate", "--out", "first.key")
    first_key = generated.stdout.strip()
    _append(db_url, 25)
    assert "size 25" in run("audit", "checkpoint", "--db", db_url, "--key", "first.key").stdout
    rotated = run("keys", "rotate", "--db", db_url, "--key", "first.key", "--new-key-out", "second.key")
    assert rotated.returncode == EXIT_OK, rotated.stderr
    _no_secrets_or_tracebacks(rotated)
    assert stat.S_IMODE((tmp_path / "second.key").stat().st_mode) == 0o600
    _append(db_url, 10, start=25)
    stale = run("audit", "checkpoint", "--db", db_url, "--key", "first.key")
    assert stale.returncode == EXIT_USAGE and "the log signs with key" in stale.stderr
    exported = run("audit", "export", "--db", db_url, "--out", "export", "--sign-with", "second.key")
    assert exported.returncode == EXIT_OK, exported.stderr
    assert "exported 36 entries" in exported.stdout
    assert (tmp_path / "export" / "log.pub").read_text().strip() == first_key

    ok = run("audit", "verify", "export", "--key", "export/log.pub")
    assert ok.returncode == EXIT_OK, ok.stdout + ok.stderr
    assert re.search(r"\(1\) (✓|ok) every entry", ok.stdout) and "OK: 36 entries" in ok.stdout
    assert run("audit", "verify", "--db", db_url, "--key", first_key).returncode == EXIT_OK
    trusted = sorted((tmp_path / "export" / "checkpoints").iterdir())[0]
    with_trusted = run("audit", "verify", "export", "--key", first_key, "--trusted-checkpoint", str(trusted))
    assert with_trusted.returncode == EXIT_OK, with_trusted.stdout

    lines = (tmp_path / "export" / "entries.jsonl").read_bytes().split(b"\n")
    lines[30] = lines[30].replace(b'"bot"', b'"tob"')
    (tmp_path / "export" / "entries.jsonl").write_bytes(b"\n".join(lines))
    bad = run("audit", "verify", "export", "--key", first_key)
    assert bad.returncode == EXIT_CHECK_FAILED
    assert re.search(r"\((3|4)\) (✗|FAIL) ", bad.stdout) and re.search(r"FAILED at step \(3\) (—|-) seq 31", bad.stdout)

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == 3).values(body=Ledger().entry(conn, 4)))
    engine.dispose()
    bad_db = run("audit", "verify", "--db", db_url, "--key", first_key)
    assert bad_db.returncode == EXIT_CHECK_FAILED and "FAILED at step" in bad_db.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "verify", "missing-dir", "--key", "KEY"], "not a folder"),
        (["audit", "verify", "--key", "KEY"], "give either an export folder DIR or --db URL"),
        (["audit", "verify", "empty", "--key", "not-a-key-file"], "neither a verifier key nor an existing file"),
        (["audit", "verify", "empty", "--key", "a+b+c"], "bad verifier key"),
        (["audit", "verify", "empty", "--key", "private.key"], "that is a private signing key"),
        (["audit", "verify", "empty", "--key", "KEY"], "not an audit export"),
        (["audit", "verify", "empty", "--key", "KEY", "--trusted-checkpoint", "nope.note"], "does not exist"),
        (["audit", "verify", "--db", "sqlite:///missing.db", "--key", "KEY"], "missing.db does not exist"),
        (["audit", "export", "--db", "mysql://x/y", "--out", "o"], "unsupported database 'mysql'"),
        (["audit", "export", "--db", "postgresql+psycopg://u@127.0.0.1:1/x", "--out", "o"], "database error"),
        (["audit", "checkpoint", "--db", "sqlite:///db.sqlite", "--key", "private.key"], "no audit ledger yet"),
        (["audit", "checkpoint", "--key", "loose.key"], "accessible by other users"),
        (["keys", "rotate", "--key", "missing.key", "--new-key-out", "n.key"], "does not exist"),
        (["audit", "export"], "the following arguments are required: --out"),
    ],
)
def test_bad_inputs_get_one_clear_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "db.sqlite").touch()
    write_signer_key(tmp_path / "private.key", generate_key("warden.test/log"))
    verifier = generate_key("warden.test/log").verifier_key
    (tmp_path / "loose.key").write_text((tmp_path / "private.key").read_text())
    (tmp_path / "loose.key").chmod(0o644)
    done = warden(*[verifier if a == "KEY" else a for a in args], cwd=tmp_path)
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert message in done.stderr
    _no_secrets_or_tracebacks(done)


def test_verify_db_checks_that_the_head_row_matches_the_entries(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger.checkpointer import Checkpointer
    from ledger.schema import head, upgrade
    from gateway.cli.verification import run_verification

    engine = make_engine(db_url)
    upgrade(engine)
    signer = generate_key("warden.test/log")
    _append(db_url, 9)
    with engine.begin() as conn:
        Checkpointer(signer).sign_now(conn)
    assert run_verification(None, db_url, signer.verifier_key, None) == EXIT_OK
    assert re.search(r"\(8\) (✓|ok) the database head matches the verified entries", capsys.readouterr().out)
    with engine.begin() as conn:
        frontier = bytes(conn.execute(select(head.c.frontier)).scalar_one())
        conn.execute(update(head).values(frontier=bytes(32) + frontier[32:]))
    engine.dispose()
    assert run_verification(None, db_url, signer.verifier_key, None) == EXIT_CHECK_FAILED
    out = capsys.readouterr().out
    assert re.search(r"\(8\) (✗|FAIL) the database head", out) and "FAILED at step (8)" in out
