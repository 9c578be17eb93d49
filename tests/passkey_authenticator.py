"""A software WebAuthn authenticator for tests: real P-256 keys, real CBOR, real signatures.

    auth = SoftwareAuthenticator()                    # one credential (a fresh P-256 key)
    response = auth.create(options_json, origin)      # navigator.credentials.create(): JSON
    response = auth.get(options_json, origin)         # navigator.credentials.get(): JSON
    response = auth.get_for(challenge, rp_id, origin) # the same without options

`create` answers with a "none" attestation: a CBOR attestationObject whose authData holds the
rpIdHash, flags UP|UV|AT, the sign count, attested credential data (zero AAGUID, credential id)
and the COSE EC2 key. `get` answers with authenticatorData = rpIdHash || flags (UP|UV) || sign
count (incremented on every use unless `counter=False`), clientDataJSON {type, challenge,
origin, crossOrigin} and an ECDSA-SHA256 DER signature over authenticatorData ||
SHA-256(clientDataJSON). Both are the JSON of `PublicKeyCredential.toJSON()`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftwareAuthenticator:
    """One credential on a software authenticator."""

    def __init__(self, *, counter: bool = True, user_handle: bytes | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.counter = counter
        self.user_handle = user_handle

    @property
    def id(self) -> str:
        """The credential id, base64url."""
        return b64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def client_data(kind: str, challenge: bytes, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": b64url(challenge), "origin": origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def _count(self) -> int:
        if self.counter:
            self.sign_count += 1
        return self.sign_count

    # -- navigator.credentials.create() ------------------------------------------------------

    def create(self, options_json: str, origin: str) -> str:
        options = json.loads(options_json)
        if options.get("user", {}).get("id"):
            self.user_handle = unb64url(options["user"]["id"])
        return self.create_for(unb64url(options["challenge"]), options["rp"]["id"], origin)

    def create_for(self, challenge: bytes, rp_id: str, origin: str) -> str:
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([FLAG_UP | FLAG_UV | FLAG_AT])
                     + struct.pack(">I", self.sign_count) + bytes(16)
                     + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": self.id, "rawId": self.id, "type": "public-key",
            "response": {"clientDataJSON": b64url(self.client_data("webauthn.create", challenge, origin)),
                         "attestationObject": b64url(attestation), "transports": ["internal"]},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        })

    # -- navigator.credentials.get() ---------------------------------------------------------

    def get(self, options_json: str, origin: str) -> str:
        options = json.loads(options_json)
        allowed = [c["id"] for c in options.get("allowCredentials", [])]
        assert not allowed or self.id in allowed, "this credential is not among the allowed ones"
        return self.get_for(unb64url(options["challenge"]), options["rpId"], origin)

    def get_for(self, challenge: bytes, rp_id: str, origin: str, *, flags: int = FLAG_UP | FLAG_UV) -> str:
        return json.dumps(self.assertion(challenge, rp_id, origin, flags=flags))

    def assertion(self, challenge: bytes, rp_id: str, origin: str, *, flags: int = FLAG_UP | FLAG_UV) -> dict[str, Any]:
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self._count())
        client_data = self.client_data("webauthn.get", challenge, origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id, "rawId": self.id, "type": "public-key",
            "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature),
                         "userHandle": b64url(self.user_handle) if self.user_handle is not None else None},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }

