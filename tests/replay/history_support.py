"""A generated history, recorded through the real API: agents at every autonomy level, every
tool family, amounts on both sides of the shipped thresholds, evidence missing or contradicting
the claims, a kill switch engaged and released, approvals and rejections, and a policy change
in the middle (so decisions name two policy sets)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_server import Server, edit_policy, packet

#: The refund rule the history's policy change moves (the shipped threshold, then a lower one).
REFUND_RULE = "escalate large_refund L2 when params.amount > 50000"
LOWERED_RULE = "escalate large_refund L2 when params.amount > 40000"


@dataclass
class History:
    server: Server
    policies: Path
    decisions: list[dict[str, Any]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    packets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of_status(self, status: str) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["status"] == status]


def _packet(rng: random.Random, agent: str, n: int) -> dict[str, Any]:
    kind = max(0, rng.randrange(-2, 7))  # refunds three times as often as any other tool
    pid = f"h-{n}"
    if kind == 0:
        amount = rng.choice([1_000, 39_999, 45_000, 50_000, 50_001, 120_000, 600_000])
        evidence: dict[str, Any] = {"reconciled": rng.random() > 0.15, "order_total": amount}
        claims = [{"id": "refund_reconciled", "status": "PASS"}] if rng.random() > 0.5 else []
        return packet(agent, "stripe.refund", {"charge": f"ch_{n % 9}", "amount": amount, "currency": "usd"},
                      packet_id=pid, evidence=evidence, claims=claims)
    if kind == 1:
        return packet(agent, "stripe.payout", {"amount": rng.choice([5_000, 2_000_000]), "currency": "eur"},
                      packet_id=pid, evidence={"reconciliation": {"status": rng.choice(["matched", "pending"])},
                                               "risk_score": rng.choice([0.1, 0.5]), "cash_runway_days": 90})
    if kind == 2:
        old = 2_000
        return packet(agent, "shopify.update_price",
                      {"product_id": "p1", "variant_id": f"v{n % 5}", "old_price": old,
                       "new_price": rng.choice([1_500, 1_900, 2_100, 2_600]), "currency": "usd"},
                      packet_id=pid, evidence={"projected_margin": rng.choice([0.1, 0.2, 0.3])})
    if kind == 3:
        return packet(agent, "shopify.create_discount", {"code": f"SAVE{n}", "percent_off": rng.choice([10, 35, 45])},
                      packet_id=pid, evidence={"projected_margin": 0.25})
    if kind == 4:
        return packet(agent, "crm.delete_contact",
                      {"contact_ids": [f"c{i}" for i in range(rng.choice([1, 3, 150]))]}, packet_id=pid)
    if kind == 5:
        return packet(agent, "stripe.transfer",
                      {"destination": "acct_1", "amount": rng.choice([10_000, 90_000]), "currency": "usd"},
                      packet_id=pid, evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.1,
                                               "cash_runway_days": rng.choice([10, 60])})
    return packet(agent, "crm.log_note", {"record_id": f"rec_{n}", "body": "called the customer"}, packet_id=pid)


def _submit(server: Server, history: History, agent: str, body: dict[str, Any]) -> None:
    answer = server.client(agent).post("/v1/actions", json=body)
    assert answer.status_code in (200, 202), answer.text
    history.decisions.append(answer.json())
    history.packets[answer.json()["decision_id"]] = body


def generate(server: Server, policies: Path, *, seed: int, count: int = 80) -> History:
    rng = random.Random(seed)
    history = History(server, policies)
    agents = ["a0", "a1", "a2", "a3", "a4", "a2", "a3"]
    for n in range(count // 2):
        agent = rng.choice(agents)
        _submit(server, history, agent, _packet(rng, agent, n))
    # a few decisions under an engaged kill switch
    founder = server.client("founder")
    assert founder.post("/v1/kill-switch", json={"engaged": True, "reason": "drill"}).status_code == 200
    for n in range(count // 2, count // 2 + 4):
        _submit(server, history, "a2", _packet(rng, "a2", n))
    assert founder.post("/v1/kill-switch", json={"engaged": False, "reason": "drill over"}).status_code == 200
    # a policy change: refunds need approval from $400 on
    edit_policy(policies / "payments.policy", REFUND_RULE, LOWERED_RULE)
    assert server.runtime.watcher is not None
    server.runtime.watcher.reload_now()
    for n in range(count // 2 + 4, count + 4):
        agent = rng.choice(agents)
        _submit(server, history, agent, _packet(rng, agent, n))
    # approvals and rejections of some pending decisions
    for decision in history.of_status("pending_approval")[:4]:
        who = "founder" if decision["approval"]["required_role"] == "founder" else "approver"
        action = "approve" if rng.random() > 0.3 else "reject"
        server.client(who).post(f"/v1/approvals/{decision['decision_id']}/{action}",
                                json={"comment": "checked"} if action == "approve" else {"reason": "no"})
    history.digests = sorted({d["policy_digest"] for d in history.decisions})
    return history
