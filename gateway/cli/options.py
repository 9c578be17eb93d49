"""The options several `warden` commands share, and the settings they select.

Every command reads the same settings as `warden serve` (`gateway.config`): the file given with
`--config FILE`, else `$WARDEN_CONFIG`, else `./warden.toml` if there is one, under the
`WARDEN_*` environment. An option on the command line overrides one setting for this run:

    --db URL                    database_url      db, keys rotate, audit, agents, users
    keys generate --out PATH    signing_key_file
    keys generate --name NAME   log_origin
    policy ... DIR / --dir DIR  policy_dir

A command resolves its settings once, when it first needs one, so a command given every value on
its command line reads no settings at all. Warnings about the environment (a `WARDEN_*` name that
looks like a typo) go to stderr as `warden: warning: ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings module loads when a command first asks for a setting
    from gateway.config import Loaded, Settings

_LOADED = "_warden_loaded_settings"  # where a command's resolved settings are kept on its args


def command_group(subparsers: Any, name: str, help: str) -> Any:
    """`warden NAME SUBCOMMAND ...`: a command made of sub-commands, one of which is required."""
    parser = subparsers.add_parser(name, help=help, description=help)
    commands = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    commands.required = True
    return commands


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file (default: $WARDEN_CONFIG, else ./warden.toml if present)")


def check_settings_file(args: argparse.Namespace) -> None:
    """A `--config FILE` named on the command line must exist, even for a command that ends up
    needing no setting: a mistyped name is reported, never silently ignored."""
    named: Path | None = getattr(args, "config", None)
    if named is not None and not named.is_file():
        from gateway.config import ConfigError

        raise ConfigError(f"{named}: no such config file")


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (default: the database_url setting)")


def loaded(args: argparse.Namespace) -> Loaded:
    """The command's settings with where each value came from; resolved on first use."""
    found: Loaded | None = getattr(args, _LOADED, None)
    if found is None:
        from gateway.config import resolve

        found = resolve(getattr(args, "config", None))
        for message in found.warnings:
            print(f"warden: warning: {message}", file=sys.stderr)
        setattr(args, _LOADED, found)
    return found


def settings(args: argparse.Namespace) -> Settings:
    return loaded(args).settings


def database_url(args: argparse.Namespace) -> str:
    """`--db URL` if given, else the database_url setting. Kept in `args.db`, so that a database
    error names the database the command used."""
    if not getattr(args, "db", None):
        args.db = settings(args).database_url
    url: str = args.db
    return url


def database_in_use(args: argparse.Namespace) -> str | None:
    """The database URL the command has used so far, if any (for messages)."""
    url: str | None = getattr(args, "db", None)
    found: Loaded | None = getattr(args, _LOADED, None)
    if not url and found is not None:
        url = found.settings.database_url
    return url or None
