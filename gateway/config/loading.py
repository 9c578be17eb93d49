"""Reading the settings: `warden.toml`, the `WARDEN_*` environment and `WARDEN_<NAME>_FILE`
secrets, each checked on its own so that every error names its source (file:line:col, or the
variable), then combined with the environment winning over the file.
"""

from __future__ import annotations

import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource, TomlConfigSettingsSource

from gateway.config.settings import (
    BY_NAME,
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    SETTINGS,
    ConfigError,
    ConfigWarning,
    Settings,
    did_you_mean,
    explain,
    validated,
)




# -- the sources --------------------------------------------------------------------------------


class _ConfigFile(TomlConfigSettingsSource):
    """`warden.toml`, kept as text as well, so that every problem is shown at its line and column."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = ""
        self.keys: list[str] = []  # in the order the file gives them
        super().__init__(Settings, toml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            self.text = Path(file_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            document = tomllib.loads(self.text)
            self.keys = list(document)
            return document
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
            if at:
                raise ConfigError(f"{self.path}:{at[1]}:{at[2]}: invalid TOML: {message[: at.start()]}") from None
            lines = self.text.split("\n")  # "(at end of document)": point just past the last character
            message = message.replace(" (at end of document)", "")
            raise ConfigError(f"{self.path}:{len(lines)}:{len(lines[-1]) + 1}: invalid TOML: {message}") from None

    def values(self) -> dict[str, Any]:
        """Every pair in the file, typed; unknown keys and passwords refused, each at its place."""
        given = self()
        found = {key: given[key] for key in self.keys}
        for key, value in found.items():
            spec = BY_NAME.get(key)
            if spec is None:
                raise ConfigError(f"{self._key_at(key)}: unknown setting {key!r}{did_you_mean(key)}")
            if spec.secret and isinstance(value, str) and spec.masked(value) != value:
                what = "a password; put the URL" if key.endswith("_url") else "a credential; put it"
                raise ConfigError(f"{self._key_at(key)}: {key} holds {what} in {spec.env} "
                                  f"or {spec.env}_FILE instead")
        return validated(found, self._value_at, text=False)

    def source(self, key: str) -> str:
        line, _col = _locate(self.text, key)
        return f"{self.path}:{line}" if line else str(self.path)

    def _key_at(self, key: str) -> str:
        line, col = _locate(self.text, key)
        return f"{self.path}:{line}:{col}" if line else str(self.path)

    def _value_at(self, key: str) -> str:
        line, col = _locate(self.text, key)
        at = f"{self.path}:{line}:{_value_column(self.text, line, col)}" if line else str(self.path)
        return f"{at}: {key}"


class _Environment(EnvSettingsSource):
    """`WARDEN_<NAME>` variables, from a given mapping, by their exact (upper-case) names."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._variables = {spec.env.lower(): environ[spec.env] for spec in SETTINGS if spec.env in environ}
        super().__init__(Settings, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._variables


class _SecretFiles(PydanticBaseSettingsSource):
    """`WARDEN_<NAME>_FILE` for a secret setting: the value is the named file's contents (one
    trailing line break dropped)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(Settings)
        self.environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        spec = BY_NAME[field_name]
        variable = spec.env + "_FILE"
        path = self.environ.get(variable)
        if not spec.secret or not path:
            return None, field_name, False
        if spec.env in self.environ:
            raise ConfigError(f"{spec.env} and {variable} are both set; use one")
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n"), field_name, False
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{variable}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, info in self.settings_cls.model_fields.items():
            value, _key, _complex = self.get_field_value(info, name)
            if value is not None:
                found[name] = value
        return found


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
        document = _ConfigFile(config_file)
        for name, value in document.values().items():
            values[name], sources[name] = value, document.source(name)
    variables, secret_files = _Environment(environ)(), _SecretFiles(environ)()
    names = {**{name: BY_NAME[name].env for name in variables},
             **{name: BY_NAME[name].env + "_FILE" for name in secret_files}}
    for name, value in validated({**variables, **secret_files}, names.__getitem__, text=True).items():
        values[name], sources[name] = value, f"env {names[name]}"
    try:  # the values are checked one by one already; this checks them together
        settings = Settings.model_validate(values, context={"sources": sources})
    except ValidationError as exc:
        raise ConfigError(explain(exc, values, str, text=False)) from None
    return Loaded(settings, sources, config_file, tuple(likely_typos(environ)))


def _find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    if explicit is None and environ.get(CONFIG_ENV):
        explicit = Path(environ[CONFIG_ENV])
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file")
        return explicit
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


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
