"""The settings table: every setting Warden has, with its type, default, range and help.

`Settings` is the table (a pydantic-settings model); `SETTINGS` describes each row for
`warden config list|show`; `ConfigError` explains a bad value at its source. How the values are
read (`warden.toml`, the environment, secret files) is `gateway.config.loading`.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    StringConstraints,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


def _setting(default: Any, help: str, *, secret: bool = False, ge: float | None = None,
             gt: float | None = None, le: float | None = None) -> Any:
    return Field(default, description=help, ge=ge, gt=gt, le=le,
                 json_schema_extra={"secret": True} if secret else None)


def _path(value: Any) -> Any:
    """Text becomes a `Path` (TOML and the environment have no path type); empty text is refused."""
    if value == "":
        raise ValueError("expected a path, got an empty string")
    return Path(value) if isinstance(value, str) else value


PathSetting = Annotated[Path, BeforeValidator(_path)]
#: An OPA server's address: http(s)://HOST[:PORT], nothing after it; empty for none.
OpaUrl = Annotated[str, StringConstraints(pattern=r"^(https?://[A-Za-z0-9.\[\]:_-]+/?)?$")]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseSettings):
    """Every setting Warden reads. Construct directly in tests; `load_settings()` otherwise."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, case_sensitive=True,
                                      env_prefix=ENV_PREFIX)

    database_url: str = _setting("sqlite:///warden-data/warden.db",
                                 "database: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (password: env only)",
                                 secret=True)
    data_dir: PathSetting = _setting(Path("warden-data"), "folder for Warden's own files (the sandbox call ledger, the demo tokens)")
    host: str = _setting("127.0.0.1", "address `warden serve` listens on")
    port: int = _setting(8080, "port `warden serve` listens on", ge=1, le=65535)
    workers: int = _setting(1, "gateway processes `warden serve` runs on its one listening socket (more than 1: "
                            "PostgreSQL only)", ge=1, le=64)
    policy_dir: PathSetting = _setting(SHIPPED_POLICY_DIR, "folder of *.policy files (default: the shipped policies)")
    policy_reload: bool = _setting(True, "watch policy_dir and activate changed policies that compile")
    policy_poll_seconds: float = _setting(1.0, "how often policy_dir is checked for changes", ge=0.05)
    signing_key_file: PathSetting = _setting(Path("warden-data/ledger.key"),
                                             "signing key for checkpoints (`warden keys generate`); its contents are never shown")
    log_origin: str = _setting("warden.local/audit", "the audit log's name: first line of its checkpoints, its key's name")
    checkpoint_every_entries: int = _setting(1000, "sign a checkpoint after this many new entries", ge=1)
    checkpoint_every_seconds: float = _setting(60.0, "sign a checkpoint at least this often when the log grew", ge=0.1)
    tamper_full_check_seconds: float = _setting(
        3600.0, "re-verify the whole audit log this often (new entries are verified every second)", ge=1)
    connectors_mode: Literal["sandbox", "live"] = _setting(
        "sandbox", "sandbox: connectors answer like the real APIs without the network; live: the real APIs "
        "(credentials from the environment; see `warden connectors check`)")
    connector_timeout_seconds: float = _setting(
        30.0, "the gateway's deadline for one live call; past it the outcome is unknown and reconciled", gt=0, le=600)
    stripe_api_key: str = _setting("", "Stripe secret or restricted key (sk_... or rk_...); env or _FILE only",
                                   secret=True)
    stripe_api_base: str = _setting("https://api.stripe.com", "Stripe's API address")
    stripe_account: str = _setting("", "a connected account (acct_...) every Stripe call acts on (Stripe Connect); "
                                   "empty: the platform's own; a packet's stripe_account param wins")
    stripe_max_network_retries: int = _setting(
        0, "retries inside the Stripe SDK (the outbox retries with the same idempotency key already)", ge=0, le=5)
    shopify_shop: str = _setting("", "the shop's domain, example.myshopify.com (live Shopify)")
    shopify_access_token: str = _setting("", "Shopify Admin API access token (shpat_...); env or _FILE only",
                                         secret=True)
    shopify_api_base: str = _setting("", "the shop's API address; empty: https://<shopify_shop>")
    shopify_location_id: str = _setting("", "the location stock is adjusted at; empty: the shop's first location")
    crm_access_token: str = _setting("", "the CRM's private-app token (HubSpot); env or _FILE only", secret=True)
    crm_api_base: str = _setting("https://api.hubapi.com", "the CRM's API address (HubSpot-compatible)")
    crm_requests_per_10s: int = _setting(
        100, "requests per 10 s to the CRM, per process (HubSpot allows 100 to 190 by plan)", ge=1, le=1000)
    opa_url: OpaUrl = _setting(
        "", "the OPA server `opa` policy statements ask (http://HOST:PORT); empty: every delegation denies")
    opa_timeout_seconds: float = _setting(
        0.5, "the time budget of one OPA query; past it the delegation denies", gt=0, le=30)
    opa_token: str = _setting("", "a bearer token for the OPA server; env or _FILE only", secret=True)
    sandbox_faults: str = _setting("", "faults the sandbox connectors inject (for drills), empty for none")
    sandbox_latency_ms: int = _setting(0, "latency the sandbox connectors add to every call", ge=0)
    approval_ttl_default_seconds: int = _setting(86400, "how long an approval stays open unless a rule says", ge=1)
    max_packet_bytes: int = _setting(65536, "largest packet body accepted", ge=256)
    long_poll_max_seconds: float = _setting(60.0, "longest `?wait=` on GET /v1/actions/{id}", ge=0)
    outbox_workers: int = _setting(2, "execution workers per process", ge=1)
    outbox_recover_on_start: bool = _setting(
        True, "at start, re-drive every execution left in flight (one process); false when several share a database")
    outbox_max_attempts: int = _setting(8, "attempts before an execution is recorded as failed", ge=1)
    outbox_backoff_base_seconds: float = _setting(0.5, "first retry delay (doubles per attempt, with jitter)", ge=0)
    outbox_backoff_max_seconds: float = _setting(60.0, "longest retry delay", ge=0)
    webhook_workers: int = _setting(1, "threads per process sending webhook deliveries", ge=1, le=32)
    webhook_timeout_seconds: float = _setting(10.0, "how long a webhook receiver may take to answer", gt=0, le=120)
    webhook_max_attempts: int = _setting(
        8, "failed attempts of one delivery before its endpoint is disabled and an incident opened", ge=1, le=100)
    webhook_backoff_base_seconds: float = _setting(1.0, "first webhook retry delay (doubles per failure)", ge=0)
    webhook_backoff_max_seconds: float = _setting(300.0, "longest webhook retry delay", ge=0)
    breaker_failures: int = _setting(5, "consecutive connector failures that open its circuit breaker", ge=1)
    breaker_cooldown_seconds: float = _setting(60.0, "how long an open breaker waits before a trial call", gt=0)
    repeated_denials_threshold: int = _setting(5, "denials of one agent within the window that open an incident", ge=1)
    repeated_denials_window_seconds: float = _setting(300.0, "the window for repeated denials", ge=1)
    console: bool = _setting(True, "serve the approvers' console at /console/")
    public_url: str = _setting("", "the address people open the console at (https://warden.example.com): the passkeys' "
                               "relying party; empty: taken from each request")
    console_session_idle_seconds: float = _setting(1800.0, "a console session ends after this long without a request", ge=60)
    console_session_max_seconds: float = _setting(43200.0, "a console session ends this long after sign-in, however busy", ge=60)
    invite_ttl_seconds: float = _setting(259200.0, "how long a `warden users invite` link stays valid", ge=60)
    login_max_failures: int = _setting(5, "failed sign-ins for one account within login_window_seconds before it waits", ge=1)
    login_max_failures_per_address: int = _setting(20, "failed sign-ins from one address within the window before it waits", ge=1)
    login_window_seconds: float = _setting(900.0, "the window (and the wait) for failed sign-ins", ge=1)
    mcp_http: bool = _setting(True, "serve the MCP front at /mcp beside the API (streamable HTTP, agent tokens)")
    mcp_wait_seconds: float = _setting(
        0.0, "how long an MCP tool call waits for an approver unless it says (`wait`); 0 answers at once", ge=0)
    mcp_wait_max_seconds: float = _setting(900.0, "the longest `wait` an MCP tool call may ask for", ge=0)
    passkeys_required_for_l3: bool = _setting(False, "approving an L3 action needs a passkey, whoever approves")
    log_level: LogLevel = _setting("info", "least severe log level written")
    log_json: bool = _setting(True, "log one JSON object per line (false: plain text)")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(explain(exc, values, str, text=False)) from None

    # Validation alone (`model_validate`, as `resolve` uses it per source) need not go through
    # `__init__`: it reads no sources, and its `strict` and `context` reach the validators.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Built in code, settings are what the code passes; `resolve` reads the file and the
        environment itself, to know where each value came from."""
        return (init_settings,)

    @model_validator(mode="after")
    def _backoff_in_order(self, info: ValidationInfo) -> Settings:
        context = info.context or {}
        if context.get("partial") or self.outbox_backoff_base_seconds <= self.outbox_backoff_max_seconds:
            return self
        message = "outbox_backoff_base_seconds must not exceed outbox_backoff_max_seconds"
        sources = context.get("sources")
        if sources:
            message += (f" ({self.outbox_backoff_base_seconds:g} from {sources['outbox_backoff_base_seconds']}, "
                        f"{self.outbox_backoff_max_seconds:g} from {sources['outbox_backoff_max_seconds']})")
        raise ValueError(message)

    def masked(self) -> dict[str, Any]:
        """Every setting's value as it may be shown: secrets as `***`, no database password."""
        return {spec.name: spec.masked(getattr(self, spec.name)) for spec in SETTINGS}


