"""Settings: one table; environment over file over default; secrets kept out of files and output;
errors that say where."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from dsl import builtin_policy_dir
from gateway import config
from gateway.config import SETTINGS, ConfigError, ConfigWarning, Settings, load_settings, resolve
from gateway.cli.keys import DEFAULT_KEY_PATH, DEFAULT_ORIGIN

SECRETS = [spec for spec in SETTINGS if spec.secret]


@pytest.fixture(autouse=True)
def _no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./warden.toml and no WARDEN_* variables but the ones a test passes."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("WARDEN_")]:
        monkeypatch.delenv(name)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "warden.toml"
    path.write_text(text)
    return path


def test_the_table_is_the_settings_class() -> None:
    assert [spec.name for spec in SETTINGS] == list(Settings.model_fields)
    for spec in SETTINGS:
        assert spec.help and "\n" not in spec.help, spec.name
        assert spec.env == "WARDEN_" + spec.name.upper()
        assert spec.check(spec.default) is None, spec.name


def test_defaults_agree_with_the_rest_of_warden() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///warden-data/warden.db"
    assert settings.policy_dir == builtin_policy_dir()
    assert settings.signing_key_file == Path(DEFAULT_KEY_PATH)
    assert settings.log_origin == DEFAULT_ORIGIN
    assert (settings.port, settings.policy_reload, settings.outbox_max_attempts) == (8080, True, 8)
    assert settings.tamper_full_check_seconds == 3600.0
    assert settings.workers == 1  # one gateway process unless asked: SQLite supports no more


@pytest.mark.parametrize(
    ("file_text", "env", "expected", "source"),
    [
        (None, {}, 8080, "default"),
        ("port = 9000\n", {}, 9000, "warden.toml:1"),
        ("host = '0.0.0.0'\nport = 9000\n", {"WARDEN_PORT": "9100"}, 9100, "env WARDEN_PORT"),
        (None, {"WARDEN_PORT": " 9200 "}, 9200, "env WARDEN_PORT"),
    ],
)
def test_environment_over_file_over_default(
    tmp_path: Path, file_text: str | None, env: dict[str, str], expected: int, source: str
) -> None:
    if file_text is not None:
        _toml(tmp_path, file_text)  # found as ./warden.toml
    loaded = resolve(env=env)
    assert loaded.settings.port == expected
    assert loaded.sources["port"].replace(str(tmp_path) + "/", "") == source.replace("warden.toml", "warden.toml")


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("policy_reload", "false", False), ("policy_reload", "YES", True), ("log_json", "0", False),
        ("policy_poll_seconds", "2.5", 2.5), ("outbox_workers", "+4", 4), ("data_dir", "/var/lib/warden", Path("/var/lib/warden")),
        ("tamper_full_check_seconds", "600", 600.0), ("sandbox_faults", "", ""), ("log_level", "debug", "debug"),
        ("workers", "4", 4),
    ],
)  # fmt: skip
def test_environment_values_are_parsed_by_type(name: str, text: str, value: object) -> None:
    assert getattr(load_settings(env={f"WARDEN_{name.upper()}": text}), name) == value


def test_the_config_file_is_chosen_explicitly_by_variable_or_by_default(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("port = 1001\n")
    (tmp_path / "b.toml").write_text("port = 1002\n")
    _toml(tmp_path, "port = 1003\n")
    assert load_settings(tmp_path / "a.toml", env={"WARDEN_CONFIG": str(tmp_path / "b.toml")}).port == 1001
    assert load_settings(env={"WARDEN_CONFIG": str(tmp_path / "b.toml")}).port == 1002
    assert load_settings(env={}).port == 1003
    with pytest.raises(ConfigError, match="missing.toml: no such config file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_the_secrets_are_the_database_password_and_the_connectors_credentials() -> None:
    assert [spec.name for spec in SECRETS] == ["database_url", "stripe_api_key", "shopify_access_token",
                                               "crm_access_token", "opa_token"]


@pytest.mark.parametrize("name", ["stripe_api_key", "shopify_access_token", "crm_access_token", "opa_token"])
def test_a_credential_is_refused_in_the_file_and_never_shown(tmp_path: Path, name: str) -> None:
    path = _toml(tmp_path, f'{name} = "sk_test_s3cr3tvalue"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    message = str(raised.value)
    assert message.startswith(f"{path}:1:1: {name} holds a credential; put it in WARDEN_{name.upper()} or "
                              f"WARDEN_{name.upper()}_FILE")
    assert "s3cr3t" not in message
    secret_file = tmp_path / "credential"
    secret_file.write_text("sk_test_fromafile\n")
    path.write_text("port = 9000\n")
    settings = load_settings(path, env={f"WARDEN_{name.upper()}_FILE": str(secret_file)})
    assert getattr(settings, name) == "sk_test_fromafile"
    assert settings.masked()[name] == "***"


@pytest.mark.parametrize("spec", SECRETS, ids=lambda s: s.name)
def test_secrets_are_refused_in_the_file(tmp_path: Path, spec: config.Spec) -> None:
    path = _toml(tmp_path, f'port = 9000\n  {spec.name} = "postgresql://warden:s3cr3t-value@db/warden"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    message = str(raised.value)
    what = "a password; put the URL" if spec.name.endswith("_url") else "a credential; put it"
    assert message.startswith(f"{path}:2:3: {spec.name} holds {what} in {spec.env} or {spec.env}_FILE")
    assert "s3cr3t-value" not in message


def test_secrets_come_from_the_environment_or_a_file_and_are_masked(tmp_path: Path) -> None:
    secret_file = tmp_path / "database.url"
    secret_file.write_text("postgresql+psycopg://warden:from-file@db/warden\n")
    _toml(tmp_path, 'database_url = "postgresql+psycopg://warden@file-host/warden"\n')
    loaded = resolve(env={"WARDEN_DATABASE_URL_FILE": str(secret_file)})
    assert loaded.settings.database_url == "postgresql+psycopg://warden:from-file@db/warden"
    assert loaded.sources["database_url"] == "env WARDEN_DATABASE_URL_FILE"
    shown = loaded.settings.masked()
    assert shown["database_url"] == "postgresql+psycopg://warden:***@db/warden"
    assert "from-file" not in repr(shown)
    with pytest.raises(ConfigError, match="WARDEN_DATABASE_URL and WARDEN_DATABASE_URL_FILE are both set"):
        load_settings(env={"WARDEN_DATABASE_URL": "sqlite:///a.db", "WARDEN_DATABASE_URL_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match="WARDEN_DATABASE_URL_FILE: cannot read .*nope"):
        load_settings(env={"WARDEN_DATABASE_URL_FILE": str(tmp_path / "nope")})
    with pytest.warns(ConfigWarning, match="^WARDEN_PORT_FILE is not a Warden setting"):
        assert load_settings(env={"WARDEN_PORT_FILE": str(secret_file)}).port == 8080  # only secrets come from files


def test_a_database_password_stays_out_of_the_file_and_the_output(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'database_url = "postgresql+psycopg://warden:hunter2@db/warden"\n')
    with pytest.raises(ConfigError, match=r"warden.toml:1:1: database_url holds a password; put the URL in WARDEN_DATABASE_URL") as raised:
        load_settings(path, env={})
    assert "hunter2" not in str(raised.value)
    path.unlink()
    settings = load_settings(env={"WARDEN_DATABASE_URL": "postgresql+psycopg://warden:hunter2@db/warden"})
    assert settings.masked()["database_url"] == "postgresql+psycopg://warden:***@db/warden"
    _toml(tmp_path, 'database_url = "postgresql+psycopg://warden@db/warden"\n')
    assert load_settings(path, env={}).database_url == "postgresql+psycopg://warden@db/warden"


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://warden@db/warden?password=hunter2",  # a password as a query parameter
    "postgresql+psycopg://warden:hun/ter2@db/warden",  # a password holding a slash
])
def test_every_spelling_of_a_database_password_is_refused_in_the_file_and_masked(tmp_path: Path, url: str) -> None:
    path = _toml(tmp_path, f'database_url = "{url}"\n')
    with pytest.raises(ConfigError, match="database_url holds a password") as raised:
        load_settings(path, env={})
    assert "hunter2" not in str(raised.value) and "hun/ter2" not in str(raised.value)
    path.unlink()
    shown = load_settings(env={"WARDEN_DATABASE_URL": url}).masked()["database_url"]
    assert "hunter2" not in shown and "ter2" not in shown and "***" in shown


def test_a_breaker_cooldown_of_zero_is_refused_where_it_is_set() -> None:
    with pytest.raises(ConfigError, match="WARDEN_BREAKER_COOLDOWN_SECONDS: .*more than 0"):
        load_settings(env={"WARDEN_BREAKER_COOLDOWN_SECONDS": "0"})


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("port = 8080\nhost = \n", "2:8", "invalid TOML: Invalid value"),
        ('port = 8080\nhost = "127.0.0.1\n', "2:18", "invalid TOML: Illegal character"),
        ("port = 8080\nport = 9090\n", "2:", "invalid TOML: Cannot overwrite a value"),
        ("log_json = [\n", "2:1", "invalid TOML: Invalid value"),
    ],
)
def test_bad_toml_says_line_and_column(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    assert str(raised.value).startswith(f"{path}:{where}")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('port = "8080"\n', ":1:8: port: expected int, got str '8080'"),
        ("host = 'x'\nport = 0\n", ":2:8: port: must be at least 1, got 0"),
        ("policy_reload = 1\n", ":1:17: policy_reload: expected bool, got int 1"),
        ("outbox_workers = true\n", ":1:18: outbox_workers: expected int, got bool True"),
        ("log_level = 'loud'\n", ":1:13: log_level: expected one of debug, info, warning, error, critical, got 'loud'"),
        ("policy_poll_seconds = nan\n", ":1:23: policy_poll_seconds: expected a finite number"),
        ("data_dir = ''\n", ":1:12: data_dir: expected a path, got an empty string"),
        ("prot = 9000\n", ":1:1: unknown setting 'prot'; did you mean 'port'?"),
        ("[server]\nport = 9000\n", ":1:2: unknown setting 'server'"),
        ("outbox_backoff_base_seconds = 90\n", "outbox_backoff_base_seconds must not exceed outbox_backoff_max_seconds"),
    ],
)
def test_bad_values_in_the_file_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WARDEN_PORT": "80a"}, "WARDEN_PORT: expected an integer, got '80a'"),
        ({"WARDEN_PORT": "70000"}, "WARDEN_PORT: must be at most 65535, got 70000"),
        ({"WARDEN_LOG_JSON": "maybe"}, "WARDEN_LOG_JSON: expected true or false"),
        ({"WARDEN_OUTBOX_BACKOFF_BASE_SECONDS": "fast"}, "WARDEN_OUTBOX_BACKOFF_BASE_SECONDS: expected a number"),
        ({"WARDEN_LOG_LEVEL": "loud"}, "WARDEN_LOG_LEVEL: expected one of debug, info, warning, error, critical"),
        ({"WARDEN_SANDBOX_LATENCY_MS": "-1"}, "WARDEN_SANDBOX_LATENCY_MS: must be at least 0"),
        ({"WARDEN_WORKERS": "0"}, "WARDEN_WORKERS: must be at least 1, got 0"),
        ({"WARDEN_WORKERS": "65"}, "WARDEN_WORKERS: must be at most 64, got 65"),
    ],
)
def test_bad_values_in_the_environment_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_settings(env=env)


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="port: must be at least 1"):
        Settings(port=0)
    with pytest.raises(ConfigError, match=r"database_url: expected str, got int \*\*\*"):
        Settings(database_url=12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [("WARDEN_PROT", "WARDEN_PORT"), ("WARDEN_OUTBOX_WORKER", "WARDEN_OUTBOX_WORKERS"),
     ("WARDEN_DATABASE", "WARDEN_DATABASE_URL"), ("WARDEN_DATABASE_URL_FIEL", "WARDEN_DATABASE_URL_FILE"),
     ("WARDEN_LOG_LEVLE", "WARDEN_LOG_LEVEL")],
)  # fmt: skip
def test_a_likely_typo_in_a_variable_name_warns(variable: str, suggestion: str) -> None:
    with pytest.warns(ConfigWarning, match=f"^{variable} is not a Warden setting; did you mean {suggestion}\\?$"):
        settings = load_settings(env={variable: "1"})
    assert settings == Settings()


def test_unrelated_and_known_variables_do_not_warn(tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("k")
    env = {"WARDEN_HOME_DIRECTORY": "/x", "WARDEN_PORT": "1", "WARDEN_DATABASE_URL_FILE": str(secret_file),
           "WARDEN_CONFIG": str(_toml(tmp_path, ""))}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings(env=env)


def _samples(spec: config.Spec) -> tuple[str, str, object, object]:
    """A value for the file (as TOML), another for the environment (as text), and what each
    becomes: the file's differs from the default, the environment's from the file's."""
    default = spec.default
    if spec.choices:
        first = next(choice for choice in spec.choices if choice != default)
        last = [choice for choice in spec.choices if choice != first][-1]
        return f"'{first}'", last, first, last
    if spec.kind is bool:
        return str(not default).lower(), "on" if default else "off", not default, default
    if spec.kind is int:
        return str(default + 1), str(default + 2), default + 1, default + 2
    if spec.kind is float:  # a TOML integer is a good float
        return str(int(default) + 1), str(default + 2.5), float(int(default) + 1), default + 2.5
    if spec.kind is Path:
        return "'from-file'", "from-env", Path("from-file"), Path("from-env")
    if spec.name == "opa_url":  # checked as a server's base URL
        return "'http://opa-file:8181'", "http://opa-env:8181", "http://opa-file:8181", "http://opa-env:8181"
    return "'from-file'", "from-env", "from-file", "from-env"


