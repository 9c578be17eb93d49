"""People's passkeys (WebAuthn credentials): registering one, listing and revoking them, and
checking the assertion an approver signs an approval with.

A passkey is a row of the `passkeys` table (schema version 3) and a `passkey_registered` audit
entry written in the same transaction, which carries what an auditor needs to check every
approval signed with it offline: the credential id, its COSE public key, the relying party and
origin, and the registration ceremony itself (the entry formats and the checks are
`ledger.passkeys`'s). Revoking writes `passkey_revoked`.

The WebAuthn ceremonies are py_webauthn's: `registration_options` / `register_passkey` for
`navigator.credentials.create()`, `authentication_options` / `verify_approval_assertion` for
`navigator.credentials.get()`. The challenge of an approval is not random: it is
`ledger.passkeys.approval_challenge` of the decision, its packet hash, its policy digest and the
approver (`approval_options` builds the options for one), so the signature is bound to that one
approval by that one person.

Errors: `PasskeyError` (a ValueError) with a message for people; nothing is written when it is
raised.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json, parse_registration_credential_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from gateway.store.records import load_decision
from gateway.store.schema import decisions, passkeys
from ledger.passkeys import REGISTERED, REVOKED, approval_challenge, b64url, from_b64url, user_handle
from ledger.store import Ledger

__all__ = [
    "ALGORITHMS",
    "PasskeyError",
    "StoredPasskey",
    "approval_options",
    "authentication_options",
    "has_passkey",
    "list_passkeys",
    "options_challenge",
    "register_passkey",
    "registration_options",
    "revoke_passkey",
    "verify_approval_assertion",
]

#: ES256, EdDSA and RS256, in the order offered.
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA,
              COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]


class PasskeyError(ValueError):
    """A passkey cannot be registered, used or revoked; the message says why."""


@dataclass(frozen=True)
class StoredPasskey:
    """One passkey as listed (never its key material beyond the public key's id)."""

    credential_id: str
    email: str
    sign_count: int
    rp_id: str
    origin: str
    created_at: float
    revoked_at: float | None
    audit_seq: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _active(email: str) -> Any:
    return (passkeys.c.email == email) & passkeys.c.revoked_at.is_(None)


def _descriptors(conn: Connection, email: str) -> list[PublicKeyCredentialDescriptor]:
    ids = conn.execute(select(passkeys.c.credential_id).where(_active(email))
                       .order_by(passkeys.c.created_at)).scalars()
    return [PublicKeyCredentialDescriptor(id=from_b64url(i, "credential_id")) for i in ids]


def registration_options(conn: Connection, email: str, display_name: str, rp_id: str,
                         rp_name: str, challenge: bytes | None = None) -> tuple[str, bytes]:
    """Options for `navigator.credentials.create()` (JSON) and the random challenge to keep
    (server side, e.g. in the session) until `register_passkey`. The person's passkeys are
    excluded, so one authenticator is registered once."""
    options = generate_registration_options(
        rp_id=rp_id, rp_name=rp_name, user_name=email, user_id=user_handle(email),
        user_display_name=display_name or email,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(conn, email),
        supported_pub_key_algs=ALGORITHMS,
        challenge=challenge,
    )
    return options_to_json(options), options.challenge


def register_passkey(conn: Connection, ledger: Ledger, email: str, response_json: str,
                     expected_challenge: bytes, rp_id: str, origin: str, now: float) -> str:
    """Verify the `navigator.credentials.create()` response, store the passkey and append its
    `passkey_registered` entry, in the caller's transaction; returns the credential id
    (base64url)."""
    try:
        credential = parse_registration_credential_json(response_json)
        verified = verify_registration_response(
            credential=credential, expected_challenge=expected_challenge, expected_rp_id=rp_id,
            expected_origin=origin, supported_pub_key_algs=ALGORITHMS)
    except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"the passkey could not be registered: {exc}") from exc
    credential_id = b64url(verified.credential_id)
    taken = conn.execute(select(passkeys.c.email).where(passkeys.c.credential_id == credential_id)).first()
    if taken is not None:
        raise PasskeyError("this passkey is registered already")
    public_key = b64url(verified.credential_public_key)
    result = ledger.append(conn, REGISTERED, email, email, {
        "email": email, "credential_id": credential_id, "public_key": public_key,
        "sign_count": verified.sign_count, "rp_id": rp_id, "origin": origin,
        "registration": {
            "attestation_object": b64url(credential.response.attestation_object),
            "client_data_json": b64url(credential.response.client_data_json),
        },
    })
    conn.execute(insert(passkeys).values(
        credential_id=credential_id, email=email, public_key=public_key, sign_count=verified.sign_count,
        rp_id=rp_id, origin=origin, created_at=now, revoked_at=None, audit_seq=result.seq))
    return credential_id


def has_passkey(conn: Connection, email: str) -> bool:
    """Whether the person has an active (not revoked) passkey."""
    return conn.execute(select(passkeys.c.credential_id).where(_active(email)).limit(1)).first() is not None


def list_passkeys(conn: Connection, email: str) -> list[StoredPasskey]:
    """The person's passkeys, revoked ones included, oldest first."""
    rows = conn.execute(select(
        passkeys.c.credential_id, passkeys.c.email, passkeys.c.sign_count, passkeys.c.rp_id, passkeys.c.origin,
        passkeys.c.created_at, passkeys.c.revoked_at, passkeys.c.audit_seq,
    ).where(passkeys.c.email == email).order_by(passkeys.c.created_at, passkeys.c.credential_id)).all()
    return [StoredPasskey(r.credential_id, r.email, int(r.sign_count), r.rp_id, r.origin, float(r.created_at),
                          None if r.revoked_at is None else float(r.revoked_at),
                          None if r.audit_seq is None else int(r.audit_seq)) for r in rows]


