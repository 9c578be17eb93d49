"""Receipts against a real gateway: a decision's inclusion in the signed log, verified with the
log's public key only; a tampered proof, a wrong key, a foreign leaf and a dry run fail."""

from __future__ import annotations


import pytest
from loops import run
from gateway_server import Server

from warden_sdk import AsyncWardenClient, ReceiptError, ReceiptNotReady, WardenClient
from warden_sdk.receipts import check_receipt, verify_receipt, verify_receipt_async

NOTE = {"record_id": "rec_receipt", "body": "receipt please"}
OTHER_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def public_key(gateway: Server) -> str:
    return str(gateway.runtime.signer.verifier_key)


def test_a_decision_has_a_receipt_that_verifies_with_the_public_key(client: WardenClient, gateway: Server) -> None:
    decision = client.act("crm.log_note", NOTE)
    receipt = verify_receipt(client, decision, public_key(gateway), wait=15)
    assert decision.audit is not None
    assert (receipt.seq, receipt.leaf_hash, receipt.decision_id) == (decision.audit.seq, decision.audit.leaf_hash,
                                                                     decision.decision_id)
    assert receipt.size > receipt.seq and receipt.origin == "warden.local/audit"
    assert receipt.checkpoint.startswith(f"warden.local/audit\n{receipt.size}\n")
    denied = client.submit("stripe.refund", {"charge": "ch_r", "amount": 100, "currency": "usd"},
                           evidence={"reconciled": False, "order_total": 100})
    assert denied.status == "denied"
    assert verify_receipt(client, denied, [OTHER_KEY, public_key(gateway)], wait=15).seq == denied.audit.seq  # type: ignore[union-attr]


def test_the_async_client_verifies_a_receipt(gateway: Server) -> None:
    async def scenario() -> int:
        async with AsyncWardenClient(gateway.base_url, gateway.tokens["a3"], "a3") as sdk:
            decision = await sdk.act("crm.log_note", NOTE)
            return (await verify_receipt_async(sdk, decision, public_key(gateway), wait=15)).seq

    assert run(scenario()) > 0


def test_a_tampered_proof_or_foreign_leaf_fails(client: WardenClient, gateway: Server) -> None:
    decision = client.act("crm.log_note", NOTE)
    receipt = verify_receipt(client, decision, public_key(gateway), wait=15)
    assert decision.audit is not None
    proof = client.inclusion_proof(decision.audit.seq, receipt.size)
    assert proof["proof"], "a log this size has a non-empty path"
    check_receipt(decision, receipt.checkpoint, proof, public_key(gateway))

    flipped = dict(proof, proof=[format(int(proof["proof"][0], 16) ^ 1, "064x"), *proof["proof"][1:]])
    with pytest.raises(ReceiptError, match="computed root does not match"):
        check_receipt(decision, receipt.checkpoint, flipped, public_key(gateway))
    with pytest.raises(ReceiptError, match="shorter than the path"):
        check_receipt(decision, receipt.checkpoint, dict(proof, proof=proof["proof"][:-1]), public_key(gateway))
    with pytest.raises(ReceiptError, match="not entry"):
        check_receipt(decision, receipt.checkpoint, dict(proof, seq=proof["seq"] - 1), public_key(gateway))
    with pytest.raises(ReceiptError, match="malformed"):
        check_receipt(decision, receipt.checkpoint, dict(proof, proof=["zz"]), public_key(gateway))

    forged_leaf = decision.audit.model_copy(update={"leaf_hash": "00" * 32})
    forged = decision.model_copy(update={"audit": forged_leaf})
    with pytest.raises(ReceiptError, match="leaf hash is not the decision's"):
        verify_receipt(client, forged, public_key(gateway))


def test_a_wrong_key_or_an_altered_checkpoint_fails(client: WardenClient, gateway: Server) -> None:
    decision = client.act("crm.log_note", NOTE)
    with pytest.raises(ReceiptError, match="no valid signature from a known key"):
        verify_receipt(client, decision, OTHER_KEY, wait=15)
    receipt = verify_receipt(client, decision, public_key(gateway), wait=15)
    proof = client.inclusion_proof(receipt.seq, receipt.size)
    origin, size, root, rest = receipt.checkpoint.split("\n", 3)
    altered = "\n".join([origin, size, "A" + root[1:] if root[0] != "A" else "B" + root[1:], rest])
    with pytest.raises(ReceiptError, match="invalid signature"):
        check_receipt(decision, altered, proof, public_key(gateway))
    with pytest.raises(ReceiptError, match="public key"):
        verify_receipt(client, decision, "not-a-key")


def test_no_receipt_without_a_record_or_a_checkpoint(client: WardenClient, gateway: Server) -> None:
    dry = client.evaluate("crm.log_note", NOTE)
    with pytest.raises(ReceiptError, match="not recorded"):
        verify_receipt(client, dry, public_key(gateway))
    decision = client.act("crm.log_note", NOTE)
    assert decision.audit is not None
    beyond = decision.model_copy(update={"audit": decision.audit.model_copy(update={"seq": 10**9})})
    with pytest.raises(ReceiptNotReady, match="no signed checkpoint covers entry 1000000000"):
        verify_receipt(client, beyond, public_key(gateway), wait=0.3)
