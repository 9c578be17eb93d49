"""Approvals signed with a passkey, over real HTTP, and checked offline by `warden audit verify`.

A software authenticator (tests/passkey_authenticator.py) registers real WebAuthn credentials
through the store (the console's part) and signs real assertions; the gateway runs with
`passkeys_required_for_l3`, so every L3 approval must be signed, and anyone who has a passkey
signs every approval with it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.pipeline.approvals import Person
from gateway.store import passkeys as store
from gateway_server import Server, audit, module_server, packet, refund
from ledger.canonical import canonical_bytes
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV
from ledger.merkle import leaf_hash
from ledger.passkeys import approval_challenge
from audit_support import export, verify, with_altered_signature
from passkey_authenticator import SoftwareAuthenticator, b64url, unb64url

FOUNDER = Person("founder@test.local", "founder")
APPROVER = Person("approver@test.local", "approver")
LARGE = 60_000  # an L2 refund: an approver's approval


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "passkeys", passkeys_required_for_l3=True)


def relying_party(server: Server) -> tuple[str, str]:
    """What the gateway derives from a request to `server` (no public_url): host and origin."""
    return "127.0.0.1", server.base_url


def register(server: Server, person: Person) -> SoftwareAuthenticator:
    """A passkey for `person`, registered the way the console does it."""
    rp_id, origin = relying_party(server)
    auth = SoftwareAuthenticator()
    runtime = server.runtime
    with runtime.db.connect() as conn:
        options, challenge = store.registration_options(conn, person.email, person.email, rp_id, "Warden")
    assert json.loads(options)["rp"] == {"id": rp_id, "name": "Warden"}
    response = auth.create(options, origin)
    credential_id = runtime.writer.run(lambda conn: store.register_passkey(
        conn, runtime.ledger, person.email, response, challenge, rp_id, origin, time.time()))
    assert credential_id == auth.id
    return auth


@pytest.fixture(scope="module")
def founder_key(server: Server) -> SoftwareAuthenticator:
    return register(server, FOUNDER)


def payout(agent: str = "a2") -> dict[str, Any]:
    """An L3 payout whose invariants hold: founder only."""
    return packet(agent, "stripe.payout", {"amount": 250_000, "currency": "usd", "creator_id": "cr_19"},
                  evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.08, "cash_runway_days": 94})


def submit(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = server.client("a2").post("/v1/actions", json=body)
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending_approval"
    return dict(pending)


def signed(server: Server, auth: SoftwareAuthenticator, person: Person, decision_id: str) -> dict[str, Any]:
    """The approval body with `auth`'s assertion, from the options the console would show."""
    rp_id, origin = relying_party(server)
    options = server.runtime.approvals.approval_options(person, decision_id, rp_id)
    assert [c["id"] for c in json.loads(options)["allowCredentials"]] and json.loads(options)["rpId"] == rp_id
    return {"comment": "signed", "passkey": json.loads(auth.get(options, origin))}


def outcome(server: Server, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 202), response.text
    decision = response.json()
    deadline = time.monotonic() + 15
    while decision["status"] == "executing" and time.monotonic() < deadline:
        decision = server.client("founder").get(f"/v1/actions/{decision['decision_id']}", params={"wait": 5}).json()
    return dict(decision)