#: Settings that a file may hold: all but the credentials (their own test is above).
FILE_SETTINGS = [spec for spec in SETTINGS if not spec.secret or spec.name.endswith("_url")]


@pytest.mark.parametrize("spec", FILE_SETTINGS, ids=lambda s: s.name)
def test_every_setting_comes_from_the_default_the_file_or_the_environment(tmp_path: Path, spec: config.Spec) -> None:
    file_text, env_text, from_file, from_env = _samples(spec)
    loaded = resolve(env={})
    assert (getattr(loaded.settings, spec.name), loaded.sources[spec.name]) == (spec.default, "default")
    path = _toml(tmp_path, f"# Warden\n{spec.name} = {file_text}\n")
    loaded = resolve(path, env={})
    assert (getattr(loaded.settings, spec.name), loaded.sources[spec.name]) == (from_file, f"{path}:2")
    assert from_file != spec.default and from_env != from_file
    loaded = resolve(path, env={spec.env: env_text})
    assert (getattr(loaded.settings, spec.name), loaded.sources[spec.name]) == (from_env, f"env {spec.env}")
    assert type(getattr(loaded.settings, spec.name)) is type(spec.default)


def test_settings_built_in_code_read_neither_the_environment_nor_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_PORT", "9999")
    _toml(tmp_path, "port = 9000\n")
    assert Settings().port == 8080 and Settings(host="0.0.0.0").port == 8080
    assert load_settings().port == 9999  # what `warden serve` reads: both


