"""Warden's settings: one table of name, type, default and help, read from `warden.toml` and the
`WARDEN_*` environment with pydantic-settings.

The table is the `Settings` model itself: each field's annotation is its type, its default the
default, its description the help line, its bounds the range it must be in. Loading, validation,
`warden config show` and `warden config list` are all derived from it (`SETTINGS`).

- Precedence: the environment (`WARDEN_<NAME>`) wins over the file, the file over the default.
  `Settings(...)` built in code takes exactly what it is given (and the defaults), never the
  environment.
- The file: `--config FILE`, else `$WARDEN_CONFIG`, else `./warden.toml` if there is one. Flat
  `name = value` pairs, typed as TOML types them (`port = "8080"` is an error, not 8080);
  relative paths are relative to the working directory. An unknown key is an error.
- Secrets come only from the environment: `WARDEN_<NAME>`, or `WARDEN_<NAME>_FILE` naming a file
  that holds the value (as container secrets are mounted). The one secret Warden reads is the
  password inside `database_url`: a URL with a password is refused in `warden.toml`, and
  `masked()` shows it as `***`.
- Bad input fails loudly at start-up: `ConfigError` says where (`warden.toml:3:8`, or the
  variable's name), which setting and what was expected. An unknown `WARDEN_*` variable that looks
  like a typo of a setting gives a `ConfigWarning` ("did you mean ...").

The table is `gateway.config.settings`; reading it from its sources is `gateway.config.loading`.
This package's names are the ones the rest of Warden uses.
"""

from gateway.config.loading import Loaded, likely_typos, load_settings, resolve
from gateway.config.settings import (
    BY_NAME,
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    MASK,
    SETTINGS,
    SHIPPED_POLICY_DIR,
    ConfigError,
    ConfigWarning,
    Settings,
    Spec,
)

__all__ = [
    "BY_NAME",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "MASK",
    "SETTINGS",
    "SHIPPED_POLICY_DIR",
    "ConfigError",
    "ConfigWarning",
    "Loaded",
    "Settings",
    "Spec",
    "likely_typos",
    "load_settings",
    "resolve",
]
