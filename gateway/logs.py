"""Structured logs: one JSON object per line on the stdlib `logging`, with secrets masked.

    configure_logging("info")                      # once, at start-up (`warden serve`)
    log = logging.getLogger("warden.gateway")
    log_event(log, "decision", decision_id=d.decision_id, agent="refund-bot", status="executed")
    # {"ts":"2025-01-01T12:00:00.123Z","level":"info","logger":"warden.gateway","msg":"decision",
    #  "decision_id":"dec_...","agent":"refund-bot","status":"executed","request_id":"..."}

Redaction: no bearer token may ever reach a log line. `redact_text` masks Warden tokens
(`wdn_agent_…`, `wdn_user_…`), `Bearer …` credentials and the value of `Authorization` / `Cookie`
/ `X-API-Key` headers written out in text; `redact` walks field values, and masks whole values
whose key names a secret (`authorization`, `token`, `password`, `secret`, ...). The JSON formatter
redacts the message, every field and the traceback; `RedactingFilter` does the same on the record
for any other handler.

Cheap on the request path, masking exactly the same: every match of a redaction pattern holds a
marker (`wdn_`, `bearer`, `authorization`, `cookie` or `x-api-key`, in any case) and is at least
8 characters long, so shorter text, and text without a marker, is returned as it is; the others
go through the patterns. For ASCII text the markers are looked for in its lower-case copy with
`in` (for ASCII, the patterns' case-insensitive letters are exactly that); other text is searched
with a case-insensitive pattern of the markers, whose letters fold as the patterns' do. Ints,
floats, booleans and None pass with one type check; whether a key names a secret is remembered
per key; the timestamp's seconds are formatted once per second; the JSON encoder is built once.

HTTP requests are logged by the HTTP layer (`gateway.http.requestlog`: one `http_request` line per
request, which sets `request_id_var` for every line logged while serving it). What a lower layer
knows about the request joins that line rather than writing its own: `join_request_line(**fields)`
adds fields to the line of the request being served (a decision's id, tool, status, ...), and
says False outside a request, where the caller logs a line of its own. uvicorn's own
access log is switched off in its favour: it prints the raw request line, query string included.
Run uvicorn with `uvicorn.run(app, log_config=None, access_log=False)` so it keeps its hands off
logging and its `uvicorn` / `uvicorn.error` records propagate to the handler installed here.
httpx (the connectors' client) logs every request's full URL at info level; it is held at warning.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
from contextvars import ContextVar
from functools import lru_cache
from typing import IO, Any

REDACTED = "[REDACTED]"
_TOKEN = re.compile(r"(?i)(wdn_(?:agent|user)_)[A-Za-z0-9_\-]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+")
_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|(?:set-)?cookie|x-api-key)(\s*[\"']?\s*[:=]\s*[\"']?)(?!\s*\[REDACTED\])[^\"'\r\n,;}]+"
)
_SECRET_KEY = re.compile(r"(?i)authorization|cookie|password|passwd|secret|token|api[-_]?key|credential")
#: Every match of _TOKEN, _BEARER or _HEADER holds one of these (same letters, same case folding)
#: and is at least _SHORTEST characters long; text without them is left as it is by all three.
_MARKERS = re.compile(r"(?i)wdn_|bearer|authorization|cookie|x-api-key")
_LINE_MARKERS = re.compile(r"(?i)wdn_|bearer")  # the same for _TOKEN and _BEARER (`_scrub_line`)
_SHORTEST = 8  # "bearer x", "cookie=x"; a token is longer

#: The request being served (set by the HTTP request log); every log line carries it.
request_id_var: ContextVar[str | None] = ContextVar("warden_request_id", default=None)
#: The `http_request` line of the request being served, while it is open (see `RequestLine`).
request_line_var: ContextVar[RequestLine | None] = ContextVar("warden_request_line", default=None)
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "fields"}
_HANDLER_FLAG = "_warden_handler"
_FULL_URL_LOGGERS = ("httpx", "httpcore")
_LINE_BREAKS = {c: f"\\u{c:04x}" for c in (0x85, 0x2028, 0x2029)}  # JSON keeps these raw
_CORE = frozenset({"ts", "level", "logger", "msg", "exc"})
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps(line, ensure_ascii=False, default=str)
_KEY_REPLACEMENT = r"\1" + REDACTED
_HEADER_REPLACEMENT = r"\1\2" + REDACTED


def redact_text(text: str) -> str:
    """`text` with tokens, bearer credentials and authorization header values masked."""
    if len(text) < _SHORTEST:
        return text
    if text.isascii():
        low = text.lower()
        if ("wdn_" not in low and "bearer" not in low and "authorization" not in low
                and "cookie" not in low and "x-api-key" not in low):
            return text
    elif _MARKERS.search(text) is None:
        return text
    text = _TOKEN.sub(_KEY_REPLACEMENT, text)
    text = _BEARER.sub(_KEY_REPLACEMENT, text)
    return _HEADER.sub(_HEADER_REPLACEMENT, text)


def _scrub_line(line: str) -> str:
    """Last pass over a formatted line: tokens and bearer credentials only (safe inside JSON)."""
    if line.isascii():
        low = line.lower()
        if "wdn_" not in low and "bearer" not in low:
            return line
    elif _LINE_MARKERS.search(line) is None:
        return line
    return _BEARER.sub(_KEY_REPLACEMENT, _TOKEN.sub(_KEY_REPLACEMENT, line))


@lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def redact(value: Any, key: str = "") -> Any:
    """A JSON-ready copy of `value` with secrets masked (values under secret-named keys entirely)."""
    if key and value is not None and _secret_key(key):
        return REDACTED
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if value is None or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact_text(str(k)): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    return redact_text(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Attributes passed with `extra=` (everything a plain LogRecord does not have)."""
    attributes = record.__dict__
    names = attributes.keys() - _RESERVED
    if not names:
        return {}
    return {k: v for k, v in attributes.items() if k in names and not k.startswith("_")}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields of a record: any passed with `extra=`, and `log_event`'s."""
    fields = _extras(record)
    fields.update(getattr(record, "fields", None) or {})
    return fields


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and fields before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = redact_text(record.getMessage())
            record.args = None
        except Exception:  # a bad format string: the formatter reports it (and redacts)
            return True
        for name, value in _extras(record).items():
            record.__dict__[name] = redact(value, name)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.__dict__["fields"] = {k: redact(v, k) for k, v in fields.items()}
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, logger, msg, the fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in record_fields(record).items():
            line[f"{name}_" if name in _CORE else name] = redact(value, name)
        if record.exc_info:
            line["exc"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact_text(record.exc_text)
        text = _ENCODER.encode(line)
        if not text.isascii():
            text = text.translate(_LINE_BREAKS)  # one line, whoever splits it
        return _scrub_line(text)


class TextFormatter(logging.Formatter):
    """`ts level logger msg key=value ...` for a terminal; redacted like the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        request_id = request_id_var.get()
        if request_id is not None:
            fields.setdefault("request_id", request_id)
        extra = " ".join(f"{k}={json.dumps(redact(v, k), ensure_ascii=False, default=str)}" for k, v in fields.items())
        text = f"{_timestamp(record.created)} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        if extra:
            text += " " + extra
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact_text(text)


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC to the millisecond, as `datetime.fromtimestamp(created, UTC)` would give
    it; the part up to the seconds is formatted once per second."""
    seconds = math.floor(created)
    micros = round((created - seconds) * 1e6)  # rounded as datetime does, half to even
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    cached = _second
    if cached[0] != seconds:
        cached = _second_prefix(seconds)
    return f"{cached[1]}.{micros // 1000:03d}Z"


def _second_prefix(seconds: int) -> tuple[int, str]:
    global _second
    _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return _second


_second: tuple[int, str] = (-1, "")


def configure_logging(level: str | int = "info", json: bool = True, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record (ours and uvicorn's) to `stream` (default stderr) as JSON lines,
    or as text with `json=False`, through the redacting filter. Calling it again replaces the
    handler it installed before; other handlers on the root logger are left alone."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_FLAG, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")  # replaced by gateway.http.requestlog
    access.handlers = []
    access.propagate = False
    for chatty in _FULL_URL_LOGGERS:  # they log whole URLs, query strings and all, at info
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return handler


class RequestLine:
    """The fields lower layers add to one request's `http_request` line, until it is written.

    The HTTP request log opens one per request (`request_line_var`) and `close()`s it when it
    writes the line. The context variable holds this object itself, so it reaches the threads a
    request's work runs on (`run_in_threadpool` copies the context, not the object), and what
    they `join` there is written with the line. A join after the close (the client went away and
    the line was written while the work went on) is refused, and the caller logs its own line.
    """

    __slots__ = ("fields", "_open", "_lock")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self._open = True
        self._lock = threading.Lock()

    def join(self, fields: dict[str, Any]) -> bool:
        with self._lock:
            if self._open:
                self.fields.update(fields)
            return self._open

    def close(self) -> dict[str, Any]:
        with self._lock:
            self._open = False
            return self.fields


def join_request_line(**fields: Any) -> bool:
    """Add `fields` to the `http_request` line of the request being served: True if they will be
    written on it, False outside an HTTP request (or after its line was written), where the
    caller writes them on a line of its own. Redacted with the line, like any field."""
    line = request_line_var.get()
    return line is not None and line.join(fields)


def log_event(logger: logging.Logger, msg: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `msg` with structured fields (any names, even ones `LogRecord` reserves)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields}, stacklevel=2)
