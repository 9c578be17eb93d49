"""What the two clients share: the requests of Warden's API and the reading of its answers.

`WardenClient` (sync) and `AsyncWardenClient` differ only in how they send; each request here is
a `Call` (method, path, params, body, how long it may take), and each answer becomes a model or a
`ProblemError`. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from warden_sdk.errors import ConnectionFailed, ProblemError, problem_error
from warden_sdk.models import Decision
from warden_sdk.packets import Packet
from warden_sdk.retries import RETRIED_STATUSES, Retries

__all__ = ["LONG_POLL_CHUNK", "Call", "Deadline", "Settings", "read_decision", "read_json", "read_text"]

#: The longest single `?wait=` the clients ask for (the gateway caps it at its own limit too).
LONG_POLL_CHUNK = 30.0
USER_AGENT = "warden-sdk-python/0.1.0"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: Mapping[str, str | int | float] = field(default_factory=dict)
    body: bytes | None = None
    extra_time: float = 0.0  # a long-poll holds the answer this much longer

    @classmethod
    def submit(cls, packet: Packet) -> Call:
        return cls("POST", "/v1/actions", body=packet.body)

    @classmethod
    def evaluate(cls, packet: Packet) -> Call:
        return cls("POST", "/v1/actions/evaluate", body=packet.body)

    @classmethod
    def decision(cls, decision_id: str, wait: float = 0.0) -> Call:
        params: dict[str, str | int | float] = {"wait": round(wait, 3)} if wait > 0 else {}
        return cls("GET", f"/v1/actions/{decision_id}", params, extra_time=wait)


@dataclass(frozen=True)
class Settings:
    """A client's fixed settings: where, who, how long, how often."""

    base_url: str
    token: str
    agent: str
    timeout: float
    retries: Retries

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT,
                "Accept": "application/json, application/problem+json"}

    def request(self, client: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        headers = {"Content-Type": "application/json"} if call.body is not None else {}
        timeout = httpx.Timeout(self.timeout + call.extra_time, connect=self.timeout)
        return client.build_request(call.method, call.path, params=dict(call.params), content=call.body,
                                    headers=headers, timeout=timeout)

    def should_retry(self, response: httpx.Response, attempt: int) -> bool:
        return response.status_code in RETRIED_STATUSES and attempt < self.retries.attempts

    def gave_up(self, call: Call, exc: Exception) -> ConnectionFailed:
        return ConnectionFailed(f"{call.method} {call.path}: no answer from {self.base_url} after "
                                f"{self.retries.attempts} attempt(s): {type(exc).__name__}: {exc}")


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text[:500] or response.reason_phrase}
    raise problem_error(response.status_code, body)


def read_json(response: httpx.Response) -> Any:
    raise_for_problem(response)
    try:
        return response.json()
    except ValueError as exc:
        raise ProblemError(response.status_code, {"code": "not_json", "detail": f"the answer is not JSON: {exc}"}) from None


def read_text(response: httpx.Response) -> str:
    raise_for_problem(response)
    return response.text


def read_decision(response: httpx.Response) -> Decision:
    return Decision.model_validate(read_json(response))


class Deadline:
    """How long a `wait` has left; None: no limit."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def chunk(self) -> float:
        """The next long-poll's `wait`: at most `LONG_POLL_CHUNK`, at most what is left."""
        if self.end is None:
            return LONG_POLL_CHUNK
        return max(0.0, min(LONG_POLL_CHUNK, self.end - time.monotonic()))

    def passed(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

