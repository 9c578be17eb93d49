"""Structured JSON logs, redaction of every kind of token, and uvicorn's loggers."""

from __future__ import annotations

import io
import json
import logging
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import logs
from gateway.logs import REDACTED, configure_logging, log_event, redact, redact_text


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    out = Captured()
    configure_logging("debug", stream=out.stream)
    yield out
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


log = logging.getLogger("warden.test")


def test_one_json_object_per_line_with_fields(captured: Captured) -> None:
    log_event(log, "decision", decision_id="dec_1", agent="refund-bot", tool="stripe.refund",
              status="executed", duration_ms=1.25, msg="a field named like the message")
    log.warning("plain %s", "message", extra={"status": "denied"})
    first, second = captured.lines()
    assert first["msg"] == "decision"
    assert first["level"] == "info"
    assert first["logger"] == "warden.test"
    assert first["decision_id"] == "dec_1"
    assert first["agent"] == "refund-bot"
    assert first["tool"] == "stripe.refund"
    assert first["status"] == "executed"
    assert first["duration_ms"] == 1.25
    assert first["msg_"] == "a field named like the message"
    assert first["ts"].endswith("Z")
    stamp = datetime.fromisoformat(first["ts"])
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert second == {**second, "msg": "plain message", "level": "warning", "status": "denied"}


def test_levels_filter_and_exceptions_are_included(captured: Captured) -> None:
    configure_logging("warning", stream=captured.stream)
    log_event(log, "not shown")
    try:
        raise ValueError("bad wdn_agent_secretvalue123")
    except ValueError:
        log.exception("failed")
    (line,) = captured.lines()
    assert line["level"] == "error"
    assert "ValueError" in line["exc"]
    assert "secretvalue123" not in captured.text()


def test_configure_twice_keeps_one_handler(captured: Captured) -> None:
    configure_logging("info", stream=captured.stream)
    log_event(log, "once")
    assert len(captured.lines()) == 1


def test_tokens_headers_and_secret_fields_are_masked(captured: Captured) -> None:
    log.info("agent token %s used", "wdn_agent_AbCdEf0123456789")
    log_event(log, "request", headers={"Authorization": "Bearer abc.def-ghi", "Host": "warden"},
              token="opaque-value", note="Authorization: Basic dXNlcjpwYXNz",
              nested=[{"user": "wdn_user_zzzzzzzz"}], raw=b"Bearer qwerty")
    first, second = captured.lines()
    assert first["msg"] == f"agent token wdn_agent_{REDACTED} used"
    assert second["headers"] == {"Authorization": REDACTED, "Host": "warden"}
    assert second["token"] == REDACTED
    assert second["note"] == f"Authorization: {REDACTED}"
    assert second["nested"] == [{"user": f"wdn_user_{REDACTED}"}]
    assert second["raw"] == f"Bearer {REDACTED}"
    for secret in ("AbCdEf0123456789", "abc.def-ghi", "opaque-value", "dXNlcjpwYXNz", "zzzzzzzz", "qwerty"):
        assert secret not in captured.text()


def test_redaction_is_idempotent() -> None:
    once = redact_text("x wdn_agent_abc Bearer tok Authorization: Basic abc")
    assert redact_text(once) == once
    assert redact({"authorization": None, "n": 3, "ok": True}) == {"authorization": None, "n": 3, "ok": True}


TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"
tokens = st.builds(
    lambda kind, body: f"wdn_{kind}_{body}",
    st.sampled_from(["agent", "user"]),
    st.text(TOKEN_ALPHABET, min_size=1, max_size=40),
)
bearers = st.builds(lambda body: f"Bearer {body}", st.text(TOKEN_ALPHABET + ".~+/=", min_size=1, max_size=40))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.text(max_size=30), token=tokens | bearers, suffix=st.text(max_size=30),
       how=st.sampled_from(["msg", "arg", "field", "nested", "extra", "exception"]))
def test_no_generated_token_ever_reaches_a_line(
    captured: Captured, prefix: str, token: str, suffix: str, how: str
) -> None:
    captured.clear()
    text = prefix + token + suffix
    if how == "msg":
        log.info(text)
    elif how == "arg":
        log.info("value: %s", text)
    elif how == "field":
        log_event(log, "event", detail=text)
    elif how == "nested":
        log_event(log, "event", detail={"list": [text], text: 1})
    elif how == "extra":
        log.info("event", extra={"detail": text})
    else:
        try:
            raise RuntimeError(text)
        except RuntimeError:
            log.exception("failed")
    output = captured.text()
    assert token not in output
    assert len(captured.lines()) == 1  # and the line is still one valid JSON object


