"""A client of `GET /v1/events` for tests: reads server-sent events into a list on a thread."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx


class EventReader:
    """Reads `GET /v1/events` (with `params` and `headers`) until `close()`; `events` is what
    arrived: dicts with the SSE `id`, `event` and the parsed `data`."""

    def __init__(self, base_url: str, token: str, *, params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self.arrived: dict[str, float] = {}  # event id → time.perf_counter() when it arrived
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=60),
                                    headers={"Authorization": f"Bearer {token}", **(headers or {})})
        self._params = params or {}
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.connected.wait(10):
            raise AssertionError("the event stream did not open")

    def _run(self) -> None:
        fields: dict[str, str] = {}
        try:
            with self._client.stream("GET", "/v1/events", params=self._params) as response:
                self.status = response.status_code
                self.connected.set()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if "data" in fields:
                            self.arrived[fields.get("id", "")] = time.perf_counter()
                            self.events.append({"id": fields.get("id"), "event": fields.get("event"),
                                                "data": json.loads(fields["data"])})
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
        except (httpx.HTTPError, RuntimeError):
            self.connected.set()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.events) >= count, f"{len(self.events)} events of {count}: {self.events}"
        return self.events

    def close(self) -> None:
        self._stop.set()
        self._client.close()
