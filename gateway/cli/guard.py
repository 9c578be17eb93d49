"""The one place where a `warden` command's failure becomes what its user sees.

`gateway.cli.main` runs every command's handler through `run`. A handler returns its exit code
or raises; what it raises is translated here, the same way for every command:

    CommandError             its own line (`warden: error: ...`) and its own exit code
    PolicyCompileError       every diagnostic as file:line:col with a caret, then one line; exit 3
    the expected errors      `warden: error: <their message>`; exit 2. Bad settings (ConfigError),
      (EXPECTED below)       identities, policy test files, keys, notes, exports, verification,
                             the ledger, its schema, database URLs, connector settings
    SQLAlchemy errors        `warden: error: database error (URL): <the driver's reason>`; exit 2
    OSError                  `warden: error: FILE: <reason>`; exit 2
    anything else            `warden: error: unexpected <type>: <message>`; exit 2
    KeyboardInterrupt        exit 130; BrokenPipeError (stdout closed early, `| head`): exit 0

Never a traceback: a user gets one line. With `PYTHONDEVMODE=1` (or `python -X dev`) an
unexpected error propagates with its traceback, for whoever debugs Warden itself.

The error classes are named by module and looked up among the modules already imported: an
exception cannot come from a module nobody loaded, and recognising one must not load SQLAlchemy
or the policy compiler just to print a line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gateway.cli.exits import EXIT_COMPILE_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]

ERROR = "warden: error"

#: (module, class) of the errors whose message is written for the user: a usage error, exit 2.
EXPECTED: tuple[tuple[str, str], ...] = (
    ("gateway.config", "ConfigError"),
    ("gateway.store.identities", "IdentityError"),
    ("gateway.events.webhooks", "WebhookError"),
    ("gateway.engine.cases", "CaseFileError"),
    ("gateway.replay.history", "HistoryError"),
    ("ledger.keys", "SigningKeyError"),
    ("ledger.note", "NoteError"),
    ("ledger.export", "ExportError"),
    ("ledger.verify", "VerifyError"),
    ("ledger.store", "LedgerError"),
    ("ledger.schema", "SchemaError"),
    ("ledger.database", "DatabaseURLError"),
    ("connectors.base", "ConnectorConfigError"),
)
COMPILE_ERROR = ("dsl.errors", "PolicyCompileError")
DRIVER_ERROR = ("sqlalchemy.exc", "DBAPIError")
DATABASE_ERROR = ("sqlalchemy.exc", "SQLAlchemyError")


class CommandError(Exception):
    """A failure the command explains in its own words: one line on stderr, and an exit code.
    `prefix` names who speaks (`warden: error`, or `warden serve` for the server's start-up)."""

    def __init__(self, message: str, code: int = EXIT_USAGE, *, prefix: str = ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.prefix = prefix


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run one command; whatever it raises becomes a message and an exit code (see above)."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except CommandError as exc:
        return _say(exc.prefix, str(exc), exc.code)
    except Exception as exc:
        return _report(exc, args)


def _report(exc: Exception, args: argparse.Namespace) -> int:
    if _is(exc, COMPILE_ERROR):
        failure: Any = exc
        print(failure.render(), file=sys.stderr)
        errors = sum(1 for diagnostic in failure.diagnostics if diagnostic.severity == "error")
        return _say(ERROR, f"the policies do not compile: {errors} error(s)", EXIT_COMPILE_ERROR)
    if any(_is(exc, name) for name in EXPECTED):
        return _say(ERROR, str(exc) or type(exc).__name__, EXIT_USAGE)
    if _is(exc, DATABASE_ERROR):
        return _say(ERROR, _database_error(exc, args), EXIT_USAGE)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return _say(ERROR, f"{where}{exc.strerror or exc}", EXIT_USAGE)
    if sys.flags.dev_mode:
        raise exc
    return _say(ERROR, f"unexpected {type(exc).__name__}: {exc} (PYTHONDEVMODE=1 shows where)", EXIT_USAGE)


def _is(exc: Exception, name: tuple[str, str]) -> bool:
    module = sys.modules.get(name[0])
    return module is not None and isinstance(exc, getattr(module, name[1]))


def _database_error(exc: Exception, args: argparse.Namespace) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from gateway.cli.options import database_in_use

    original = getattr(exc, "orig", None) if _is(exc, DRIVER_ERROR) else None
    cause: BaseException = exc if original is None else original
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    url = database_in_use(args)
    if url is None:
        return f"database error: {reason}"
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = "invalid URL"
    return f"database error ({shown}): {reason}"


def _say(prefix: str, message: str, code: int) -> int:
    print(f"{prefix}: {message}", file=sys.stderr)
    return code
