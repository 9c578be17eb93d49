"""Asking OPA: the `opa` statements' queries over OPA's REST data API, each within a time budget.

    delegate = OpaDelegate("http://127.0.0.1:8181", timeout=0.5, on_answer=metrics.observe_opa)
    answers = delegate.ask(engine.delegations_for(tool), packet, agent)      # {path: Delegated}
    answers = await delegate.ask_async(...)                                   # on the event loop
    decision = engine.decide(packet, agent, delegated=answers)

Each query is `POST /v1/data/{path}` with `{"input": opa_input(...)}` (the tool and only the
fields the statement reads), sent with `opa-python-client`'s `OpaClient.query_rule`, one client
per thread of a small pool, without retries. Its `timeout` bounds each socket operation, not
the whole call, so the budget is enforced around the call: the caller waits at most
`timeout` for every query of a packet together, and a query still running after that is left to
its thread (which its own socket timeouts end) and counts as `timeout`.

Fail closed: no URL, a refused connection, a timeout, an error status (OPA's `{"code",
"message"}`), a body that is not a JSON object, a `result` the audit log cannot keep as it came
(beyond I-JSON, or over 16 KiB), or no `result` (an undefined rule) each give a
`Delegated` failure that the engine reads as a denial. `on_answer(outcome, seconds)` hears every
query: `allow`, `deny`, `wrong_shape` or the failure's kind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient

from dsl.model import Delegation
from gateway.engine.agents import Agent
from gateway.engine.delegation import Delegated, opa_input, read_answer
from gateway.engine.models import Packet

#: What `on_answer` hears for an answer read, by its verdict.
OUTCOMES = {"PASS": "allow", "FAIL": "deny", "ERROR": "wrong_shape"}
MAX_DETAIL = 300

OnAnswer = Callable[[str, float], None]


class OpaDelegate:
    """The OPA server of the settings (`opa_url`; empty: none, and every delegation denies)."""

    def __init__(self, url: str = "", *, timeout: float = 0.5, token: str = "",
                 on_answer: OnAnswer | None = None, threads: int = 8) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.on_answer = on_answer
        self._token = token
        self._threads = threads
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        if self.url:
            self._address = _address(self.url)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    # ------------------------------------------------------------ asking

    def ask(self, delegations: Iterable[Delegation], packet: Packet, agent: Agent) -> dict[str, Delegated]:
        """OPA's answer for each delegation, by path, within the budget (blocks this thread)."""
        started, futures = self._submit(delegations, packet, agent)
        deadline = started + self.timeout
        return self._collect(futures, started, lambda f: f.result(max(0.0, deadline - time.monotonic())))

    async def ask_async(self, delegations: Iterable[Delegation], packet: Packet,
                        agent: Agent) -> dict[str, Delegated]:
        """`ask` without blocking the event loop: the queries run on the pool's threads."""
        started, futures = self._submit(delegations, packet, agent)
        if futures:
            await asyncio.wait([asyncio.wrap_future(f) for f in futures.values()], timeout=self.timeout)
        return self._collect(futures, started, lambda f: f.result(0))

    def _submit(self, delegations: Iterable[Delegation], packet: Packet,
                agent: Agent) -> tuple[float, dict[str, Future[Delegated]]]:
        started = time.monotonic()
        futures: dict[str, Future[Delegated]] = {}
        for delegation in delegations:
            if delegation.path in futures:
                continue
            future: Future[Delegated] = Future()
            if not self.url:
                future.set_result(Delegated.failed("not_configured"))
            else:
                future = self._executor().submit(self._query, delegation.path,
                                                 opa_input(delegation, packet, agent))
            futures[delegation.path] = future
        return started, futures

    def _collect(self, futures: Mapping[str, Future[Delegated]], started: float,
                 wait: Callable[[Future[Delegated]], Delegated]) -> dict[str, Delegated]:
        answers: dict[str, Delegated] = {}
        for path, future in futures.items():
            try:
                answers[path] = wait(future)
            except FutureTimeout:
                future.cancel()
                answers[path] = Delegated.failed("timeout", f"no answer within {self.timeout:g} s")
            self._heard(answers[path], time.monotonic() - started)
        return answers

    def _heard(self, answer: Delegated, seconds: float) -> None:
        if self.on_answer is None:
            return
        outcome = answer.failure if answer.failure is not None else OUTCOMES[read_answer(answer).verdict]
        self.on_answer(outcome, seconds)

    def _query(self, path: str, document: dict[str, Any]) -> Delegated:
        """One query on a pool thread: OPA's `result`, or why there is none. Never raises."""
        try:
            body = self._client().query_rule(input_data=document, package_path=path)
        except requests.Timeout as exc:
            return Delegated.failed("timeout", _short(exc))
        except requests.HTTPError as exc:
            return Delegated.failed("status", _status(exc.response))
        except ValueError as exc:  # the body is not JSON (requests' JSONDecodeError is one too)
            return Delegated.failed("malformed", _short(exc))
        except requests.RequestException as exc:
            return Delegated.failed("unreachable", _short(exc))
        if not isinstance(body, dict):
            return Delegated.failed("malformed", f"the body is {type(body).__name__}, not an object")
        if "result" not in body:
            return Delegated.failed("undefined", path)
        return Delegated.of(body["result"])

    # ------------------------------------------------------------ health

    def healthy(self) -> bool:
        """Whether OPA answers `GET /health` with 200 within the budget (False when unset)."""
        if not self.url:
            return False
        future = self._executor().submit(lambda: bool(self._client().check_health()))
        try:
            return future.result(self.timeout)
        except FutureTimeout:
            return False

    # ------------------------------------------------------------ resources

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="warden-opa")
            return self._pool

    def _client(self) -> OpaClient:
        """This thread's client (a `requests` session of its own)."""
        client = getattr(self._local, "client", None)
        if client is None:
            host, port, ssl = self._address
            client = OpaClient(host=host, port=port, ssl=ssl, token=self._token or None,
                               retries=0, timeout=self.timeout)
            self._local.client = client
        return client

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _address(url: str) -> tuple[str, int, bool]:
    """(host, port, https?) of `http[s]://HOST[:PORT]`; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"opa_url must be http://HOST:PORT or https://HOST:PORT, got {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 8181), parts.scheme == "https"


def _status(response: requests.Response | None) -> str:
    """`500 internal_error: message` from OPA's error body, or the status alone."""
    if response is None:
        return "no response"
    said = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("code" in body or "message" in body):
        said = f" {body.get('code', '')}: {body.get('message', '')}"
    return _short(f"{response.status_code}{said}")


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