def test_the_full_tamper_check_interval_is_a_setting(tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    path.write_text("tamper_full_check_seconds = 0.5\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:1:29: tamper_full_check_seconds: must be at least 1, got 0.5$"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match="^WARDEN_TAMPER_FULL_CHECK_SECONDS: expected a number, got 'hourly'$"):
        load_settings(env={"WARDEN_TAMPER_FULL_CHECK_SECONDS": "hourly"})
    assert load_settings(env={"WARDEN_TAMPER_FULL_CHECK_SECONDS": "900"}).tamper_full_check_seconds == 900.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("payments_engine = 'sandbox'\n", ":1:1: unknown setting 'payments_engine' (see `warden config list`)"),
        ("port = 1\n\nbank_pin = 'sk'\n", ":3:1: unknown setting 'bank_pin' (see `warden config list`)"),
        ("log_levels = 'debug'\n", ":1:1: unknown setting 'log_levels'; did you mean 'log_level'?"),
    ],
)
def test_an_unknown_key_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    assert str(raised.value) == f"{path}{message}"
    assert "sk'" not in str(raised.value)


def test_settings_that_contradict_each_other_say_where_each_came_from(tmp_path: Path) -> None:
    path = _toml(tmp_path, "outbox_backoff_base_seconds = 90\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={"WARDEN_OUTBOX_BACKOFF_MAX_SECONDS": "75"})
    assert str(raised.value) == ("outbox_backoff_base_seconds must not exceed outbox_backoff_max_seconds "
                                 f"(90 from {path}:1, 75 from env WARDEN_OUTBOX_BACKOFF_MAX_SECONDS)")


def test_the_first_bad_value_in_the_file_is_the_one_reported(tmp_path: Path) -> None:
    _toml(tmp_path, "log_json = 'yes'\nport = 'x'\n")
    with pytest.raises(ConfigError, match=r"warden.toml:1:12: log_json: expected bool, got str 'yes'$"):
        load_settings(env={})
