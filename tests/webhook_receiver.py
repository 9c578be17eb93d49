"""A webhook receiver on loopback for tests: verifies each delivery with `standardwebhooks`
and records it; can answer with a failing status, or be stopped and started again on its port."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from gateway_server import free_port


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.secret: str | None = None
        self.status = 200
        self.delay = 0.0
        self.received: list[dict[str, Any]] = []  # verified: {"id", "body", "headers", "raw", "at"}
        self.rejected = 0  # deliveries whose signature did not verify
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/warden"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    assert receiver.secret is not None, "the receiver has no secret yet"
                    body = Webhook(receiver.secret).verify(raw, headers)
                except (WebhookVerificationError, AssertionError):
                    with receiver._lock:
                        receiver.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                if receiver.status < 300:
                    with receiver._lock:
                        receiver.received.append({"id": headers["webhook-id"], "body": body, "headers": headers,
                                                  "raw": raw, "at": time.perf_counter(),
                                                  "wall": time.time()})
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self._lock:
            return [r["id"] for r in self.received]

    def unique(self) -> list[dict[str, Any]]:
        """The deliveries with duplicates (same webhook-id) dropped, first arrival kept."""
        seen: set[str] = set()
        out = []
        with self._lock:
            for delivery in self.received:
                if delivery["id"] not in seen:
                    seen.add(delivery["id"])
                    out.append(delivery)
        return out


def body_of(delivery: dict[str, Any]) -> dict[str, Any]:
    return json.loads(delivery["raw"])
