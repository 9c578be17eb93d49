"""`gateway.cli.guard`: what every command's failure looks like, decided in one place."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from dsl import PolicyCompileError, compile_sources
from gateway.cli import guard
from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_COMPILE_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from gateway.config import ConfigError
from gateway.store.identities import IdentityError
from ledger.keys import KeyFileError


def _raising(exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        raise exc

    return handler


def _run(exc: BaseException, capsys: pytest.CaptureFixture[str], **args: object) -> tuple[int, str]:
    code = guard.run(_raising(exc), argparse.Namespace(**args))
    out = capsys.readouterr()
    assert out.out == ""
    return code, out.err


@pytest.mark.parametrize("name", [*guard.EXPECTED, guard.COMPILE_ERROR, guard.DRIVER_ERROR, guard.DATABASE_ERROR])
def test_every_error_the_guard_names_exists(name: tuple[str, str]) -> None:
    module, cls = name
    assert issubclass(getattr(importlib.import_module(module), cls), Exception)


@pytest.mark.parametrize(
    "exc",
    [ConfigError("warden.toml:2:8: port: expected int"), IdentityError("unknown_agent", "no agent named 'x'"),
     KeyFileError("signing key file k does not exist")],
)  # fmt: skip
def test_expected_errors_are_their_message_and_exit_2(exc: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(exc, capsys) == (EXIT_USAGE, f"warden: error: {exc}\n")


def test_a_command_error_keeps_its_words_and_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    failed = guard.CommandError("port 8080 on 127.0.0.1 is in use", prefix="warden serve")
    assert _run(failed, capsys) == (EXIT_USAGE, "warden serve: port 8080 on 127.0.0.1 is in use\n")
    assert _run(guard.CommandError("tests failed", EXIT_CHECK_FAILED), capsys) == (
        EXIT_CHECK_FAILED, "warden: error: tests failed\n")


def test_policy_compile_errors_print_every_diagnostic_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PolicyCompileError) as caught:
        compile_sources({"a.policy": "policy oops {\n  risk L9\n}\n",
                         "b.policy": 'policy other {\n  applies to tool "x.y"\n  risk L1\n  mode loud\n}\n'})
    code, err = _run(caught.value, capsys)
    errors = sum(1 for d in caught.value.diagnostics if d.severity == "error")
    assert code == EXIT_COMPILE_ERROR
    assert "a.policy:2:" in err and "b.policy:4:" in err and "^" in err
    assert err.endswith(f"\nwarden: error: the policies do not compile: {errors} error(s)\n")


def test_database_errors_name_the_database_without_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    failed = OperationalError("SELECT 1", {}, Exception("connection refused\n\tIs the server running?"))
    code, err = _run(failed, capsys, db="postgresql+psycopg://warden:s3cret@db.local/warden")
    assert code == EXIT_USAGE
    assert err == "warden: error: database error (postgresql+psycopg://warden:***@db.local/warden): connection refused\n"


def test_file_errors_name_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "export/entries.jsonl")
    assert _run(missing, capsys) == (EXIT_USAGE, "warden: error: export/entries.jsonl: No such file or directory\n")


def test_an_unexpected_error_is_one_line_too(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "flags", SimpleNamespace(dev_mode=False))
    assert _run(RuntimeError("boom"), capsys) == (
        EXIT_USAGE, "warden: error: unexpected RuntimeError: boom (PYTHONDEVMODE=1 shows where)\n")
    monkeypatch.setattr(sys, "flags", SimpleNamespace(dev_mode=True))
    with pytest.raises(RuntimeError, match="boom"):
        guard.run(_raising(RuntimeError("boom")), argparse.Namespace())


def test_interrupts_and_closed_pipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(KeyboardInterrupt(), capsys) == (EXIT_INTERRUPTED, "")
    assert _run(BrokenPipeError(errno.EPIPE, "Broken pipe"), capsys) == (EXIT_OK, "")
