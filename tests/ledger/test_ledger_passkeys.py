"""Passkey-signed approvals checked offline (`ledger.passkeys`, step (7) of the verifier): real
WebAuthn registrations and assertions from a software authenticator, in entry lists and in
signed logs, untouched and tampered with."""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Iterable
from typing import Any

import pytest

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV, encode_entry
from ledger.merkle import leaf_hash
from ledger.note import Signer, generate_key
from ledger.passkeys import (
    PURPOSE, SignedApprovals, approval_challenge, b64url, from_b64url, user_handle, verify_signed_approvals,
)
from ledger.canonical import canonical_bytes
from ledger.verify import verify_log
from passkey_authenticator import FLAG_UP, FLAG_UV, SoftwareAuthenticator, unb64url

RP_ID = "warden.example.com"
ORIGIN = "https://warden.example.com"
FOUNDER = "founder@example.com"
TIME = "2025-01-01T00:00:00.000000Z"
LOG = "warden.example/audit"


def registration(auth: SoftwareAuthenticator, email: str = FOUNDER, *, rp_id: str = RP_ID,
                 origin: str = ORIGIN) -> dict[str, Any]:
    """The data of a `passkey_registered` entry for `auth`, from its real create() response."""
    response = __import__("json").loads(auth.create_for(b"registration challenge", rp_id, origin))
    return {
        "email": email, "credential_id": auth.id, "public_key": b64url(auth.cose_key()), "sign_count": 0,
        "rp_id": rp_id, "origin": origin,
        "registration": {"attestation_object": response["response"]["attestationObject"],
                         "client_data_json": response["response"]["clientDataJSON"]},
    }


def approval(decision_id: str, approver: str = FOUNDER, passkey: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "decision_id": decision_id, "packet_hash": "sha256:" + hashlib.sha256(decision_id.encode()).hexdigest(),
        "policy_digest": "sha256:" + "ab" * 32, "approver": approver, "role": "founder", "comment": None,
        "approvals": 1, "required": {"role": "founder", "count": 1},
    }
    if passkey is not None:
        data["passkey"] = passkey
    return data


def sign(auth: SoftwareAuthenticator, data: dict[str, Any], *, rp_id: str = RP_ID, origin: str = ORIGIN,
         flags: int = FLAG_UP | FLAG_UV) -> dict[str, Any]:
    """The "passkey" object for an approval entry: `auth`'s assertion over its challenge."""
    challenge = approval_challenge(data["decision_id"], data["packet_hash"], data["policy_digest"], data["approver"])
    response = auth.assertion(challenge, rp_id, origin, flags=flags)["response"]
    return {"credential_id": auth.id, "authenticator_data": response["authenticatorData"],
            "client_data_json": response["clientDataJSON"], "signature": response["signature"],
            "user_handle": response["userHandle"]}


def signed_approval(auth: SoftwareAuthenticator, decision_id: str, approver: str = FOUNDER) -> dict[str, Any]:
    data = approval(decision_id, approver)
    data["passkey"] = sign(auth, data)
    return data


def entries(*items: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"seq": seq, "kind": kind, "data": data} for seq, (kind, data) in enumerate(items)]


def flip(text: str, at: int = 10) -> str:
    raw = bytearray(unb64url(text))
    raw[at] ^= 0x01
    return b64url(bytes(raw))


def only_failure(items: Iterable[dict[str, Any]]) -> tuple[int, str]:
    [failure] = verify_signed_approvals(items)
    return failure.seq, failure.message


# ------------------------------------------------------------------------------ the challenge


def test_the_challenge_is_sha256_of_the_canonical_approval_statement() -> None:
    expected = hashlib.sha256(canonical_bytes({
        "purpose": PURPOSE, "decision_id": "dec_1", "packet_hash": "sha256:aa", "policy_digest": "sha256:bb",
        "approver": FOUNDER})).digest()
    assert approval_challenge("dec_1", "sha256:aa", "sha256:bb", FOUNDER) == expected
    assert PURPOSE == "warden.approval.v1"
    others = {approval_challenge("dec_2", "sha256:aa", "sha256:bb", FOUNDER),
              approval_challenge("dec_1", "sha256:ab", "sha256:bb", FOUNDER),
              approval_challenge("dec_1", "sha256:aa", "sha256:bc", FOUNDER),
              approval_challenge("dec_1", "sha256:aa", "sha256:bb", "approver@example.com")}
    assert expected not in others and len(others) == 4


def test_base64url_is_strict() -> None:
    assert from_b64url(b64url(b"\xff\xfe"), "x") == b"\xff\xfe"
    for bad in ("//8", "_-8=", "a", "ab c", 3, None, "_x"):  # "_x" is not the one spelling of its byte
        with pytest.raises(ValueError):
            from_b64url(bad, "x")
    assert len(user_handle(FOUNDER)) == 32 and user_handle(FOUNDER) != user_handle("other@example.com")


# ------------------------------------------------------------------------------ entry lists


