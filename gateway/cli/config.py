"""`warden config show | list`: Warden's settings as every command reads them.

    config show [--config FILE] [--json]     every setting's value and where it came from (secrets masked)
    config list                              every setting: type, default, variable, help

The values are those `gateway.cli.options` resolves for every other command; bad settings are a
`ConfigError` (file:line:col or the variable's name): one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.exits import EXIT_OK
from gateway.cli.options import add_config_option, command_group, loaded


def register(subparsers: Any) -> None:
    """Add `warden config` to the `warden` command."""
    config = command_group(subparsers, "config", "Warden's settings (warden.toml, WARDEN_* variables)")
    show = config.add_parser("show", help="every setting's value and where it came from (secrets masked)")
    add_config_option(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_command)
    listing = config.add_parser("list", help="every setting: type, default, variable, help")
    listing.set_defaults(handler=list_command)


def show_command(args: argparse.Namespace) -> int:
    from gateway.config import SETTINGS

    found = loaded(args)
    shown = found.settings.masked()
    if args.json:
        document = {spec.name: {"value": shown[spec.name], "source": found.sources[spec.name]} for spec in SETTINGS}
        print(json.dumps(document, indent=2))
        return EXIT_OK
    lines = [(f"{spec.name} = {_toml_value(shown[spec.name])}", found.sources[spec.name]) for spec in SETTINGS]
    width = max(len(line) for line, _ in lines)
    body = "\n".join(f"{line.ljust(width)}  # {source}" for line, source in lines)
    print(f"# config file: {found.config_file or 'none'}\n{body}")
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    from gateway.config import SETTINGS

    entries = []
    for spec in SETTINGS:
        default = _toml_value(spec.masked(spec.default))
        what = "a password" if spec.name.endswith("_url") else "the credential"
        where = f"{spec.env} or {spec.env}_FILE; {what} only there, never in the file" if spec.secret else spec.env
        entries.append(f"{spec.name} ({spec.type_name}, default {default})  {where}\n    {spec.help}")
    print("\n".join(entries))
    return EXIT_OK


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)