def revoke_passkey(conn: Connection, ledger: Ledger, email: str, credential_id: str, by: str, now: float) -> None:
    """Revoke one of the person's passkeys (`by` is who did it, the entry's actor) and append
    `passkey_revoked`, in the caller's transaction. Approvals it signed earlier stay valid."""
    done = conn.execute(update(passkeys).where(
        (passkeys.c.credential_id == credential_id) & _active(email)).values(revoked_at=now))
    if done.rowcount != 1:
        raise PasskeyError(f"{email} has no active passkey {credential_id[:64]!r}")
    ledger.append(conn, REVOKED, by, email, {"email": email, "credential_id": credential_id})


def authentication_options(conn: Connection, email: str, challenge: bytes, rp_id: str) -> str:
    """Options for `navigator.credentials.get()` (JSON) offering the person's active passkeys."""
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, allow_credentials=_descriptors(conn, email),
        user_verification=UserVerificationRequirement.PREFERRED)
    return options_to_json(options)


def approval_options(conn: Connection, email: str, decision_id: str, rp_id: str) -> str:
    """`authentication_options` for approving one decision: the challenge is the decision's
    `approval_challenge` for this approver. For the console; raises `PasskeyError` for an
    unknown decision."""
    decision = load_decision(conn, decision_id)
    packet_hash = conn.execute(select(decisions.c.packet_hash)
                               .where(decisions.c.decision_id == decision_id)).scalar_one_or_none()
    if decision is None or packet_hash is None:
        raise PasskeyError(f"no decision {decision_id[:64]!r}")
    challenge = approval_challenge(decision_id, packet_hash, decision.policy_digest, email)
    return authentication_options(conn, email, challenge, rp_id)


def verify_approval_assertion(conn: Connection, email: str, response_json: str, challenge: bytes,
                              rp_id: str, origin: str) -> dict[str, Any]:
    """Check a `navigator.credentials.get()` response signed by one of `email`'s active passkeys
    over `challenge`, at `rp_id` and `origin`; records the new sign count (in the caller's
    transaction) and returns the "passkey" object of the approval entry."""
    try:
        credential = parse_authentication_credential_json(response_json)
    except (InvalidJSONStructure, InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"the passkey response is malformed: {exc}") from exc
    credential_id = b64url(credential.raw_id)
    row = conn.execute(select(passkeys.c.email, passkeys.c.public_key, passkeys.c.sign_count,
                              passkeys.c.revoked_at, passkeys.c.rp_id, passkeys.c.origin)
                       .where(passkeys.c.credential_id == credential_id)).first()
    if row is None:
        raise PasskeyError("this passkey is not registered with Warden")
    if row.email != email:
        raise PasskeyError(f"this passkey is not registered to {email}")
    if row.revoked_at is not None:
        raise PasskeyError("this passkey was revoked")
    if (row.rp_id, row.origin) != (rp_id, origin):
        raise PasskeyError(f"this passkey was registered at {row.origin}, not {origin}")
    response = credential.response
    if response.user_handle is not None and response.user_handle != user_handle(email):
        raise PasskeyError(f"this passkey answers for another person than {email}")
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin,
            credential_public_key=from_b64url(row.public_key, "public_key"),
            credential_current_sign_count=int(row.sign_count))
    except InvalidAuthenticationResponse as exc:
        message = str(exc)
        if "challenge" in message:
            raise PasskeyError("the passkey signed another approval (the challenge is not this decision's)") from exc
        if "sign count" in message:
            raise PasskeyError(f"the passkey's sign count went backwards ({message}): a replayed response "
                               "or a cloned authenticator") from exc
        raise PasskeyError(f"the passkey response does not verify: {message}") from exc
    except (InvalidJSONStructure, ValueError) as exc:
        raise PasskeyError(f"the passkey response does not verify: {exc}") from exc
    conn.execute(update(passkeys).where(passkeys.c.credential_id == credential_id)
                 .values(sign_count=verified.new_sign_count))
    return {
        "credential_id": credential_id,
        "authenticator_data": b64url(response.authenticator_data),
        "client_data_json": b64url(response.client_data_json),
        "signature": b64url(response.signature),
        "user_handle": None if response.user_handle is None else b64url(response.user_handle),
    }


def options_challenge(options_json: str) -> bytes:
    """The challenge inside options JSON (what a client signs), for tests and the console."""
    return from_b64url(json.loads(options_json)["challenge"], "challenge")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def relying_party(base_url: str, public_url: str = "") -> tuple[str, str]:
    """The WebAuthn relying party a request speaks for: (rp_id, origin), the host name and
    scheme://host[:port] (a default port left out). From `public_url` when it is set (what people
    open the console at; the one right answer behind a proxy), else from the request's own base
    URL. A passkey is bound to its relying party: one registered at one origin signs nothing for
    another, so production sets `public_url`."""
    parts = urlsplit(public_url) if public_url else urlsplit(base_url)
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"no host name in {public_url or base_url!r}")
    port = parts.port
    shown = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown}" if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{shown}:{port}"
    return host, origin