def problem(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    return str(body["detail"])


def approve(server: Server, who: str, decision_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return server.client(who).post(f"/v1/approvals/{decision_id}/approve", json=body)


# ------------------------------------------------------------------------------ approving


def test_an_l3_approval_signed_with_the_founders_passkey_executes_and_is_in_the_entry(
    server: Server, founder_key: SoftwareAuthenticator
) -> None:
    pending = submit(server, payout())
    decision_id = pending["decision_id"]
    assert pending["risk"] == "L3"
    done = outcome(server, approve(server, "founder", decision_id, signed(server, founder_key, FOUNDER, decision_id)))
    assert done["status"] == "executed"

    [decided] = audit(server, "decision", decision_id)
    [entry] = audit(server, "approval", decision_id)
    data = entry["data"]
    assert set(data["passkey"]) == {"credential_id", "authenticator_data", "client_data_json", "signature",
                                    "user_handle"}
    assert data["passkey"]["credential_id"] == founder_key.id
    client_data = json.loads(unb64url(data["passkey"]["client_data_json"]))
    challenge = approval_challenge(decision_id, decided["data"]["packet_hash"], pending["policy_digest"],
                                   FOUNDER.email)
    assert (client_data["type"], client_data["challenge"]) == ("webauthn.get", b64url(challenge))
    [registered] = [e for e in audit(server, "passkey_registered") if e["data"]["credential_id"] == founder_key.id]
    assert (registered["actor"], registered["subject"], registered["data"]["email"]) == (FOUNDER.email,) * 3
    with server.runtime.db.connect() as conn:
        [stored] = store.list_passkeys(conn, FOUNDER.email)
    assert stored.audit_seq == registered["seq"] and stored.sign_count == founder_key.sign_count


def test_without_the_passkey_the_approval_is_refused_and_nothing_is_recorded(
    server: Server, founder_key: SoftwareAuthenticator
) -> None:
    decision_id = submit(server, payout())["decision_id"]
    detail = problem(approve(server, "founder", decision_id, {"comment": "no key"}), 403, "passkey_required")
    assert "passkey" in detail and "console" in detail
    problem(approve(server, "founder", decision_id), 403, "passkey_required")
    assert audit(server, "approval", decision_id) == []


def test_an_l3_approval_needs_a_passkey_even_from_someone_without_one(server: Server) -> None:
    """`passkeys_required_for_l3`: a second founder who never registered one cannot approve L3."""
    from gateway.store import identities

    token = server.runtime.writer.run(lambda conn: identities.add_user(
        conn, server.runtime.ledger, "founder2@test.local", "founder", time.time(), "test"))[1]
    server.tokens["founder2"] = token
    decision_id = submit(server, payout())["decision_id"]
    problem(approve(server, "founder2", decision_id), 403, "passkey_required")
    # An L2 action needs none from a person without a passkey.
    l2 = submit(server, refund("a2", LARGE))["decision_id"]
    assert outcome(server, approve(server, "founder2", l2))["status"] == "executed"
    [entry] = audit(server, "approval", l2)
    assert "passkey" not in entry["data"]


def test_a_person_with_a_passkey_signs_every_approval(server: Server) -> None:
    auth = register(server, APPROVER)
    decision_id = submit(server, refund("a2", LARGE))["decision_id"]
    problem(approve(server, "approver", decision_id), 403, "passkey_required")
    done = outcome(server, approve(server, "approver", decision_id, signed(server, auth, APPROVER, decision_id)))
    assert done["status"] == "executed"
    [entry] = audit(server, "approval", decision_id)
    assert entry["data"]["passkey"]["credential_id"] == auth.id


def test_an_assertion_for_another_decision_or_person_is_refused(
    server: Server, founder_key: SoftwareAuthenticator
) -> None:
    first, second = submit(server, payout())["decision_id"], submit(server, payout())["decision_id"]
    for_first = signed(server, founder_key, FOUNDER, first)
    detail = problem(approve(server, "founder", second, for_first), 403, "passkey_invalid")
    assert "another approval" in detail
    assert audit(server, "approval", second) == []

    # The founder's passkey in another founder's hands.
    rp_id, origin = relying_party(server)
    challenge_for_second = approval_challenge(second, _packet_hash(server, second), _digest(server, second),
                                              "founder2@test.local")
    theirs = {"passkey": json.loads(founder_key.get_for(challenge_for_second, rp_id, origin))}
    if "founder2" in server.tokens:
        assert "not registered to" in problem(approve(server, "founder2", second, theirs), 403, "passkey_invalid")

    # A bad signature, a replay of a used assertion, an unknown passkey.
    body = signed(server, founder_key, FOUNDER, second)
    forged = json.loads(json.dumps(body))
    signature = bytearray(unb64url(forged["passkey"]["response"]["signature"]))
    signature[-1] ^= 1
    forged["passkey"]["response"]["signature"] = b64url(bytes(signature))
    assert "does not verify" in problem(approve(server, "founder", second, forged), 403, "passkey_invalid")
    stranger = SoftwareAuthenticator()
    unknown = {"passkey": json.loads(stranger.get_for(approval_challenge(
        second, _packet_hash(server, second), _digest(server, second), FOUNDER.email), rp_id, origin))}
    assert "not registered" in problem(approve(server, "founder", second, unknown), 403, "passkey_invalid")
    assert outcome(server, approve(server, "founder", second, body))["status"] == "executed"
    replay = approve(server, "founder", first, body)
    problem(replay, 403, "passkey_invalid")
    # The console's options for a decision that does not exist
    from gateway.pipeline.errors import DecisionNotFound

    with pytest.raises(DecisionNotFound):
        server.runtime.approvals.approval_options(FOUNDER, "dec_missing", rp_id)


def test_a_malformed_passkey_body_is_a_422(server: Server) -> None:
    decision_id = submit(server, refund("a2", LARGE))["decision_id"]
    response = approve(server, "approver", decision_id, {"passkey": {"id": "x"}})
    problem(response, 422, "invalid_request")


def _packet_hash(server: Server, decision_id: str) -> str:
    [decided] = audit(server, "decision", decision_id)
    return str(decided["data"]["packet_hash"])


def _digest(server: Server, decision_id: str) -> str:
    return str(server.client("founder").get(f"/v1/actions/{decision_id}").json()["policy_digest"])


# ------------------------------------------------------------------------------ auditing offline


def rewrite(folder: Path, out: Path, server: Server, edit: Callable[[list[dict[str, Any]]], None]) -> Path:
    """`folder` with its entries edited, re-chained, re-hashed and re-signed with the log's own
    key: what an operator holding the signing key could produce."""
    entries = [json.loads(line) for line in (folder / "entries.jsonl").read_bytes().splitlines()]
    edit(entries)
    prev, acc, lines = GENESIS_PREV, MerkleAccumulator(), []
    for entry in entries:
        entry["prev"] = prev
        raw = canonical_bytes(entry)
        lines.append(raw + b"\n")
        leaf = leaf_hash(raw)
        prev = leaf.hex()
        acc.append(leaf)
    (out / "checkpoints").mkdir(parents=True)
    (out / "entries.jsonl").write_bytes(b"".join(lines))
    shutil.copy(folder / "log.pub", out / "log.pub")
    origin = server.runtime.settings.log_origin
    note = sign_checkpoint(Checkpoint(origin, len(entries), acc.root()), server.runtime.signer)
    (out / "checkpoints" / f"{len(entries):012d}.note").write_text(note)
    return out


def test_warden_audit_verify_checks_the_signed_approvals_offline(
    server: Server, founder_key: SoftwareAuthenticator, tmp_path: Path
) -> None:
    unsigned = submit(server, refund("a2", LARGE))["decision_id"]  # approver2 has no passkey
    assert outcome(server, approve(server, "approver2", unsigned))["status"] == "executed"
    decision_id = submit(server, payout())["decision_id"]
    assert outcome(server, approve(server, "founder", decision_id,
                                   signed(server, founder_key, FOUNDER, decision_id)))["status"] == "executed"
    key = server.runtime.signer.verifier_key
    folder = export(server, tmp_path / "export")
    done = verify(folder, key)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(1 for e in map(json.loads, (folder / "entries.jsonl").read_text().splitlines())
                if e["kind"] == "approval" and "passkey" in e["data"])
    assert count >= 1
    noun = "approval" if count == 1 else "approvals"
    assert f"{count} passkey-signed {noun} verified" in done.stdout
    assert "(7)" in done.stdout

    seq = next(e["seq"] for e in map(json.loads, (folder / "entries.jsonl").read_text().splitlines())
               if e["kind"] == "approval" and e["subject"] == decision_id)

    # An altered signature, as found in the export: the verify command names the entry.
    tampered = with_altered_signature(folder, tmp_path / "tampered", seq)
    done = verify(tampered, key)
    assert done.returncode == 1, done.stdout
    assert f"FAILED at step (7)" in done.stdout and f"seq {seq}" in done.stdout
    assert "the passkey signature does not verify" in done.stdout

    # The same, re-hashed and re-signed with the log's key: only the passkey catches it.
    def flip_signature(entries: list[dict[str, Any]]) -> None:
        passkey = entries[seq]["data"]["passkey"]
        raw = bytearray(unb64url(passkey["signature"]))
        raw[8] ^= 1
        passkey["signature"] = b64url(bytes(raw))

    resigned = rewrite(folder, tmp_path / "resigned", server, flip_signature)
    done = verify(resigned, key)
    assert done.returncode == 1, done.stdout
    assert f"FAILED at step (7) — seq {seq}" in done.stdout or f"FAILED at step (7) - seq {seq}" in done.stdout
    assert "the passkey signature does not verify" in done.stdout
    assert verify(rewrite(folder, tmp_path / "untouched", server, lambda entries: None), key).returncode == 0

    # The founder's signature moved onto another decision's approval: replayed, refused offline.
    other = next(e for e in map(json.loads, (folder / "entries.jsonl").read_text().splitlines())
                 if e["kind"] == "approval" and e["subject"] == unsigned)

    def move_signature(entries: list[dict[str, Any]]) -> None:
        target = entries[other["seq"]]["data"]
        target["passkey"] = entries[seq]["data"]["passkey"]
        target["approver"] = FOUNDER.email

    moved = rewrite(folder, tmp_path / "moved", server, move_signature)
    done = verify(moved, key)
    assert done.returncode == 1, done.stdout
    assert f"seq {other['seq']}" in done.stdout and "the signed challenge is for another approval" in done.stdout


# ------------------------------------------------------------------------------ the store


def test_registering_listing_and_revoking_passkeys(server: Server) -> None:
    runtime, email = server.runtime, "owner@test.local"
    rp_id, origin = relying_party(server)
    first, second = register(server, Person(email, "approver")), SoftwareAuthenticator()
    with runtime.db.connect() as conn:
        options, challenge = store.registration_options(conn, email, "Owner", rp_id, "Warden")
    parsed = json.loads(options)
    assert [c["id"] for c in parsed["excludeCredentials"]] == [first.id]
    assert [p["alg"] for p in parsed["pubKeyCredParams"]] == [-7, -8, -257]
    assert parsed["authenticatorSelection"]["residentKey"] == "preferred"
    assert parsed["authenticatorSelection"]["userVerification"] == "preferred"
    with pytest.raises(store.PasskeyError):  # a response to another challenge
        runtime.writer.run(lambda conn: store.register_passkey(
            conn, runtime.ledger, email, second.create_for(b"other", rp_id, origin), challenge, rp_id, origin, 0.0))
    runtime.writer.run(lambda conn: store.register_passkey(
        conn, runtime.ledger, email, second.create(options, origin), challenge, rp_id, origin, time.time()))
    with pytest.raises(store.PasskeyError, match="registered already"):
        runtime.writer.run(lambda conn: store.register_passkey(
            conn, runtime.ledger, email, second.create(options, origin), challenge, rp_id, origin, time.time()))
    with runtime.db.connect() as conn:
        assert {p.credential_id for p in store.list_passkeys(conn, email)} == {first.id, second.id}
        options = store.authentication_options(conn, email, b"c" * 32, rp_id)
    assert {c["id"] for c in json.loads(options)["allowCredentials"]} == {first.id, second.id}

    runtime.writer.run(lambda conn: store.revoke_passkey(conn, runtime.ledger, email, first.id, "founder@test.local",
                                                         time.time()))
    [revoked] = [e for e in audit(server, "passkey_revoked") if e["data"]["credential_id"] == first.id]
    assert (revoked["actor"], revoked["subject"], revoked["data"]) == (
        "founder@test.local", email, {"email": email, "credential_id": first.id})
    with runtime.db.connect() as conn:
        assert store.has_passkey(conn, email)
        assert [p.active for p in store.list_passkeys(conn, email) if p.credential_id == first.id] == [False]
    with pytest.raises(store.PasskeyError):
        runtime.writer.run(lambda conn: store.revoke_passkey(conn, runtime.ledger, email, first.id, email, 0.0))
    runtime.writer.run(lambda conn: store.revoke_passkey(conn, runtime.ledger, email, second.id, email, time.time()))
    with runtime.db.connect() as conn:
        assert not store.has_passkey(conn, email)
        # A revoked passkey signs nothing.
        with pytest.raises(store.PasskeyError, match="revoked"):
            store.verify_approval_assertion(conn, email, first.get_for(b"c" * 32, rp_id, origin), b"c" * 32,
                                            rp_id, origin)


def test_the_relying_party_is_public_url_else_the_request() -> None:
    from gateway.store.passkeys import relying_party as derive

    assert derive("http://127.0.0.1:8080/") == ("127.0.0.1", "http://127.0.0.1:8080")
    assert derive("https://Warden.Example.com/") == ("warden.example.com", "https://warden.example.com")
    assert derive("http://127.0.0.1:8080/", "https://warden.example.com/console/") == \
        ("warden.example.com", "https://warden.example.com")
    assert derive("http://x/", "https://warden.example.com:8443") == ("warden.example.com", "https://warden.example.com:8443")
    assert derive("http://x/", "http://localhost:80") == ("localhost", "http://localhost")
