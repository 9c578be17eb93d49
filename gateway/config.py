"""Warden's settings: one table of name, type, default and help, read from `warden.toml` and the
`WARDEN_*` environment.

The table is the `Settings` dataclass itself: each field's annotation is its type, its default the
default, its metadata the help line (and whether it is secret, its bounds). Loading, validation,
`warden config show` and `warden config list` are all derived from it (`SETTINGS`).

- Precedence: the environment (`WARDEN_<NAME>`) wins over the file, the file over the default.
- The file: `--config FILE`, else `$WARDEN_CONFIG`, else `./warden.toml` if there is one. Flat
  `name = value` pairs; relative paths are relative to the working directory.
- Secrets come only from the environment: `WARDEN_<NAME>`, or `WARDEN_<NAME>_FILE` naming a file
  that holds the value (as container secrets are mounted). A secret in `warden.toml` is refused,
  and so is a database URL with a password in it. `masked()` shows secrets as `***`.
- Bad input fails loudly at start-up: `ConfigError` says where (`warden.toml:3:8`, or the
  variable's name) and what was expected. An unknown `WARDEN_*` variable that looks like a typo of
  a setting gives a `ConfigWarning` ("did you mean ...").
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dsl.shipped import builtin_policy_dir

ENV_PREFIX = "WARDEN_"
CONFIG_ENV = "WARDEN_CONFIG"
DEFAULT_CONFIG_FILE = Path("warden.toml")
#: The policies shipped with Warden (package data of `dsl`, found by `dsl.shipped`).
SHIPPED_POLICY_DIR = builtin_policy_dir()
MASK = "***"


class ConfigError(ValueError):
    """A setting cannot be used; the message says where it came from and what was expected."""


class ConfigWarning(UserWarning):
    """Something in the environment looks wrong but does not stop Warden (a likely typo)."""


def _setting(default: Any, help: str, *, secret: bool = False, minimum: float | None = None,
             maximum: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret, "min": minimum, "max": maximum})


LogLevel = Literal["debug", "info", "warning", "error", "critical"]


@dataclass(frozen=True)
class Settings:
    """Every setting Warden reads. Construct directly in tests; `load_settings()` otherwise."""

    database_url: str = _setting("sqlite:///warden-data/warden.db",
                                 "database: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (password: env only)")
    data_dir: Path = _setting(Path("warden-data"), "folder for Warden's own files (embedded database, keys)")
    host: str = _setting("127.0.0.1", "address `warden serve` listens on")
    port: int = _setting(8080, "port `warden serve` listens on", minimum=1, maximum=65535)
    policy_dir: Path = _setting(SHIPPED_POLICY_DIR, "folder of *.policy files (default: the shipped policies)")
    policy_reload: bool = _setting(True, "watch policy_dir and activate changed policies that compile")
    policy_poll_seconds: float = _setting(1.0, "how often policy_dir is checked for changes", minimum=0.05)
    signing_key_file: Path = _setting(Path("warden-data/ledger.key"),
                                      "signing key for checkpoints (`warden keys generate`); its contents are never shown")
    log_origin: str = _setting("warden.local/audit", "the audit log's name: first line of its checkpoints, its key's name")
    checkpoint_every_entries: int = _setting(1000, "sign a checkpoint after this many new entries", minimum=1)
    checkpoint_every_seconds: float = _setting(60.0, "sign a checkpoint at least this often when the log grew", minimum=0.1)
    connectors_mode: Literal["sandbox", "live"] = _setting(
        "sandbox", "sandbox: no network, recorded calls; live: the real APIs (credentials from the environment)")
    sandbox_faults: str = _setting("", "faults the sandbox connectors inject (for drills), empty for none")
    sandbox_latency_ms: int = _setting(0, "latency the sandbox connectors add to every call", minimum=0)
    approval_ttl_default_seconds: int = _setting(86400, "how long an approval stays open unless a rule says", minimum=1)
    max_packet_bytes: int = _setting(65536, "largest packet body accepted", minimum=256)
    long_poll_max_seconds: float = _setting(60.0, "longest `?wait=` on GET /v1/actions/{id}", minimum=0)
    outbox_workers: int = _setting(2, "execution workers per process", minimum=1)
    outbox_recover_on_start: bool = _setting(
        True, "at start, re-drive every execution left in flight (one process); false when several share a database")
    outbox_max_attempts: int = _setting(8, "attempts before an execution is recorded as failed", minimum=1)
    outbox_backoff_base_seconds: float = _setting(0.5, "first retry delay (doubles per attempt, with jitter)", minimum=0)
    outbox_backoff_max_seconds: float = _setting(60.0, "longest retry delay", minimum=0)
    breaker_failures: int = _setting(5, "consecutive connector failures that open its circuit breaker", minimum=1)
    breaker_cooldown_seconds: float = _setting(60.0, "how long an open breaker waits before a trial call", minimum=0)
    repeated_denials_threshold: int = _setting(5, "denials of one agent within the window that open an incident", minimum=1)
    repeated_denials_window_seconds: float = _setting(300.0, "the window for repeated denials", minimum=1)
    log_level: LogLevel = _setting("info", "least severe log level written")
    log_json: bool = _setting(True, "log one JSON object per line (false: plain text)")
    stripe_api_key: str = _setting("", "Stripe secret key for live mode", secret=True)
    shopify_access_token: str = _setting("", "Shopify Admin API access token for live mode", secret=True)
    crm_api_token: str = _setting("", "CRM API token for live mode", secret=True)

    def __post_init__(self) -> None:
        for spec in SETTINGS:
            problem = spec.check(getattr(self, spec.name))
            if problem:
                raise ConfigError(f"{spec.name}: {problem}")
        if self.outbox_backoff_base_seconds > self.outbox_backoff_max_seconds:
            raise ConfigError("outbox_backoff_base_seconds must not exceed outbox_backoff_max_seconds")

    def masked(self) -> dict[str, Any]:
        """Every setting's value as it may be shown: secrets as `***`, no database password."""
        return {spec.name: spec.masked(getattr(self, spec.name)) for spec in SETTINGS}


