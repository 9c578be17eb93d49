"""How a packet reads to a person: money in currency units, a one-line summary per tool, the
params as rows, times, and the decision's place in the risk × autonomy matrix.

Money is an integer in the currency's minor unit (DESIGN.md); `money(72000, "usd")` is `$720.00`
and `money(500, "jpy")` is `¥500` (zero-decimal currencies have no minor unit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dsl.model import Autonomy, Risk
from gateway.engine.matrix import needs_approval
from gateway.pipeline.submit import COMPENSATION_KEY

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "chf": "CHF ", "inr": "₹"}
#: Stripe's zero-decimal currencies: the amount is already in whole units.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                          "vuv", "xaf", "xof", "xpf"})
#: Params that hold money in minor units, read with the packet's `currency`.
MONEY_PARAMS = frozenset({"amount", "price", "old_price", "new_price", "unit_cost"})


def money(amount: Any, currency: Any) -> str:
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
        return str(amount)
    code = currency.lower()
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    number = f"{value:,}" if code in ZERO_DECIMAL else f"{value // 100:,}.{value % 100:02d}"
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code.upper()}"


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(tool: str, params: dict[str, Any]) -> str:
    """One line an approver reads first: "refund $720.00 on ch_3PqX"."""
    p = params if isinstance(params, dict) else {}
    cur = p.get("currency")

    def m(key: str) -> str:
        return money(p.get(key), cur)

    match tool:
        case "stripe.refund":
            return f"refund {m('amount')} on {_short(p.get('charge'))}"
        case "stripe.transfer":
            return f"transfer {m('amount')} to {_short(p.get('destination'))}"
        case "stripe.payout":
            to = p.get("creator_id") or p.get("destination")
            return f"pay out {m('amount')}" + (f" to {_short(to)}" if to else "")
        case "shopify.update_price":
            change = ""
            old, new = p.get("old_price"), p.get("new_price")
            if isinstance(old, int) and isinstance(new, int) and old > 0:
                change = f" ({(new - old) / old:+.0%})"
            return f"price of {_short(p.get('variant_id'))}: {m('old_price')} → {m('new_price')}{change}"
        case "shopify.publish_listing":
            return f"publish “{_short(p.get('title'))}” at {m('price')}"
        case "shopify.create_discount":
            return f"discount code {_short(p.get('code'))}: {p.get('percent_off')}% off"
        case "shopify.adjust_inventory":
            delta = p.get("delta")
            shown = f"{delta:+}" if isinstance(delta, int) else str(delta)
            return f"inventory of {_short(p.get('variant_id'))} {shown} at {m('unit_cost')} each"
        case "crm.log_note":
            return f"note on {_short(p.get('record_id'))}"
        case "crm.upsert_contact":
            return f"create or update contact {_short(p.get('email'))}"
        case "crm.update_deal_stage":
            return f"move deal {_short(p.get('deal_id'))} to {_short(p.get('stage'))}"
        case "crm.delete_contact":
            ids = p.get("contact_ids")
            return f"delete {len(ids) if isinstance(ids, list) else '?'} contacts"
        case "crm.send_business_case":
            return f"business case for deal {_short(p.get('deal_id'))}: {p.get('roi_multiple')}× ROI"
    first = ", ".join(f"{k}={_short(v, 24)}" for k, v in list(p.items())[:3])
    return f"{tool} {first}".strip()


def compensates(packet: Any) -> str | None:
    """The decision a compensating packet undoes (`context.compensation.of`, which only Warden
    sets), or None for any other packet."""
    context = packet.get("context") if isinstance(packet, dict) else None
    marker = context.get(COMPENSATION_KEY) if isinstance(context, dict) else None
    undone = marker.get("of") if isinstance(marker, dict) else None
    return undone if isinstance(undone, str) and len(undone) <= 64 else None


def param_rows(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value as shown, raw value) for each param; money converted to currency units."""
    cur = params.get("currency") if isinstance(params, dict) else None
    rows = []
    for key, value in (params.items() if isinstance(params, dict) else ()):
        raw = value if isinstance(value, str) else json_text(value)  # a text is shown once, as sent
        if key in MONEY_PARAMS and isinstance(cur, str) and isinstance(value, int):
            shown = money(value, cur)
        elif isinstance(value, (dict, list)):
            shown = raw
        else:
            shown = str(value)
        rows.append((key, shown, raw))
    return rows


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=None if not isinstance(value, (dict, list)) else 2)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested evidence as `reconciliation.status = matched` rows."""
    if isinstance(value, dict) and value:
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix or "(value)", json_text(value))]


def iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def matrix(autonomy: str, risk: str) -> dict[str, Any]:
    """The risk × autonomy table of DESIGN.md with this decision's cell marked."""
    rows = []
    for level in Autonomy:
        cells = []
        for tier in Risk:
            if level == Autonomy.A0:
                outcome = "drafted"
            elif tier == Risk.L3:
                outcome = "founder approval"
            elif needs_approval(level, tier):
                outcome = "approval"
            else:
                outcome = "execute"
            cells.append({"risk": tier.name, "outcome": outcome, "here": level.name == autonomy and tier.name == risk})
        rows.append({"autonomy": level.name, "cells": cells})
    return {"risks": [tier.name for tier in Risk], "rows": rows}
