"""`verify_webhook` against the Standard Webhooks reference package's own signer and verifier."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from warden_sdk.webhooks import WebhookError, sign_webhook, verify_webhook

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
PAYLOAD = json.dumps({"type": "decision", "seq": 42, "leaf_hash": "ab" * 32}).encode()


def delivery(at: float, payload: bytes = PAYLOAD, secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    """Headers as the reference signer makes them for a delivery signed at `at`."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(at), tz=timezone.utc), payload)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature}


def test_a_delivery_signed_by_the_reference_package_verifies() -> None:
    now = time.time()
    assert verify_webhook(PAYLOAD, delivery(now), SECRET) == json.loads(PAYLOAD)
    capitalised = {k.title(): v for k, v in delivery(now).items()}
    assert verify_webhook(PAYLOAD.decode(), capitalised, SECRET)["seq"] == 42
    several = delivery(now)
    several["webhook-signature"] = "v1,bm90IGl0 " + several["webhook-signature"] + " v2,other"
    assert verify_webhook(PAYLOAD, several, SECRET)["type"] == "decision"


def test_our_signature_is_the_reference_signature_and_the_reference_accepts_it() -> None:
    now = int(time.time())
    ours = sign_webhook(SECRET, "msg_2", now, PAYLOAD)
    assert ours == delivery(now, msg_id="msg_2")["webhook-signature"]
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now), "webhook-signature": ours}
    assert Webhook(SECRET).verify(PAYLOAD, headers) == json.loads(PAYLOAD)


@pytest.mark.parametrize(("change", "why"), [
    ({"payload": PAYLOAD.replace(b"42", b"43")}, "no v1 signature"),
    ({"secret": "whsec_" + base64.b64encode(os.urandom(24)).decode()}, "no v1 signature"),
    ({"at_offset": -301}, "too old"),
    ({"at_offset": 301}, "in the future"),
    ({"msg_id": "msg_other"}, "no v1 signature"),
])
def test_a_tampered_replayed_or_misdated_delivery_is_refused(change: dict[str, object], why: str) -> None:
    now = time.time()
    headers = delivery(now + float(change.get("at_offset", 0)), PAYLOAD,  # type: ignore[arg-type]
                       str(change.get("secret", SECRET)))
    if "msg_id" in change:
        headers["webhook-id"] = str(change["msg_id"])
    received = change.get("payload", PAYLOAD)
    with pytest.raises(WebhookError, match=why):
        verify_webhook(received, headers, SECRET, now=now)  # type: ignore[arg-type]


def test_a_delivery_replayed_after_the_tolerance_is_refused() -> None:
    signed_at = time.time()
    headers = delivery(signed_at)
    assert verify_webhook(PAYLOAD, headers, SECRET, now=signed_at + 299)
    with pytest.raises(WebhookError, match="too old"):
        verify_webhook(PAYLOAD, headers, SECRET, now=signed_at + 400)
    with pytest.raises(WebhookError, match="too old"):
        verify_webhook(PAYLOAD, headers, SECRET, tolerance=10, now=signed_at + 11)


def test_missing_or_malformed_headers_and_secrets_are_refused() -> None:
    now = time.time()
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = delivery(now)
        del headers[header]
        with pytest.raises(WebhookError, match=f"no {header} header"):
            verify_webhook(PAYLOAD, headers, SECRET)
    with pytest.raises(WebhookError, match="UNIX seconds"):
        verify_webhook(PAYLOAD, {**delivery(now), "webhook-timestamp": "yesterday"}, SECRET)
    with pytest.raises(WebhookError, match="not whsec_"):
        verify_webhook(PAYLOAD, delivery(now), "whsec_!!!")
    with pytest.raises(WebhookError, match="no v1 signature"):
        verify_webhook(PAYLOAD, {**delivery(now), "webhook-signature": "v1a,xyz"}, SECRET)