@dataclass(frozen=True)
class Spec:
    """One row of the settings table, derived from a `Settings` field."""

    name: str
    kind: type  # str, int, float, bool or Path
    choices: tuple[str, ...]
    default: Any
    help: str
    secret: bool
    minimum: float | None
    maximum: float | None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def type_name(self) -> str:
        return "|".join(self.choices) if self.choices else {Path: "path"}.get(self.kind, self.kind.__name__)

    def check(self, value: Any) -> str | None:
        """What is wrong with a value (type, choices, range), or None."""
        if self.kind is Path and value == "":
            return "expected a path, got an empty string"
        wanted = (int, float) if self.kind is float else self.kind
        if not isinstance(value, wanted) or (isinstance(value, bool) and self.kind is not bool):
            shown = MASK if self.secret else repr(value)
            return f"expected {self.type_name}, got {type(value).__name__} {shown}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(self.choices)}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, got {value!r}"
        return None

    def masked(self, value: Any) -> Any:
        if self.secret:
            return MASK if value else ""
        if self.name == "database_url":
            return _hide_password(value)
        return str(value) if isinstance(value, Path) else value


def _specs() -> tuple[Spec, ...]:
    hints = typing.get_type_hints(Settings)
    specs = []
    for f in dataclasses.fields(Settings):
        hint = hints[f.name]
        choices = tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()
        meta = f.metadata
        specs.append(Spec(f.name, str if choices else hint, choices, f.default, meta["help"], meta["secret"],
                          meta["min"], meta["max"]))
    return tuple(specs)


SETTINGS: tuple[Spec, ...] = _specs()
BY_NAME: Mapping[str, Spec] = {spec.name: spec for spec in SETTINGS}


# -- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """Settings with where each value came from (`default`, `warden.toml:4`, `env WARDEN_PORT`)."""

    settings: Settings
    sources: Mapping[str, str]
    config_file: Path | None
    warnings: tuple[str, ...] = ()


