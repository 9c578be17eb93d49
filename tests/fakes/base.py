"""The base of the fake providers: a real HTTP/1.1 server on loopback (stdlib, one thread per
connection), a log of every request, and faults a test arms before a call.

    fake = FakeStripe().start()            # fake.base_url: http://127.0.0.1:PORT
    fake.fail("POST /v1/refunds", status=500)             # the next matching request: a 500
    fake.fail("POST /v1/refunds", kind="drop_after")      # act, then close without answering
    fake.fail("POST /v1/refunds", kind="hang_after", seconds=5)   # act, answer 5 s later
    fake.fail("POST /v1/refunds", kind="hang_before", seconds=5)  # wait 5 s, then act
    ...
    fake.stop()

A subclass implements `handle(request) -> Reply` (raising `Reply` for an error answer is fine
too) and keeps its own objects; `effects` is the list of effects it applied, in order, each
with the idempotency key (or decision id) it carried, so a test can assert "exactly one".
"""

from __future__ import annotations

import fnmatch
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)


@dataclass
class Reply(Exception):
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    pattern: str  # "POST /v1/refunds", globs allowed: "POST /v1/*"
    kind: str  # status | drop_before | drop_after | hang_before | hang_after
    times: int | None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Seen:
    """A request as the fake received it, and what it did with it."""

    route: str
    headers: dict[str, str]
    status: int | None  # None: no answer was sent
    fault: str | None
    at: float


class FakeProvider:
    """Subclass and implement `handle`."""

    name = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.seen: list[Seen] = []
        self.effects: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the provider --------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def effect(self, kind: str, key: str | None, **details: Any) -> None:
        """Record an effect on the provider's objects (call with the lock held)."""
        self.effects.append({"kind": kind, "key": key, **details})

    def effects_by_key(self, kind: str | None = None) -> dict[str | None, int]:
        with self.lock:
            counts: dict[str | None, int] = {}
            for effect in self.effects:
                if kind is None or effect["kind"] == kind:
                    counts[effect["key"]] = counts.get(effect["key"], 0) + 1
            return counts

    # -- faults --------------------------------------------------------------------------------

    def fail(self, pattern: str, *, kind: str = "status", times: int | None = 1, status: int = 500,
             body: Any = None, headers: dict[str, str] | None = None, seconds: float = 0.0) -> None:
        with self.lock:
            self._faults.append(Fault(pattern, kind, times, status, body, dict(headers or {}), seconds))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _take_fault(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.times != 0 and fnmatch.fnmatchcase(route, fault.pattern):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- serving -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: without TCP_NODELAY the body would wait for
            # the client's delayed ACK (40 ms an answer)
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _serve(self) -> None:
                provider._dispatch(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(handler.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                          {k.lower(): v for k, v in handler.headers.items()}, body)
        fault = self._take_fault(request.route)
        kind = fault.kind if fault else None

        def seen(status: int | None) -> None:
            """Logged before the answer leaves, so whoever reads the answer finds its request."""
            with self.lock:
                self.seen.append(Seen(request.route, request.headers, status, kind, time.time()))

        if kind == "hang_before":
            time.sleep(fault.seconds if fault else 0.0)
        if kind == "drop_before":
            seen(None)
            _drop(handler)
            return
        if fault is not None and kind == "status":
            reply = Reply(fault.status, fault.body, fault.headers)
        else:
            try:
                reply = self.handle(request)
            except Reply as raised:
                reply = raised
            except BaseException:
                seen(None)
                raise
        if kind == "drop_after":
            seen(None)
            _drop(handler)
            return
        if kind == "hang_after":
            time.sleep(fault.seconds if fault else 0.0)
        seen(reply.status)
        _send(handler, reply)

    def requests(self, pattern: str = "*") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if fnmatch.fnmatchcase(s.route, pattern)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits instead of being reset


def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    payload = b"" if reply.body is None else (
        reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
    handler.send_response(reply.status)
    headers = {"Content-Type": "application/json", **reply.headers}
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without a byte of answer (the client sees it dropped)."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        return
