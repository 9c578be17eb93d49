"""Checking a webhook delivery from Warden, per the Standard Webhooks specification.

Warden signs each delivery with the endpoint's secret (`whsec_` + base64 of the key):

    webhook-id          the message id (the same on every retry of one event)
    webhook-timestamp   UNIX seconds when it was signed
    webhook-signature   space-separated "v1,<base64 HMAC-SHA256(key, id.timestamp.payload)>"

`verify_webhook` accepts a delivery only when one v1 signature matches (compared in constant
time) and the timestamp is within `tolerance` seconds of now, either way: an old delivery
replayed later, or one dated in the future, is refused. Keep the ids you have processed to
drop a replay inside the tolerance (deliveries are at least once).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from warden_sdk.errors import WardenError

__all__ = ["WebhookError", "sign_webhook", "verify_webhook"]

_PREFIX = "whsec_"


class WebhookError(WardenError):
    """A delivery that must not be trusted; the message says why."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    encoded = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookError("the webhook secret is not whsec_ followed by base64") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookError(f"the delivery has no {name} header")


def sign_webhook(secret: str | bytes, message_id: str, timestamp: int, payload: bytes | str) -> str:
    """The `v1,<base64>` signature of a delivery (what Warden sends; useful in tests)."""
    body = payload.encode() if isinstance(payload, str) else payload
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_webhook(payload: bytes | str, headers: Mapping[str, str], secret: str | bytes, *,
                   tolerance: float = 300, now: float | None = None) -> Any:
    """Check a delivery and return its JSON payload; raise `WebhookError` otherwise. Pass the
    raw body exactly as received (bytes), and the request's headers (any case)."""
    message_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookError(f"webhook-timestamp {stamp[:32]!r} is not UNIX seconds") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookError(f"the delivery is too old ({current - timestamp:.0f} s; tolerance {tolerance:g} s)")
    if timestamp > current + tolerance:
        raise WebhookError(f"the delivery is dated in the future ({timestamp - current:.0f} s ahead)")
    expected = sign_webhook(secret, message_id, timestamp, payload).encode()
    matched = False
    for signature in signatures.split(" "):
        version, _, _value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            matched = True
    if not matched:
        raise WebhookError("no v1 signature of the delivery matches the secret")
    try:
        return json.loads(payload)
    except ValueError:
        raise WebhookError("the delivery's payload is not JSON") from None