def load_settings(config_path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """The settings: environment over `warden.toml` over the defaults. Raises `ConfigError`;
    likely typos in `WARDEN_*` names are reported as `ConfigWarning`s."""
    loaded = resolve(config_path, env)
    for message in loaded.warnings:
        warnings.warn(message, ConfigWarning, stacklevel=2)
    return loaded.settings


def resolve(config_path: Path | None = None, env: Mapping[str, str] | None = None) -> Loaded:
    """Like `load_settings`, keeping each value's source and the warnings for the caller to show."""
    environ = os.environ if env is None else env
    config_file = _find_config_file(config_path, environ)
    values: dict[str, Any] = {}
    sources = {spec.name: "default" for spec in SETTINGS}
    if config_file is not None:
        for name, (value, line) in _read_toml(config_file).items():
            values[name] = value
            sources[name] = f"{config_file}:{line}" if line else str(config_file)
    for spec in SETTINGS:
        found = _from_env(spec, environ)
        if found is not None:
            values[spec.name], sources[spec.name] = found
    settings = Settings(**values)  # each value is checked already; this checks them together
    return Loaded(settings, sources, config_file, tuple(likely_typos(environ)))


def _find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    if explicit is None and environ.get(CONFIG_ENV):
        explicit = Path(environ[CONFIG_ENV])
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file")
        return explicit
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_toml(path: Path) -> dict[str, tuple[Any, int | None]]:
    """name → (typed value, line) for every pair in the file; every problem as file:line:col."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if at:
            message = message[: at.start()]
            raise ConfigError(f"{path}:{at[1]}:{at[2]}: invalid TOML: {message}") from None
        lines = text.split("\n")  # "(at end of document)": point just past the last character
        message = message.replace(" (at end of document)", "")
        raise ConfigError(f"{path}:{len(lines)}:{len(lines[-1]) + 1}: invalid TOML: {message}") from None
    found: dict[str, tuple[Any, int | None]] = {}
    for key, value in document.items():
        line, col = _locate(text, key)
        where = f"{path}:{line}:{col}" if line else str(path)
        spec = BY_NAME.get(key)
        if spec is None:
            raise ConfigError(f"{where}: unknown setting {key!r}{_did_you_mean(key)}")
        if spec.secret:
            raise ConfigError(f"{where}: {key} is a secret; set {spec.env} or {spec.env}_FILE instead, never the config file")
        if key == "database_url" and isinstance(value, str) and _hide_password(value) != value:
            raise ConfigError(f"{where}: database_url holds a password; put the URL in {spec.env} instead")
        if spec.kind is Path and isinstance(value, str) and value:
            value = Path(value)
        elif spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = spec.check(value)
        if problem:
            value_col = _value_column(text, line, col)
            raise ConfigError(f"{path}:{line}:{value_col}: {key}: {problem}" if line else f"{where}: {key}: {problem}")
        found[key] = (value, line)
    return found


def _locate(text: str, key: str) -> tuple[int | None, int | None]:
    """Line and column (1-based) where `key` is assigned or opens a table, if we can tell."""
    pattern = re.compile(rf"""^(\s*\[*\s*)(["']?){re.escape(key)}\2\s*[=\].]""")
    for number, line in enumerate(text.splitlines(), 1):
        match = pattern.match(line)
        if match:
            return number, len(match[1]) + 1
    return None, None


def _value_column(text: str, line: int | None, col: int | None) -> int | None:
    if line is None or col is None:
        return col
    source = text.splitlines()[line - 1]
    at = source.find("=", col - 1)
    if at < 0:
        return col
    at += 1
    while at < len(source) and source[at] in " \t":
        at += 1
    return at + 1


def _from_env(spec: Spec, environ: Mapping[str, str]) -> tuple[Any, str] | None:
    """(value, source) from `WARDEN_<NAME>` (or, for secrets, `WARDEN_<NAME>_FILE`), or None."""
    raw, source = environ.get(spec.env), f"env {spec.env}"
    file_var = spec.env + "_FILE"
    if spec.secret and environ.get(file_var):
        if raw is not None:
            raise ConfigError(f"{spec.env} and {file_var} are both set; use one")
        try:
            raw = Path(environ[file_var]).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file_var}: cannot read {environ[file_var]}: {getattr(exc, 'strerror', None) or exc}") from None
        source = f"env {file_var}"
    if raw is None:
        return None
    try:
        value = _parse_text(spec, raw)
    except ValueError as exc:
        raise ConfigError(f"{spec.env}: {exc}") from None
    problem = spec.check(value)
    if problem:
        raise ConfigError(f"{spec.env}: {problem}")
    return value, source


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_text(spec: Spec, raw: str) -> Any:
    text = raw.strip()
    shown = "<hidden>" if spec.secret else repr(raw)
    if spec.kind is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"expected true or false (also 1/0, yes/no, on/off), got {shown}")
    if spec.kind is int:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"expected an integer, got {shown}")
        return int(text)
    if spec.kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {shown}") from None
    if spec.kind is Path:
        return Path(text) if text else ""
    return raw


def likely_typos(environ: Mapping[str, str]) -> list[str]:
    """Warnings for `WARDEN_*` variables that are not settings but are close to one."""
    known = sorted({spec.env for spec in SETTINGS} | {spec.env + "_FILE" for spec in SETTINGS if spec.secret}
                   | {CONFIG_ENV})
    messages = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        close = sorted((_edit_distance(variable, name), name) for name in known if _looks_like(variable, name))
        if close:
            messages.append(f"{variable} is not a Warden setting; did you mean {close[0][1]}?")
    return messages


def _looks_like(typed: str, name: str) -> bool:
    """A slip of the keyboard away from `name`: a letter or two off, or a cut-short name."""
    a, b = typed[len(ENV_PREFIX):], name[len(ENV_PREFIX):]
    if len(a) >= 4 and (b.startswith(a + "_") or a.startswith(b + "_")):
        return True
    return _edit_distance(a, b) <= (1 if len(b) <= 6 else 2)


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(BY_NAME), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else f" (see `warden config list`)"


def _hide_password(url: str) -> str:
    """`scheme://user:***@host/db` for a URL with a password; anything else unchanged."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):[^@/]+@", rf"\1:{MASK}@", url)