def test_signed_approvals_from_a_registered_passkey_verify() -> None:
    auth = SoftwareAuthenticator()
    log = entries(("passkey_registered", registration(auth)), ("approval", approval("dec_0")),
                  ("approval", signed_approval(auth, "dec_1")), ("approval", signed_approval(auth, "dec_2")))
    assert verify_signed_approvals(log) == []
    check = SignedApprovals()
    for e in log:
        check.observe(e["seq"], e["kind"], e["data"])
    assert check.verified == 2


def test_a_tampered_signature_or_statement_does_not_verify() -> None:
    auth = SoftwareAuthenticator()
    good = signed_approval(auth, "dec_1")
    bad = copy.deepcopy(good)
    bad["passkey"]["signature"] = flip(bad["passkey"]["signature"])
    assert only_failure(entries(("passkey_registered", registration(auth)), ("approval", bad))) == \
        (1, "the passkey signature does not verify")
    bad = copy.deepcopy(good)
    bad["passkey"]["authenticator_data"] = flip(bad["passkey"]["authenticator_data"], at=33)  # the flags
    assert only_failure(entries(("passkey_registered", registration(auth)), ("approval", bad)))[1] == \
        "the passkey signature does not verify"


def test_a_signature_replayed_on_another_approval_or_by_another_person_is_refused() -> None:
    auth = SoftwareAuthenticator()
    first = signed_approval(auth, "dec_1")
    replayed = approval("dec_2", passkey=first["passkey"])
    assert only_failure(entries(("passkey_registered", registration(auth)), ("approval", first),
                                ("approval", replayed))) == (2, "the signed challenge is for another approval")
    other_policies = {**first, "policy_digest": "sha256:" + "cd" * 32}
    assert only_failure(entries(("passkey_registered", registration(auth)), ("approval", other_policies)))[1] == \
        "the signed challenge is for another approval"
    # Another approver using the founder's passkey: the credential is not theirs.
    theirs = approval("dec_1", "approver@example.com", passkey=first["passkey"])
    assert only_failure(entries(("passkey_registered", registration(auth)), ("approval", theirs))) == \
        (1, f"credential '{auth.id}' was not registered to approver approver@example.com")


def test_the_credential_must_be_registered_before_and_not_revoked() -> None:
    auth = SoftwareAuthenticator()
    signed = signed_approval(auth, "dec_1")
    seq, message = only_failure(entries(("approval", signed), ("passkey_registered", registration(auth))))
    assert (seq, message) == (0, f"credential '{auth.id}' was not registered to approver {FOUNDER}")
    log = entries(("passkey_registered", registration(auth)),
                  ("passkey_revoked", {"email": FOUNDER, "credential_id": auth.id}), ("approval", signed))
    assert only_failure(log) == (2, "credential revoked before this approval (at seq 1)")
    other = SoftwareAuthenticator()
    assert only_failure(entries(("passkey_registered", registration(other)), ("approval", signed)))[1] == \
        f"credential '{auth.id}' was not registered to approver {FOUNDER}"


def test_relying_party_presence_origin_and_sign_count() -> None:
    auth = SoftwareAuthenticator()
    reg = ("passkey_registered", registration(auth))
    data = approval("dec_1")
    data["passkey"] = sign(auth, data, rp_id="evil.example.com")
    assert only_failure(entries(reg, ("approval", data)))[1] == f"the assertion is not for relying party '{RP_ID}'"
    data["passkey"] = sign(auth, data, origin="https://evil.example.com")
    assert "not the registered origin" in only_failure(entries(reg, ("approval", data)))[1]
    data["passkey"] = sign(auth, data, flags=FLAG_UV)
    assert only_failure(entries(reg, ("approval", data)))[1] == "the authenticator did not find the user present"
    # The same assertion twice (a sign count that does not go up)
    fresh = SoftwareAuthenticator()
    one = signed_approval(fresh, "dec_1")
    fresh.sign_count -= 1
    two = signed_approval(fresh, "dec_2")
    log = entries(("passkey_registered", registration(fresh)), ("approval", one), ("approval", two))
    assert "the sign count did not go up (1 after 1)" in only_failure(log)[1]
    # An authenticator without a counter (always 0) is fine.
    still = SoftwareAuthenticator(counter=False)
    assert verify_signed_approvals(entries(("passkey_registered", registration(still)),
                                           ("approval", signed_approval(still, "dec_1")),
                                           ("approval", signed_approval(still, "dec_2")))) == []


def test_a_registration_must_match_its_attestation_and_be_new() -> None:
    auth, other = SoftwareAuthenticator(), SoftwareAuthenticator()
    swapped = {**registration(auth), "public_key": b64url(other.cose_key())}
    assert "the attestation does not name credential" in only_failure(entries(("passkey_registered", swapped)))[1]
    wrong_rp = {**registration(auth), "rp_id": "other.example.com"}
    assert "not for relying party" in only_failure(entries(("passkey_registered", wrong_rp)))[1]
    wrong_origin = {**registration(auth), "origin": "https://other.example.com"}
    assert "was made at origin" in only_failure(entries(("passkey_registered", wrong_origin)))[1]
    twice = entries(("passkey_registered", registration(auth)), ("passkey_registered", registration(auth, "x@y.z")))
    assert only_failure(twice) == (1, f"credential {auth.id} was already registered at seq 0")
    missing = {k: v for k, v in registration(auth).items() if k != "registration"}
    assert "exactly the fields" in only_failure(entries(("passkey_registered", missing)))[1]