def test_text_mode_is_redacted_too(captured: Captured) -> None:
    configure_logging("info", json=False, stream=captured.stream)
    log_event(log, "decision", agent="refund-bot", tok="wdn_agent_abcdef")
    line = captured.text().strip()
    assert "warden.test: decision" in line and 'agent="refund-bot"' in line
    assert "abcdef" not in line


def test_uvicorn_error_log_goes_through_our_handler_and_access_log_is_off(captured: Captured) -> None:
    logging.getLogger("uvicorn.error").error("Exception in ASGI application wdn_user_leaked")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /v1/tools?t=wdn_agent_x HTTP/1.1" 200')
    (line,) = captured.lines()
    assert line["logger"] == "uvicorn.error"
    assert "leaked" not in captured.text()


# ---- the shortcuts skip only text the patterns would leave as it is --------------------------


def full_redact_text(text: str) -> str:
    """redact_text without its shortcuts: the three patterns, always."""
    text = logs._TOKEN.sub(r"\1" + REDACTED, text)
    text = logs._BEARER.sub(r"\1" + REDACTED, text)
    return logs._HEADER.sub(r"\1\2" + REDACTED, text)


def full_scrub_line(line: str) -> str:
    return logs._BEARER.sub(r"\1" + REDACTED, logs._TOKEN.sub(r"\1" + REDACTED, line))


#: Pieces of the markers in every case, the characters that fold into ASCII letters under a
#: case-insensitive match (Kelvin sign, long s, dotted and dotless i), separators and values.
PIECES = ["wdn_", "WDN_", "Wdn_", "agent_", "AGENT_", "user_", "uſer_", "bearer", "BeArEr", "bearer\u00a0",
          "authorization", "AUTHORİZATİON", "authorızation", "proxy-", "cookie", "COO\u212aIE",
          "set-", "x-api-key", "X-API-\u212aEY", ":", "=", " ", "\t", "\n", "\"", "'", ",", ";", "}",
          "abc123", "tok.en-_/+=~", "é", "日本", "[REDACTED]", "x"]  # fmt: skip
marker_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=12).map("".join)
#: A marker, then what the patterns need after it: a separator and a value.
MARKERS = ["wdn_agent_", "wdn_user_", "wdn_uſer_", "Bearer", "authorization", "Proxy-Authorization",
           "cookie", "Set-Cookie", "x-api-key", "X-API-\u212aEY", "COOKİE"]  # fmt: skip
secrets_in_place = st.builds(
    lambda before, marker, separator, value, after: before + marker + separator + value + after,
    st.text(max_size=4), st.sampled_from(MARKERS), st.sampled_from(["", " ", "\t", ":", "=", ": ", "\" : \"", "\u00a0"]),
    st.text("abcXYZ019._-~+/=", max_size=6), st.text(max_size=4),
)


@settings(max_examples=3000, deadline=None)
@given(text=secrets_in_place | marker_text | st.text(max_size=40))
def test_redact_text_masks_exactly_what_the_patterns_mask(text: str) -> None:
    assert redact_text(text) == full_redact_text(text)
    assert logs._scrub_line(text) == full_scrub_line(text)


@pytest.mark.parametrize("text", [
    "Bearer x", "bearer\tx", "cookie=x", "COOKİE: s3cr3t", "x-api-\u212aey: k", "wdn_uſer_abc",
    "Authorization: Basic dXNlcjpwYXNz", "wdn_agent_a", "bearer", "cookie=", "short",
])  # fmt: skip
def test_short_and_folded_texts_are_masked_as_the_patterns_mask_them(text: str) -> None:
    assert redact_text(text) == full_redact_text(text)


def test_values_pass_by_type_but_secret_keys_still_mask_them() -> None:
    from enum import StrEnum

    class Kind(StrEnum):
        TOKEN = "wdn_agent_FromAnEnum"

    assert redact(3, "code") == 3 and redact(1.5, "ms") == 1.5 and redact(True, "ok") is True
    assert redact(None, "token") is None
    assert redact(42, "api_key") == REDACTED and redact(False, "password") == REDACTED
    assert redact(Kind.TOKEN) == f"wdn_agent_{REDACTED}"
    assert redact({"nested": {"Set-Cookie": 1, "n": 2}}) == {"nested": {"Set-Cookie": REDACTED, "n": 2}}


@settings(max_examples=2000, deadline=None)
@given(created=st.floats(min_value=-2e9, max_value=4e9) | st.integers(1_600_000_000, 1_900_000_000).map(
    lambda s: s + 0.9995) | st.integers(1_600_000_000, 1_900_000_000).map(lambda s: s + 0.9999995))
def test_timestamps_are_the_datetime_rendering(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert logs._timestamp(created) == expected
