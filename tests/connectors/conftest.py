"""Fixtures for the connector tests.

- `EXAMPLES`: one valid params dict per catalog tool, in catalog order (`example_params`).
- `registry`: a sandbox registry over a call ledger file in the test's tmp dir (closed after).
- `reopen`: another registry (or ledger) over the same file, as a second gateway process or a
  restarted one would open it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import Registry, SandboxCallLedger, build_registry
from connectors.registry import SANDBOX_CALLS_FILE

EXAMPLES: dict[str, dict[str, Any]] = {
    "stripe.refund": {"charge": "ch_3PqX", "amount": 2500, "currency": "usd",
                      "reason": "requested_by_customer"},
    "stripe.transfer": {"destination": "acct_1Nv0FG", "amount": 120000, "currency": "usd",
                        "description": "invoice 2024-118"},
    "stripe.payout": {"amount": 250000, "currency": "usd", "creator_id": "cr_19"},
    "stripe.reverse_transfer": {"transfer": "tr_1Nv0FGexample", "amount": 20000},
    "shopify.update_price": {"product_id": "p_88", "variant_id": "v_88_1", "old_price": 4000,
                             "new_price": 2999, "currency": "usd"},
    "shopify.publish_listing": {"title": "Linen throw blanket",
                                "body_html": "<p>Stonewashed linen, 130 x 170 cm.</p>",
                                "price": 8900, "currency": "usd"},
    "shopify.create_discount": {"code": "SPRING15", "percent_off": 15,
                                "starts_at": "2026-05-01T00:00:00Z",
                                "ends_at": "2026-05-31T23:59:59Z"},
    "shopify.adjust_inventory": {"variant_id": "v1", "delta": 20, "unit_cost": 500,
                                 "currency": "usd"},
    "shopify.unpublish_listing": {"product_id": "8123456789012"},
    "shopify.delete_discount": {"discount_id": "gid://shopify/DiscountCodeNode/1057371022"},
    "crm.log_note": {"record_id": "c_1", "body": "Called back, wants a quote for 40 units."},
    "crm.upsert_contact": {"email": "ada@example.com",
                           "properties": {"firstname": "Ada", "lifecyclestage": "lead"}},
    "crm.update_deal_stage": {"deal_id": "d_1", "stage": "qualified", "amount": 1500000},
    "crm.delete_contact": {"contact_ids": ["c_1", "c_2", "c_3"]},
    "crm.send_business_case": {"deal_id": "d_1", "roi_multiple": 2.8, "payback_months": 7,
                               "assumptions": ["40 seats", "current churn 3%"]},
    "crm.delete_note": {"note_id": "4207001"},
}


@pytest.fixture
def example_params() -> dict[str, dict[str, Any]]:
    return {tool: dict(params) for tool, params in EXAMPLES.items()}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = build_registry("sandbox", data_dir=tmp_path)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def calls_file(tmp_path: Path) -> Path:
    return tmp_path / SANDBOX_CALLS_FILE


@pytest.fixture
def reopen(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    opened: list[Registry] = []

    def open_registry(**kwargs: Any) -> Registry:
        reg = build_registry("sandbox", data_dir=tmp_path, **kwargs)
        opened.append(reg)
        return reg

    yield open_registry
    for reg in opened:
        reg.close()


@pytest.fixture
def ledger_reader(calls_file: Path) -> Callable[[], SandboxCallLedger]:
    return lambda: SandboxCallLedger(calls_file)