def test_a_malformed_assertion_is_a_failure_not_a_crash() -> None:
    auth = SoftwareAuthenticator()
    reg = ("passkey_registered", registration(auth))
    good = signed_approval(auth, "dec_1")
    for change in ({"signature": "not base64!"}, {"client_data_json": b64url(b"{")},
                   {"authenticator_data": b64url(b"short")}, {"extra": 1}, {"user_handle": b64url(b"someone else")}):
        bad = {**good, "passkey": {**good["passkey"], **change}}
        failures = verify_signed_approvals(entries(reg, ("approval", bad)))
        assert len(failures) == 1 and failures[0].seq == 1, change
    assert verify_signed_approvals(entries(reg, ("approval", {**good, "passkey": "x"})))[0].seq == 1


# ------------------------------------------------------------------------------ signed logs


def signed_log(items: list[tuple[str, dict[str, Any]]], signer: Signer) -> tuple[list[bytes], list[str]]:
    """Entries chained and hashed as the gateway writes them, and one checkpoint over all."""
    raw: list[bytes] = []
    prev: str | bytes = GENESIS_PREV
    acc = MerkleAccumulator()
    for seq, (kind, data) in enumerate(items):
        actor = data.get("approver") or data.get("email") or "warden"
        entry = encode_entry(seq, TIME, kind, actor, data.get("decision_id", actor), data, prev)
        raw.append(entry)
        prev = leaf_hash(entry)
        acc.append(prev)
    return raw, [sign_checkpoint(Checkpoint(LOG, len(raw), acc.root()), signer)]


def test_the_verifier_checks_signed_approvals_as_step_7() -> None:
    signer = generate_key(LOG)
    auth = SoftwareAuthenticator()
    items = [("passkey_registered", registration(auth)), ("approval", approval("dec_0")),
             ("approval", signed_approval(auth, "dec_1")), ("approval", signed_approval(auth, "dec_2"))]
    report = verify_log(*signed_log(items, signer), signer.verifier_key)
    assert report.ok, report.summary()
    assert report.passkey_approvals == 2
    step = report.steps[6]
    assert (step.number, step.status, step.detail) == (7, "passed", "2 passkey-signed approvals verified")
    assert "2 passkey-signed approvals verified" in report.summary()
    assert report.to_dict()["passkey_approvals"] == 2


def test_a_log_without_passkeys_skips_step_7() -> None:
    signer = generate_key(LOG)
    report = verify_log(*signed_log([("approval", approval("dec_0"))], signer), signer.verifier_key)
    assert report.ok and report.steps[6].status == "skipped" and report.passkey_approvals == 0


def test_even_the_log_operator_cannot_forge_or_move_a_signed_approval() -> None:
    """Whoever holds the log's signing key can rewrite and re-sign the whole log; the passkey
    signatures still name the entry that was changed."""
    signer = generate_key(LOG)
    auth = SoftwareAuthenticator()
    good = signed_approval(auth, "dec_1")
    tampered = copy.deepcopy(good)
    tampered["passkey"]["signature"] = flip(tampered["passkey"]["signature"])
    items = [("passkey_registered", registration(auth)), ("approval", approval("dec_0")), ("approval", tampered)]
    report = verify_log(*signed_log(items, signer), signer.verifier_key)
    assert not report.ok
    assert (report.failed_step, report.seq, report.line) == (7, 2, 3)
    assert report.failure == "approval: the passkey signature does not verify"
    assert [s.status for s in report.steps][6] == "failed"

    moved = approval("dec_9", passkey=good["passkey"])  # the founder's signature on another action
    report = verify_log(*signed_log(items[:2] + [("approval", good), ("approval", moved)], signer), signer.verifier_key)
    assert (report.failed_step, report.seq) == (7, 3)
    assert report.failure == "approval: the signed challenge is for another approval"


def test_an_altered_signature_in_an_honest_log_is_named_at_its_entry() -> None:
    """Without re-signing: the passkey check names the altered entry before the hash chain does."""
    signer = generate_key(LOG)
    auth = SoftwareAuthenticator()
    raw, notes = signed_log([("passkey_registered", registration(auth)), ("approval", signed_approval(auth, "dec_1")),
                             ("approval", approval("dec_2"))], signer)
    text = raw[1].decode()
    signature = signed_approval(auth, "dec_x")["passkey"]["signature"]  # any other valid-looking signature
    import json
    data = json.loads(text)
    data["data"]["passkey"]["signature"] = signature
    raw[1] = canonical_bytes(data)
    report = verify_log(raw, notes, signer.verifier_key)
    assert not report.ok and report.seq == 1 and report.failed_step == 7
    assert "does not verify" in (report.failure or "")
    assert base64.urlsafe_b64decode(signature + "==")  # a well-formed signature, just not this one's
