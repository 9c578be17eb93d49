"""What every live connector does alike over HTTP: the client, transport errors, status codes,
`Retry-After`, and keeping credentials out of every message.

Transport errors, by whether the request can have reached the provider:

    not sent     ConnectError, ConnectTimeout, PoolTimeout      TransientError: send it again
    maybe sent   WriteError, WriteTimeout, ReadError,           UnknownOutcomeError: reconcile
                 ReadTimeout, RemoteProtocolError, ...          before sending anything again

Status codes, when the provider's own error body says nothing more precise:

    401, 403     PermanentError(credentials_refused / forbidden)
    408, 409     TransientError (a request timeout; a conflicting request in flight)
    429          TransientError(rate_limited, retry_after from Retry-After)
    5xx          TransientError(provider_error); the provider may have acted: the idempotency
                 key (or the connector's read-before-write) makes the retry safe
    other 4xx    PermanentError(the provider's code)
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from connectors.base import ConnectorError, PermanentError, TransientError, UnknownOutcomeError

#: Answers larger than this are refused before they are parsed (no API answer of ours is near).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
USER_AGENT = "warden-gateway"

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def client(base_url: str, *, headers: Mapping[str, str], timeout: float,
           max_connections: int = 20) -> httpx.AsyncClient:
    """An httpx client for one provider: its base address, headers, timeouts and pool."""
    return httpx.AsyncClient(
        base_url=base_url, headers={"User-Agent": USER_AGENT, **headers},
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False, trust_env=False)


def transport_error(exc: httpx.TransportError | httpx.InvalidURL, what: str,
                    secrets: Iterable[str] = ()) -> ConnectorError:
    """The ConnectorError for a transport failure: sent again, or reconciled first."""
    detail = redact(f"{type(exc).__name__}: {exc}", secrets) if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.InvalidURL):
        return PermanentError(f"{what}: the provider's address is invalid: {detail}", code="invalid_address")
    if isinstance(exc, _NOT_SENT):
        code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_failed"
        return TransientError(f"{what}: could not reach the provider ({detail}); nothing was sent", code=code)
    return UnknownOutcomeError(
        f"{what}: the connection failed after the request was sent ({detail}); whether it took "
        "effect is unknown, so it is reconciled before anything is sent again")


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return min(float(value), 3600.0)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(moment.timestamp() - (time.time() if now is None else now), 3600.0))


def status_error(status: int, what: str, message: str, *, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> ConnectorError:
    """The ConnectorError for an HTTP error status (see the module's table)."""
    after = retry_after(headers or {})
    text = f"{what}: {message}" if message else f"{what}: HTTP {status}"
    if status == 401:
        return PermanentError(text, code=code or "credentials_refused")
    if status == 403:
        return PermanentError(text, code=code or "forbidden")
    if status == 429:
        return TransientError(text, code=code or "rate_limited", retry_after=after)
    if status in (408, 409) or status >= 500:
        return TransientError(text, code=code or ("provider_error" if status >= 500 else "conflict"),
                              retry_after=after)
    return PermanentError(text, code=code or f"http_{status}")


def json_body(response: httpx.Response, what: str) -> Any:
    """The answer's JSON; a provider that answers something else is a transient fault."""
    if len(response.content) > MAX_ANSWER_BYTES:
        raise TransientError(f"{what}: the provider's answer is larger than {MAX_ANSWER_BYTES} bytes",
                             code="bad_answer")
    try:
        return response.json()
    except ValueError:
        raise TransientError(f"{what}: the provider answered HTTP {response.status_code} without JSON",
                             code="bad_answer") from None


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and any Bearer token or Stripe-style key) replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1***", text)
    return re.sub(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]+", r"\1_\2_***", text)