#: Validation of part of the table (one source's values): the checks across settings wait for all.
_PARTIAL = {"partial": True}


@dataclass(frozen=True)
class Spec:
    """One row of the settings table, derived from a `Settings` field."""

    name: str
    kind: type  # str, int, float, bool or Path
    choices: tuple[str, ...]
    default: Any
    help: str
    secret: bool

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def type_name(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        return "path" if self.kind is Path else self.kind.__name__

    def check(self, value: Any) -> str | None:
        """What is wrong with a value as the file would give it (type, choices, range), or None."""
        try:
            Settings.model_validate({self.name: value}, strict=True, context=_PARTIAL)
        except ValidationError as exc:
            return _problem(exc.errors()[0], self, text=False)
        return None

    def masked(self, value: Any) -> Any:
        if self.secret and self.name.endswith("_url"):  # a URL: only its password is secret
            return hide_password(str(value))
        if self.secret:  # a credential: all of it
            return MASK if value else ""
        return str(value) if isinstance(value, Path) else value


def _specs() -> tuple[Spec, ...]:
    specs = []
    for name, info in Settings.model_fields.items():
        hint = info.annotation
        choices = tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        specs.append(Spec(name, str if choices else typing.cast(type, hint), choices, info.default,
                          info.description or "", bool(extra.get("secret"))))
    return tuple(specs)


SETTINGS: tuple[Spec, ...] = _specs()
BY_NAME: Mapping[str, Spec] = {spec.name: spec for spec in SETTINGS}


# -- explaining a bad value ---------------------------------------------------------------------

_TEXT_EXPECTED = {int: "an integer", float: "a number", bool: "true or false (also 1/0, yes/no, on/off)"}
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


def _problem(error: ErrorDetails, spec: Spec, *, text: bool) -> str:
    """What is wrong, in the reader's terms. `text`: the value was text (the environment), so a
    wrong type means text that does not parse."""
    kind, given, ctx = error["type"], error["input"], error.get("ctx") or {}
    shown = ("<hidden>" if text else MASK) if spec.secret else repr(given)
    if kind == "value_error":
        return str(ctx["error"])
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        number = given.strip() if isinstance(given, str) else repr(given)
        return f"must be {words} {ctx[key]:g}, got {MASK if spec.secret else number}"
    if kind == "literal_error":
        return f"expected one of {', '.join(spec.choices)}, got {shown}"
    if kind == "finite_number":
        return f"expected a finite number, got {shown}"
    if kind == "string_pattern_mismatch" and spec.name == "opa_url":
        return f"expected http://HOST:PORT or https://HOST:PORT (nothing after the port), got {shown}"
    if text and isinstance(given, str) and spec.kind in _TEXT_EXPECTED:
        return f"expected {_TEXT_EXPECTED[spec.kind]}, got {shown}"
    if kind.endswith(("_type", "_parsing")) or kind in ("is_instance_of", "int_from_float"):
        return f"expected {spec.type_name}, got {type(given).__name__} {shown}"
    return error["msg"]


def explain(exc: ValidationError, values: Mapping[str, Any], where: Callable[[str], str], *, text: bool) -> str:
    """One line for the first problem (in the order the values were given): where (and which
    setting), then what was expected."""
    order = {name: position for position, name in enumerate(values)}
    error = min(exc.errors(), key=lambda e: order.get(str(e["loc"][0]), len(order)) if e["loc"] else len(order))
    if not error["loc"]:  # a check across settings
        return str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    name = str(error["loc"][0])
    spec = BY_NAME.get(name)
    if spec is None:
        return f"unknown setting {name!r}{did_you_mean(name)}"
    return f"{where(name)}: {_problem(error, spec, text=text)}"


def validated(values: Mapping[str, Any], where: Callable[[str], str], *, text: bool) -> dict[str, Any]:
    """The values, each checked against the table and typed (text from the environment parsed,
    anything from the file taken strictly as TOML typed it)."""
    try:
        checked = Settings.model_validate(values, strict=not text, context=_PARTIAL)
    except ValidationError as exc:
        raise ConfigError(explain(exc, values, where, text=text)) from None
    return {name: getattr(checked, name) for name in values}


def did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(BY_NAME), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else " (see `warden config list`)"


def hide_password(url: str) -> str:
    """The URL as it may be shown: a password, in the user part or as a `password` query
    parameter, becomes `***`; a URL without one is returned unchanged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # not a URL SQLAlchemy reads: hide whatever sits where a password would
        return re.sub(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):.*@", rf"\1:{MASK}@", url)
    if parsed.password is None and "password" not in parsed.query:
        return url
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": MASK})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", f"password={MASK}")