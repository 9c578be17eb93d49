import os
from warden_sdk import Denied, StillPending, WardenClient, verify_receipt

warden = WardenClient(os.environ["WARDEN_URL"], os.environ["WARDEN_AGENT_TOKEN"], agent=os.environ["WARDEN_AGENT"])
try:
    decision = warden.act("stripe.refund", {"charge": "ch_3PqX", "amount": 2500, "currency": "usd"},
                          evidence={"order_total": 2500, "reconciled": True},
                          claims={"refund_reconciled": "PASS"}, timeout=600)
    print("refunded:", decision.execution.external_id if decision.execution else None)
    receipt = verify_receipt(warden, decision, open(os.environ["WARDEN_LOG_KEY"]).read(), wait=90)
    print("recorded at seq", receipt.seq, "in the log signed at size", receipt.size)
except Denied as refused:
    print("Warden said no:\n" + refused.decision.explain())
except StillPending as waiting:
    print("still waiting for an approver:", waiting.decision.decision_id)
