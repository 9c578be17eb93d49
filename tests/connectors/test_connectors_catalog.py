"""The catalog: the twelve tools of DESIGN.md, their specs, schemas and sandbox answers."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from connectors import (
    CATALOG,
    ExecutionResult,
    ParamsError,
    PermanentError,
    Registry,
    catalog_tool_names,
)
from dsl import builtin_policy_dir, compile_policy_dir, load_builtin_policies
from dsl.model import Risk

TOOL_NAMES = [spec.name for spec in CATALOG]
DESIGN_CATALOG = {  # DESIGN.md, "Tool catalog": name → (base risk, params, optional params)
    "stripe.refund": (Risk.L1, {"charge", "amount", "currency"}, {"reason", "stripe_account"}),
    "stripe.transfer": (Risk.L2, {"destination", "amount", "currency"},
                        {"description", "stripe_account"}),
    "stripe.payout": (Risk.L3, {"amount", "currency"},
                      {"destination", "creator_id", "stripe_account"}),
    "stripe.reverse_transfer": (Risk.L1, {"transfer"},  # compensates stripe.transfer
                                {"amount", "stripe_account"}),
    "shopify.update_price": (Risk.L1, {"product_id", "variant_id", "old_price", "new_price",
                                       "currency"}, set()),
    "shopify.publish_listing": (Risk.L1, {"title", "body_html", "price", "currency"},
                                {"product_id"}),
    "shopify.create_discount": (Risk.L1, {"code", "percent_off"}, {"starts_at", "ends_at"}),
    "shopify.adjust_inventory": (Risk.L1, {"variant_id", "delta", "unit_cost", "currency"},
                                 set()),
    "shopify.unpublish_listing": (Risk.L1, {"product_id"}, set()),  # compensate shopify tools
    "shopify.delete_discount": (Risk.L1, {"discount_id"}, set()),
    "crm.log_note": (Risk.L0, {"record_id", "body"}, set()),
    "crm.upsert_contact": (Risk.L1, {"email", "properties"}, set()),
    "crm.update_deal_stage": (Risk.L1, {"deal_id", "stage"}, {"amount"}),
    "crm.delete_contact": (Risk.L2, {"contact_ids"}, set()),
    "crm.send_business_case": (Risk.L1, {"deal_id", "roi_multiple", "payback_months",
                                         "assumptions"}, set()),
    "crm.delete_note": (Risk.L1, {"note_id"}, set()),  # compensates crm.log_note
}


def test_the_catalog_is_designs_in_its_order(registry: Registry) -> None:
    assert list(registry.specs) == list(DESIGN_CATALOG)
    assert registry.known_tools() == catalog_tool_names() == frozenset(DESIGN_CATALOG)
    assert registry.mode == "sandbox"
    assert registry.spec("stripe.refund") is registry.specs["stripe.refund"]
    assert registry.spec("stripe.refunds") is None


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_spec_matches_the_design(registry: Registry, tool: str) -> None:
    spec = registry.specs[tool]
    risk, required, optional = DESIGN_CATALOG[tool]
    schema = spec.params_schema()
    assert spec.base_risk == risk
    assert set(schema["required"]) == required
    assert set(schema["properties"]) == required | optional
    assert schema["additionalProperties"] is False
    assert spec.connector == tool.split(".")[0]
    assert spec.summary and "\n" not in spec.summary and len(spec.summary) <= 100
    assert spec.compensation, "every tool says how to undo it, or that it cannot be undone"


def test_reversibility_is_what_the_systems_allow(registry: Registry) -> None:
    irreversible = {name for name, spec in registry.specs.items() if not spec.reversible}
    assert irreversible == {"stripe.refund", "stripe.payout", "stripe.reverse_transfer",
                            "crm.delete_contact",
                            "crm.send_business_case", "crm.delete_note",
                            "shopify.unpublish_listing", "shopify.delete_discount"}
    assert "old_price" in registry.specs["shopify.update_price"].compensation
    assert "-delta" in registry.specs["shopify.adjust_inventory"].compensation
    assert "delete the note" in registry.specs["crm.log_note"].compensation


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_json_schema_is_json_and_documents_every_field(registry: Registry, tool: str) -> None:
    schema = json.loads(json.dumps(registry.specs[tool].params_schema()))
    assert schema["type"] == "object" and schema["description"]
    for name, field in schema["properties"].items():
        assert field.get("description"), f"{tool}.{name} has no description"
    money = {"amount", "old_price", "new_price", "price", "unit_cost"}
    for name in money & set(schema["properties"]):
        field = schema["properties"][name]
        field = next((f for f in field.get("anyOf", [field]) if f.get("type") == "integer"))
        assert field["maximum"] == 2**53 - 1 and field["minimum"] in (0, 1)
    if "currency" in schema["properties"]:
        assert schema["properties"]["currency"]["pattern"] == "^[a-z]{3}$"


# ---- policies and catalog never drift --------------------------------------------------------

@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_shipped_policies_give_each_tool_its_base_tier(registry: Registry, tool: str) -> None:
    policy_set = load_builtin_policies()
    tiers = [p.risk for p in policy_set.policies_for(tool) if p.enforced and p.risk is not None]
    assert tiers, f"no shipped policy gives {tool} a risk tier"
    assert max(tiers) == registry.specs[tool].base_risk


def test_shipped_policies_name_only_known_tools() -> None:
    policy_set = compile_policy_dir(builtin_policy_dir(), known_tools=catalog_tool_names())
    codes = {w.code for w in policy_set.warnings}
    assert not codes & {"unknown_tool", "glob_matches_nothing", "tool_without_risk"}


#: policy test cases whose params the gateway refuses before any policy reads them
INVALID_ON_PURPOSE = {"catalog.toml:listing_missing_body_denied": "body_html"}


def _shipped_params() -> list[tuple[str, str, dict[str, Any]]]:
    """Every example packet's and policy test case's params (but a case about an unknown tool)."""
    found = []
    for path in sorted((builtin_policy_dir() / "examples").glob("*.json")):
        action = json.loads(path.read_text())["action"]
        found.append((path.name, action["tool"], action["params"]))
    for path in sorted((builtin_policy_dir() / "tests").glob("*.toml")):
        for case in tomllib.loads(path.read_text())["case"]:
            found.append((f"{path.name}:{case['name']}", case["tool"], case["params"]))
    return [entry for entry in found if entry[1] in catalog_tool_names()]


@pytest.mark.parametrize(("where", "tool", "params"), _shipped_params(),
                         ids=[w for w, _, _ in _shipped_params()])
def test_shipped_example_packets_and_policy_cases_validate(
    registry: Registry, where: str, tool: str, params: dict[str, Any]
) -> None:
    if where in INVALID_ON_PURPOSE:  # the policy's own guard, behind the params check
        with pytest.raises(ParamsError) as caught:
            registry.validate(tool, params)
        assert caught.value.errors[0]["loc"] == [INVALID_ON_PURPOSE[where]]
    else:
        registry.validate(tool, params)


# ---- every tool answers like its API ---------------------------------------------------------

def _execute(registry: Registry, tool: str, params: dict[str, Any], key: str) -> ExecutionResult:
    return registry.execute(tool, registry.validate(tool, params), idempotency_key=key)


def test_stripe_answers_with_stripe_objects(
    registry: Registry, example_params: dict[str, dict[str, Any]]
) -> None:
    refund = _execute(registry, "stripe.refund", example_params["stripe.refund"], "k-re")
    body = refund.response
    assert re.fullmatch(r"re_[A-Za-z0-9]{24}", refund.external_id) and body["id"] == refund.external_id
    assert {k: body[k] for k in ("object", "amount", "charge", "currency", "status")} == {
        "object": "refund", "amount": 2500, "charge": "ch_3PqX", "currency": "usd",
        "status": "succeeded"}
    assert isinstance(body["created"], int) and body["reason"] == "requested_by_customer"
    assert refund.summary == {"refund": refund.external_id, "charge": "ch_3PqX", "amount": 2500,
                              "currency": "usd", "status": "succeeded"}
    assert refund.replayed is False

    transfer = _execute(registry, "stripe.transfer", example_params["stripe.transfer"], "k-tr")
    assert transfer.external_id.startswith("tr_") and transfer.response["object"] == "transfer"
    assert transfer.response["destination"] == "acct_1Nv0FG"
    assert transfer.summary["amount"] == 120000

    payout = _execute(registry, "stripe.payout", example_params["stripe.payout"], "k-po")
    assert payout.external_id.startswith("po_") and payout.response["object"] == "payout"
    assert payout.response["status"] == payout.summary["status"] == "pending"
    assert payout.response["metadata"] == {"creator_id": "cr_19"}

    # a transfer is undone by reversing it, within what is left of it
    undo = registry.compensation("stripe.transfer", example_params["stripe.transfer"],
                                 transfer.external_id, transfer.summary)
    part = _execute(registry, undo.tool, {**undo.params, "amount": 20000}, "k-trr")
    assert part.external_id.startswith("trr_") and part.response["object"] == "transfer_reversal"
    assert part.summary == {"transfer_reversal": part.external_id, "transfer": transfer.external_id,
                            "amount": 20000, "currency": "usd"}
    with pytest.raises(PermanentError) as too_much:
        _execute(registry, undo.tool, undo.params, "k-trr-all")
    assert too_much.value.code == "amount_too_large"
    assert _execute(registry, undo.tool, {"transfer": transfer.external_id},
                    "k-trr-rest").summary["amount"] == 100000
    with pytest.raises(PermanentError) as unknown:
        _execute(registry, undo.tool, {"transfer": "tr_neverpaid"}, "k-trr-unknown")
    assert unknown.value.code == "resource_missing"


def test_shopify_answers_with_admin_api_bodies(
    registry: Registry, example_params: dict[str, dict[str, Any]]
) -> None:
    price = _execute(registry, "shopify.update_price", example_params["shopify.update_price"], "a")
    variant = price.response["variant"]
    assert isinstance(variant["id"], int) and str(variant["id"]) == price.external_id
    assert variant["price"] == "29.99" and price.summary["old_price"] == "40.00"
    numeric = registry.validate("shopify.update_price", {**example_params["shopify.update_price"],
                                                         "variant_id": "44012345678901"})
    assert registry.execute("shopify.update_price", numeric, idempotency_key="b").external_id \
        == "44012345678901"

    listing = _execute(registry, "shopify.publish_listing",
                       {**example_params["shopify.publish_listing"], "body_html": "<p>" + "x" * 5000},
                       "c")
    product = listing.response["product"]
    assert isinstance(product["id"], int) and product["status"] == "active"
    assert product["variants"][0]["price"] == "89.00" and product["handle"] == "linen-throw-blanket"
    assert "body_html" not in listing.summary and len(json.dumps(listing.summary)) < 500

    discount = _execute(registry, "shopify.create_discount",
                        example_params["shopify.create_discount"], "d")
    rule, code = discount.response["price_rule"], discount.response["discount_code"]
    assert rule["value_type"] == "percentage" and rule["value"] == "-15.0"
    assert code["price_rule_id"] == rule["id"] and code["code"] == "SPRING15"
    assert discount.external_id == str(rule["id"])

    stock = example_params["shopify.adjust_inventory"]
    first = _execute(registry, "shopify.adjust_inventory", stock, "e")
    second = _execute(registry, "shopify.adjust_inventory", {**stock, "delta": -5}, "f")
    assert first.response["inventory_level"]["available"] == 120
    assert second.response["inventory_level"]["available"] == 115
    assert second.summary["delta"] == -5 and first.external_id == second.external_id


def test_crm_answers_with_crm_objects(
    registry: Registry, example_params: dict[str, dict[str, Any]]
) -> None:
    note = _execute(registry, "crm.log_note", example_params["crm.log_note"], "n")
    assert note.external_id.isdigit() and note.response["id"] == note.external_id
    assert note.response["properties"]["hs_note_body"].startswith("Called back")
    assert "body" not in note.summary and note.summary["record_id"] == "c_1"

    contact = example_params["crm.upsert_contact"]
    created = _execute(registry, "crm.upsert_contact", contact, "u1")
    updated = _execute(registry, "crm.upsert_contact",
                       {"email": "ADA@example.com", "properties": {"lifecyclestage": "customer",
                                                                   "vip": True}}, "u2")
    assert created.summary["new"] is True and updated.summary["new"] is False
    assert created.external_id == updated.external_id
    assert updated.response["properties"].items() >= {
        "firstname": "Ada", "vip": "true", "lifecyclestage": "customer",
        "email": "ada@example.com"}.items()

    deal = example_params["crm.update_deal_stage"]
    moved = _execute(registry, "crm.update_deal_stage", deal, "d1")
    won = _execute(registry, "crm.update_deal_stage", {"deal_id": "d_1", "stage": "closedwon"},
                   "d2")
    assert moved.response["properties"]["amount"] == "15000.00"
    assert won.summary["previous_stage"] == "qualified" and won.summary["stage"] == "closedwon"
    assert won.response["properties"]["dealstage"] == "closedwon"

    ids = [f"c_{i:04d}" for i in range(1000)]
    deleted = _execute(registry, "crm.delete_contact", {"contact_ids": ids}, "del")
    assert len(deleted.response["results"]) == 1000 and deleted.response["status"] == "COMPLETE"
    assert deleted.summary["archived"] == 1000 and len(deleted.summary["contact_ids"]) == 20

    case = _execute(registry, "crm.send_business_case", example_params["crm.send_business_case"],
                    "bc")
    assert case.response["properties"]["hs_status"] == "SENT"
    assert case.summary["roi_multiple"] == 2.8 and case.summary["assumptions"] == 2


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_every_tool_executes_once_and_records_the_call(
    registry: Registry, example_params: dict[str, dict[str, Any]], tool: str
) -> None:
    params = example_params[tool]
    if tool == "stripe.reverse_transfer":  # a reversal needs a transfer the sandbox made
        made = _execute(registry, "stripe.transfer", example_params["stripe.transfer"], "made")
        params = {**params, "transfer": made.external_id}
    result = _execute(registry, tool, params, f"key-{tool}")
    assert result.external_id and not result.replayed
    json.dumps(result.summary), json.dumps(result.response)
    (call,) = registry.call_ledger.calls(f"key-{tool}")
    assert (call.key, call.tool, call.replayed, call.external_id) == (
        f"key-{tool}", tool, False, result.external_id)
    assert call.response == result.response
