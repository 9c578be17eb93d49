"""Passkey-signed approvals: a WebAuthn assertion inside the hashed `approval` entry, checked
offline by anyone holding the export (step (7) of :mod:`ledger.verify`).

The challenge. An approver's authenticator signs :func:`approval_challenge`: SHA-256 of the
RFC 8785 bytes (:mod:`ledger.canonical`) of ::

    {"purpose": "warden.approval.v1", "decision_id": ..., "packet_hash": ...,
     "policy_digest": ..., "approver": <email>}

so one signature approves one action (its packet, under one policy set) for one person, and
cannot be replayed on another decision or by another approver. Nothing of it is stored beside
the entry: the verifier recomputes it from the approval entry's own fields.

The entries. Binary values are base64url without padding (RFC 4648 section 5)::

    passkey_registered  actor = subject = the person's email
        {"email", "credential_id", "public_key" (the COSE key), "sign_count", "rp_id", "origin",
         "registration": {"attestation_object", "client_data_json"}}
    passkey_revoked     {"email", "credential_id"}
    approval            (the gateway's entry, unchanged) gains an optional
        "passkey": {"credential_id", "authenticator_data", "client_data_json", "signature",
                    "user_handle" (or null)}

What the verifier checks, entry by entry and in log order (:class:`SignedApprovals`):

- a registration: its fields are well-formed, its credential was not registered before, and its
  attestation names that credential id and COSE key, for its rp_id (the rpIdHash) and origin,
  in a `webauthn.create` ceremony. The registration's own challenge (secret to the session) is not kept,
  so it is not checked; the gateway checked it when the passkey was registered.
- a revocation: of a credential registered earlier to the same email.
- an approval with "passkey": the credential was registered earlier in this log to the approver
  and not revoked since; the client data is a `webauthn.get` ceremony for the approval's own
  challenge at the registered origin; the authenticator data's rpIdHash is the registered
  rp_id's and the user-present flag is set; the signature verifies over
  authenticatorData || SHA-256(clientDataJSON) with the registered COSE key; the user handle,
  when given, is the approver's (:func:`user_handle`); the sign count, when the authenticator
  keeps one, went up since the credential's last use in this log.

The first failure names the entry (:class:`PasskeyFailure`); :func:`verify_signed_approvals`
collects every failure of a list of entries instead. Memory is one record per registered
credential. Imports nothing of the gateway; ``webauthn`` (its parsers and COSE keys) is imported
only when a log holds a passkey entry, so verifying a log without one costs nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.canonical import canonical_bytes

__all__ = [
    "APPROVAL",
    "KINDS",
    "PASSKEY_FIELDS",
    "PURPOSE",
    "REGISTERED",
    "REVOKED",
    "PasskeyFailure",
    "Registration",
    "SignedApprovalFailure",
    "SignedApprovals",
    "approval_challenge",
    "b64url",
    "check_assertion",
    "from_b64url",
    "user_handle",
    "verify_signed_approvals",
]

PURPOSE = "warden.approval.v1"
REGISTERED = "passkey_registered"
REVOKED = "passkey_revoked"
APPROVAL = "approval"
#: The entry kinds step (7) looks at (an `approval` only when it carries "passkey").
KINDS = frozenset({REGISTERED, REVOKED, APPROVAL})
PASSKEY_FIELDS = frozenset({"credential_id", "authenticator_data", "client_data_json", "signature", "user_handle"})
_REGISTERED_FIELDS = frozenset({"email", "credential_id", "public_key", "sign_count", "rp_id", "origin",
                                "registration"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class PasskeyFailure(ValueError):
    """A passkey entry that does not verify; ``str()`` says why (one of the messages of the
    module docstring's checks)."""


@dataclass(frozen=True)
class SignedApprovalFailure:
    """One failure found by :func:`verify_signed_approvals`: the entry's seq and why."""

    seq: int
    message: str


@dataclass
class Registration:
    """A credential as its `passkey_registered` entry gives it."""

    email: str
    credential_id: str
    public_key: bytes
    rp_id: str
    origin: str
    seq: int
    sign_count: int
    revoked_at: int | None = None


def b64url(data: bytes) -> str:
    """base64url without padding (the WebAuthn spelling)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: object, what: str) -> bytes:
    """Strict inverse of :func:`b64url`: only the base64url alphabet, no padding, and the one
    spelling of the bytes. Raises :class:`PasskeyFailure` naming ``what``."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise PasskeyFailure(f"{what} is not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise PasskeyFailure(f"{what} is not canonical base64url")
    return data


def approval_challenge(decision_id: str, packet_hash: str, policy_digest: str, approver: str) -> bytes:
    """The 32 bytes an approver's passkey signs to approve this decision (module docstring)."""
    return hashlib.sha256(canonical_bytes({
        "purpose": PURPOSE, "decision_id": decision_id, "packet_hash": packet_hash,
        "policy_digest": policy_digest, "approver": approver,
    })).digest()


def user_handle(email: str) -> bytes:
    """The WebAuthn user handle of a person: SHA-256 of a label and their email. Stable, so an
    auditor can check it, and not the email itself (authenticators may show or sync it)."""
    return hashlib.sha256(b"warden.user.v1\x00" + email.encode("utf-8")).digest()


def _text(data: Mapping[str, Any], name: str, what: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise PasskeyFailure(f"{what} {name} must be a non-empty string")
    return value


def check_assertion(registration: Registration, passkey: Mapping[str, Any], challenge: bytes,
                    approver: str) -> int:
    """Check one assertion (the "passkey" object of an approval) against the credential's
    registration and the approval's challenge; returns the authenticator's sign count.
    Raises :class:`PasskeyFailure`. Does not look at revocation or earlier sign counts."""
    from cryptography.exceptions import InvalidSignature
    from webauthn.helpers import (
        decode_credential_public_key,
        decoded_public_key_to_cryptography,
        parse_authenticator_data,
        verify_signature,
    )

    if not isinstance(passkey, Mapping) or set(passkey) != PASSKEY_FIELDS:
        raise PasskeyFailure(f"the passkey assertion must have exactly the fields {sorted(PASSKEY_FIELDS)}")
    authenticator_data = from_b64url(passkey["authenticator_data"], "authenticator_data")
    client_data_json = from_b64url(passkey["client_data_json"], "client_data_json")
    signature = from_b64url(passkey["signature"], "signature")
    handle = passkey["user_handle"]
    if handle is not None and from_b64url(handle, "user_handle") != user_handle(approver):
        raise PasskeyFailure(f"the assertion's user handle is not approver {approver}'s")
    client = _client_data(client_data_json, "webauthn.get")
    if client["challenge"] != challenge:
        raise PasskeyFailure("the signed challenge is for another approval")
    if client["origin"] != registration.origin:
        raise PasskeyFailure(f"the assertion was made at origin {client['origin']!r}, not the registered "
                             f"origin {registration.origin!r}")
    try:
        auth = parse_authenticator_data(authenticator_data)
    except Exception as exc:  # the parser raises several kinds of error for malformed bytes
        raise PasskeyFailure("authenticator_data is malformed") from exc
    if auth.rp_id_hash != hashlib.sha256(registration.rp_id.encode("utf-8")).digest():
        raise PasskeyFailure(f"the assertion is not for relying party {registration.rp_id!r}")
    if not auth.flags.up:
        raise PasskeyFailure("the authenticator did not find the user present")
    try:
        key = decode_credential_public_key(registration.public_key)
        verify_signature(public_key=decoded_public_key_to_cryptography(key), signature_alg=key.alg,
                         signature=signature, data=authenticator_data + hashlib.sha256(client_data_json).digest())
    except InvalidSignature as exc:
        raise PasskeyFailure("the passkey signature does not verify") from exc
    except Exception as exc:  # an unusable registered key or algorithm: it verifies nothing
        raise PasskeyFailure(f"the passkey signature does not verify (unusable key: {exc})") from exc
    return int(auth.sign_count)


def _client_data(raw: bytes, ceremony: str) -> dict[str, Any]:
    """The client data's type, challenge (bytes) and origin; the type must be ``ceremony``."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PasskeyFailure("client_data_json is not JSON") from exc
    if not isinstance(value, dict):
        raise PasskeyFailure("client_data_json is not a JSON object")
    if value.get("type") != ceremony:
        raise PasskeyFailure(f"the client data is not a {ceremony} ceremony (type {value.get('type')!r})")
    challenge = value.get("challenge")
    if not isinstance(challenge, str):
        raise PasskeyFailure("the client data has no challenge")
    try:
        decoded = base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4))
    except ValueError as exc:
        raise PasskeyFailure("the client data's challenge is not base64url") from exc
    origin = value.get("origin")
    if not isinstance(origin, str):
        raise PasskeyFailure("the client data has no origin")
    return {"challenge": decoded, "origin": origin}


class SignedApprovals:
    """Step (7) over one log, fed entry by entry in seq order (:meth:`observe`)."""

    def __init__(self) -> None:
        self.credentials: dict[str, Registration] = {}
        self.verified = 0
        """How many passkey-signed approvals verified so far."""

    def observe(self, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        """Check one entry (only the kinds of :data:`KINDS` matter); raises
        :class:`PasskeyFailure`."""
        if kind == APPROVAL:
            if "passkey" in data:
                self._approval(seq, data)
        elif kind == REGISTERED:
            self._registered(seq, data)
        elif kind == REVOKED:
            self._revoked(seq, data)

    def _approval(self, seq: int, data: Mapping[str, Any]) -> None:
        passkey = data["passkey"]
        if not isinstance(passkey, Mapping):
            raise PasskeyFailure("the approval's passkey must be an object")
        approver = _text(data, "approver", "the approval's")
        decision_id, packet_hash, policy_digest = (
            _text(data, name, "the approval's") for name in ("decision_id", "packet_hash", "policy_digest"))
        credential = passkey.get("credential_id")
        registration = self.credentials.get(credential) if isinstance(credential, str) else None
        if registration is None or registration.email != approver:
            raise PasskeyFailure(f"credential {credential!r} was not registered to approver {approver}")
        if registration.revoked_at is not None:
            raise PasskeyFailure(f"credential revoked before this approval (at seq {registration.revoked_at})")
        count = check_assertion(registration, passkey, approval_challenge(decision_id, packet_hash, policy_digest, approver), approver)
        if (count or registration.sign_count) and count <= registration.sign_count:
            raise PasskeyFailure(f"the sign count did not go up ({count} after {registration.sign_count}): "
                                 "a replayed assertion or a cloned authenticator")
        registration.sign_count = count
        self.verified += 1

    def _registered(self, seq: int, data: Mapping[str, Any]) -> None:
        from webauthn.helpers import parse_attestation_object

        if set(data) != _REGISTERED_FIELDS:
            raise PasskeyFailure(f"a passkey registration must have exactly the fields {sorted(_REGISTERED_FIELDS)}")
        email = _text(data, "email", "the registration's")
        credential = _text(data, "credential_id", "the registration's")
        credential_raw = from_b64url(credential, "credential_id")
        public_key = from_b64url(data["public_key"], "public_key")
        rp_id = _text(data, "rp_id", "the registration's")
        origin = _text(data, "origin", "the registration's")
        count = data["sign_count"]
        if type(count) is not int or count < 0:
            raise PasskeyFailure("the registration's sign_count must be a non-negative integer")
        earlier = self.credentials.get(credential)
        if earlier is not None:
            raise PasskeyFailure(f"credential {credential} was already registered at seq {earlier.seq}")
        ceremony = data["registration"]
        if not isinstance(ceremony, Mapping) or set(ceremony) != {"attestation_object", "client_data_json"}:
            raise PasskeyFailure("the registration must hold its attestation_object and client_data_json")
        client = _client_data(from_b64url(ceremony["client_data_json"], "client_data_json"), "webauthn.create")
        if client["origin"] != origin:
            raise PasskeyFailure(f"the registration was made at origin {client['origin']!r}, not {origin!r}")
        try:
            attestation = parse_attestation_object(from_b64url(ceremony["attestation_object"], "attestation_object"))
        except PasskeyFailure:
            raise
        except Exception as exc:
            raise PasskeyFailure("the registration's attestation_object is malformed") from exc
        auth = attestation.auth_data
        attested = auth.attested_credential_data
        if (attested is None or attested.credential_id != credential_raw
                or attested.credential_public_key != public_key):
            raise PasskeyFailure(f"the attestation does not name credential {credential} and its public key")
        if auth.rp_id_hash != hashlib.sha256(rp_id.encode("utf-8")).digest():
            raise PasskeyFailure(f"the attestation is not for relying party {rp_id!r}")
        self.credentials[credential] = Registration(email, credential, public_key, rp_id, origin, seq, count)

    def _revoked(self, seq: int, data: Mapping[str, Any]) -> None:
        email = _text(data, "email", "the revocation's")
        credential = _text(data, "credential_id", "the revocation's")
        registration = self.credentials.get(credential)
        if registration is None or registration.email != email:
            raise PasskeyFailure(f"credential {credential} was not registered to {email}")
        if registration.revoked_at is None:
            registration.revoked_at = seq


def verify_signed_approvals(entries: Iterable[Any]) -> list[SignedApprovalFailure]:
    """Every passkey failure in ``entries``, in order (empty: every signed approval verifies).

    An entry is a :class:`ledger.entry.Entry` or a mapping with "seq", "kind" and "data" (a line
    of ``entries.jsonl`` parsed as JSON). Unlike the verifier's step (7) this goes on after a
    failure: a registration that fails is not registered, an approval that fails is not counted.
    """
    check = SignedApprovals()
    failures: list[SignedApprovalFailure] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            seq, kind, data = entry["seq"], entry["kind"], entry["data"]
        else:
            seq, kind, data = entry.seq, entry.kind, entry.data
        try:
            check.observe(seq, kind, data)
        except PasskeyFailure as exc:
            failures.append(SignedApprovalFailure(seq, str(exc)))
    return failures
