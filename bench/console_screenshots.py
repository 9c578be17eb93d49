"""The console's screenshots in the README: the inbox and a decision, from a gateway with demo data.

    python bench/console_screenshots.py [--out docs/screenshots] [--keep-running]

Starts a gateway (uvicorn on loopback, SQLite in a temporary folder, sandbox connectors, the
console mounted; `tests/gateway_server.start_server`) with four agents and the people of a small
shop, then sends real packets through the HTTP API: history that executed or was denied, one
proof mismatch (an incident), and eight actions waiting for an approver, among them an L3 payout
that only a founder may approve. Signs the founder in through the form in Debian's Chromium
(Playwright, `/usr/bin/chromium`, the test suite's launch flags) at 1280x900 and saves
`inbox.png` and `decision.png` (the whole page of a $720 refund escalated to L2: its reasons
and invariants)
in `--out`. `--keep-running` then prints the console's address and the founder's password and
waits for Ctrl-C, to look around by hand.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as `python bench/X.py`, this folder comes first on sys.path, where `ledger.py` would hide the
# `ledger` package: the folder is taken off the path before anything else is imported.
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "console"))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from browser_support import free_port, launch_browser  # noqa: E402
from gateway.store import identities  # noqa: E402
from gateway_server import Server, packet, server_config, start_server  # noqa: E402

PASSWORD = "correct horse battery staple"
OWNER = "ops@shop.example"
AGENTS = {  # name: autonomy, tools
    "refund-bot": ("A2", ("stripe.refund",)),
    "treasury-bot": ("A3", ("stripe.*",)),
    "catalog-bot": ("A2", ("shopify.*",)),
    "crm-bot": ("A2", ("crm.*",)),
}
PEOPLE = {
    "founder": ("founder@shop.example", "founder"),
    "approver": ("maria@shop.example", "approver"),
    "ops": (OWNER, "approver"),
    "auditor": ("auditor@shop.example", "auditor"),
}


def setup(runtime: Any) -> dict[str, str]:
    tokens: dict[str, str] = {}

    def work(conn: Any) -> None:
        now = time.time()
        for name, (autonomy, tools) in AGENTS.items():
            _a, tokens[name] = identities.add_agent(conn, runtime.ledger, name, autonomy, tools, OWNER, now, "demo")
        for key, (email, role) in PEOPLE.items():
            _u, tokens[key] = identities.add_user(conn, runtime.ledger, email, role, now, "demo")
            identities.set_password(conn, runtime.ledger, email, PASSWORD, now, "demo")

    runtime.writer.run(work)
    return tokens


def refund(amount: int, charge: str, order: str, *, reconciled: bool = True, **kw: Any) -> dict[str, Any]:
    return packet("refund-bot", "stripe.refund", {"charge": charge, "amount": amount, "currency": "usd"},
                  evidence={"reconciled": reconciled, "order_id": order, "order_total": amount,
                            "customer_message": "The parcel arrived damaged; photos attached."}, **kw)


def demo_data(server: Server) -> str:
    """History, one incident, eight pending approvals; returns the id of the $720 refund."""
    sent: list[tuple[str, dict[str, Any]]] = [
        # history: executed and denied
        ("refund-bot", refund(2500, "ch_3PqL1", "#1041")),
        ("refund-bot", refund(4800, "ch_3PqL7", "#1046")),
        ("crm-bot", packet("crm-bot", "crm.log_note", {"record_id": "c_212", "body": "Called back, wants a quote for 40 units."})),
        ("crm-bot", packet("crm-bot", "crm.update_deal_stage", {"deal_id": "d_88", "stage": "qualified"})),
        ("catalog-bot", packet("catalog-bot", "shopify.update_price", {"product_id": "p_12", "variant_id": "v_12_1",
                                                                    "old_price": 4000, "new_price": 3800, "currency": "usd"},
                               evidence={"projected_margin": 0.31})),
        ("refund-bot", refund(600000, "ch_3PqM2", "#1050")),  # over the hard cap: denied
        ("refund-bot", refund(3100, "ch_3PqM9", "#1052", reconciled=False)),  # invariant fails: denied
        # a proof mismatch: the agent claims the reconciliation passed; Warden finds it did not
        ("refund-bot", refund(3900, "ch_3PqN4", "#1055", reconciled=False,
                              claims=[{"id": "refund_reconciled", "status": "PASS"}])),
        # waiting for an approver
        ("treasury-bot", packet("treasury-bot", "stripe.payout", {"amount": 250000, "currency": "usd", "creator_id": "cr_19"},
                                evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.08,
                                          "cash_runway_days": 94})),
        ("catalog-bot", packet("catalog-bot", "shopify.update_price", {"product_id": "p_88", "variant_id": "v_88_1",
                                                                    "old_price": 4000, "new_price": 2900, "currency": "usd"},
                               evidence={"projected_margin": 0.27})),
        ("crm-bot", packet("crm-bot", "crm.delete_contact", {"contact_ids": ["c_301", "c_302", "c_317"]},
                           evidence={"gdpr_request": "req_5521"})),
        ("catalog-bot", packet("catalog-bot", "shopify.adjust_inventory", {"variant_id": "v_40_2", "delta": 800,
                                                                        "unit_cost": 1200, "currency": "usd"},
                               evidence={"cash_runway_days": 90})),
        ("refund-bot", refund(64000, "ch_3PqP2", "#1061")),
        ("crm-bot", packet("crm-bot", "crm.update_deal_stage", {"deal_id": "d_91", "stage": "closed_won",
                                                             "amount": 7200000})),
        ("refund-bot", refund(52500, "ch_3PqQ8", "#1063")),
    ]
    for agent, body in sent:
        answer = server.client(agent).post("/v1/actions", json=body)
        assert answer.status_code in (200, 202), answer.text
    large = refund(72000, "ch_3PqR5", "#1066", claims=[{"id": "refund_reconciled", "status": "PASS"}])
    large["context"] = {"goal_id": "g-support-7", "task_id": "ticket-4412",
                        "reasoning": "Customer returned 3 of 4 items; order #1066 is reconciled."}
    answer = server.client("refund-bot").post("/v1/actions", json=large)
    assert answer.status_code == 202 and answer.json()["status"] == "pending_approval", answer.text
    return str(answer.json()["decision_id"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="warden-console-demo-") as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        settings = server_config(f"sqlite:///{tmp_path / 'warden.db'}", tmp_path, console=True,
                                 public_url=f"http://localhost:{port}", log_level="warning")
        server, stop = start_server(settings, setup=setup, port=port)
        try:
            decision_id = demo_data(server)
            time.sleep(0.5)  # executions recorded
            with sync_playwright() as playwright:
                browser = launch_browser(playwright)
                context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                                              timezone_id="UTC", color_scheme="light")
                context.set_default_timeout(10_000)
                page = context.new_page()
                page.goto(server.console_url + "login")
                page.get_by_label("Email").fill(PEOPLE["founder"][0])
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("button", name="Sign out")).to_be_visible()
                expect(page.locator(f"#row-{decision_id}")).to_be_visible()
                page.wait_for_timeout(500)
                page.screenshot(path=args.out / "inbox.png")
                page.goto(server.console_url + f"decisions/{decision_id}")
                expect(page.get_by_role("button", name="Approve")).to_be_visible()
                page.wait_for_timeout(300)
                page.screenshot(path=args.out / "decision.png", full_page=True)  # down to the invariants
                print(f"saved {args.out / 'inbox.png'} and {args.out / 'decision.png'}")
                browser.close()
            if args.keep_running:
                print(f"console: {server.console_url} (founder {PEOPLE['founder'][0]}, password {PASSWORD!r}); "
                      "Ctrl-C stops")
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
        finally:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
