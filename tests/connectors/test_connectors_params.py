"""Params validation: what each tool accepts, what it refuses, and how the refusal reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import CATALOG, ParamsError, PermanentError, Registry, build_registry

TOOL_NAMES = [spec.name for spec in CATALOG]

# (tool, change to the example params, the field the first error names, the error type)
BAD = [
    ("stripe.refund", {"amount": 0}, "amount", "greater_than_equal"),
    ("stripe.refund", {"amount": 2**53}, "amount", "less_than_equal"),
    ("stripe.refund", {"amount": 25.5}, "amount", "int_type"),
    ("stripe.refund", {"amount": "2500"}, "amount", "int_type"),
    ("stripe.refund", {"amount": True}, "amount", "int_type"),
    ("stripe.refund", {"currency": "USD"}, "currency", "string_pattern_mismatch"),
    ("stripe.refund", {"currency": "usdx"}, "currency", "string_too_long"),
    ("stripe.refund", {"charge": "cus_1"}, "charge", "string_pattern_mismatch"),
    ("stripe.refund", {"reason": "because"}, "reason", "literal_error"),
    ("stripe.refund", {"refund_application_fee": True}, "refund_application_fee",
     "extra_forbidden"),
    ("stripe.transfer", {"destination": "ba_1"}, "destination", "string_pattern_mismatch"),
    ("stripe.transfer", {"description": "x" * 1001}, "description", "string_too_long"),
    ("stripe.payout", {"destination": "acct_1"}, "destination", "string_pattern_mismatch"),
    ("shopify.update_price", {"new_price": -1}, "new_price", "greater_than_equal"),
    ("shopify.update_price", {"variant_id": ""}, "variant_id", "string_too_short"),
    ("shopify.update_price", {"variant_id": "v 1"}, "variant_id", "string_pattern_mismatch"),
    ("shopify.publish_listing", {"title": ""}, "title", "string_too_short"),
    ("shopify.publish_listing", {"body_html": "x" * 60_001}, "body_html", "string_too_long"),
    ("shopify.create_discount", {"percent_off": 100.5}, "percent_off", "less_than_equal"),
    ("shopify.create_discount", {"percent_off": -1}, "percent_off", "greater_than_equal"),
    ("shopify.create_discount", {"percent_off": float("nan")}, "percent_off", "finite_number"),
    ("shopify.create_discount", {"starts_at": "2026-05-01T00:00:00"}, "starts_at",
     "timezone_aware"),
    ("shopify.create_discount", {"ends_at": "2026-04-01T00:00:00Z"}, "", "value_error"),
    ("shopify.create_discount", {"code": "SPRING 15"}, "code", "string_pattern_mismatch"),
    ("shopify.adjust_inventory", {"delta": 0}, "", "value_error"),
    ("shopify.adjust_inventory", {"delta": 2.5}, "delta", "int_type"),
    ("crm.log_note", {"body": ""}, "body", "string_too_short"),
    ("crm.upsert_contact", {"email": "ada.example.com"}, "email", "string_pattern_mismatch"),
    ("crm.upsert_contact", {"properties": {"First Name": "Ada"}}, "properties.First Name.[key]",
     "string_pattern_mismatch"),
    ("crm.upsert_contact", {"properties": {"tags": ["a"]}}, "properties.tags", "string_type"),
    ("crm.update_deal_stage", {"stage": "closed won"}, "stage", "string_pattern_mismatch"),
    ("crm.delete_contact", {"contact_ids": []}, "contact_ids", "too_short"),
    ("crm.delete_contact", {"contact_ids": [f"c_{i}" for i in range(1001)]}, "contact_ids",
     "too_long"),
    ("crm.delete_contact", {"contact_ids": ["c_1", "c_1"]}, "contact_ids", "value_error"),
    ("crm.delete_contact", {"contact_ids": "c_1"}, "contact_ids", "list_type"),
    ("crm.send_business_case", {"roi_multiple": -0.5}, "roi_multiple", "greater_than_equal"),
    ("crm.send_business_case", {"assumptions": ["x" * 501]}, "assumptions.0",
     "string_too_long"),
]


@pytest.fixture(scope="module")
def memory_registry() -> Any:
    reg = build_registry("sandbox", data_dir=None)
    yield reg
    reg.close()


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_the_examples_validate_and_come_back_normalised(
    memory_registry: Registry, example_params: dict[str, dict[str, Any]], tool: str
) -> None:
    params = example_params[tool]
    clean = memory_registry.validate(tool, params)
    assert json.loads(json.dumps(clean)) == clean
    assert set(clean) == {k for k, v in params.items() if v is not None}
    assert memory_registry.validate(tool, clean) == clean  # normalising twice changes nothing


def test_absent_optional_fields_stay_absent(memory_registry: Registry) -> None:
    # policies test presence with has(params.amount): a default must not appear as a value
    clean = memory_registry.validate("crm.update_deal_stage",
                                     {"deal_id": "d_1", "stage": "won", "amount": None})
    assert clean == {"deal_id": "d_1", "stage": "won"}


def test_whole_number_floats_become_integers(memory_registry: Registry) -> None:
    clean = memory_registry.validate("shopify.update_price", {
        "product_id": "p1", "variant_id": "v1", "old_price": 1999.0, "new_price": 2150,
        "currency": "usd"})
    assert clean["old_price"] == 1999 and isinstance(clean["old_price"], int)


@pytest.mark.parametrize(("tool", "change", "field", "kind"), BAD,
                         ids=[f"{t}-{f or 'model'}-{k}" for t, _, f, k in BAD])
def test_bad_params_are_refused_naming_the_field(
    memory_registry: Registry, example_params: dict[str, dict[str, Any]],
    tool: str, change: dict[str, Any], field: str, kind: str,
) -> None:
    with pytest.raises(ParamsError) as caught:
        memory_registry.validate(tool, {**example_params[tool], **change})
    errors = caught.value.errors
    assert json.loads(json.dumps(errors)) == errors
    assert all(set(e) == {"loc", "msg", "type"} for e in errors)
    where = ".".join(map(str, errors[0]["loc"]))
    assert where == field or where.startswith(field + ".")
    assert errors[0]["type"] == kind
    assert caught.value.tool == tool and tool in str(caught.value)


def test_missing_fields_are_all_listed(memory_registry: Registry) -> None:
    with pytest.raises(ParamsError, match=r"stripe.refund: charge: Field required \(and 2 more\)"):
        memory_registry.validate("stripe.refund", {})
    try:
        memory_registry.validate("stripe.refund", {})
    except ParamsError as exc:
        assert [(e["loc"], e["type"]) for e in exc.errors] == [
            (["charge"], "missing"), (["amount"], "missing"), (["currency"], "missing")]


def test_the_error_list_never_echoes_the_input(memory_registry: Registry) -> None:
    secret = "sk_live_" + "x" * 40
    with pytest.raises(ParamsError) as caught:
        memory_registry.validate("crm.log_note", {"record_id": "c_1", "body": "b",
                                                  "api_key": secret})
    assert secret not in json.dumps(caught.value.errors) and secret not in str(caught.value)


@pytest.mark.parametrize("params", [None, [], "charge=ch_1", 42, [("charge", "ch_1")]])
def test_params_that_are_not_an_object_are_refused(memory_registry: Registry,
                                                   params: Any) -> None:
    with pytest.raises(ParamsError) as caught:
        memory_registry.validate("stripe.refund", params)
    assert caught.value.errors[0]["loc"] == []


def test_an_unknown_tool_is_a_params_error_and_never_executes(memory_registry: Registry) -> None:
    with pytest.raises(ParamsError) as caught:
        memory_registry.validate("stripe.delete_customer", {"customer": "cus_1"})
    assert caught.value.errors == [{"loc": ["tool"], "msg": "unknown tool "
                                    "'stripe.delete_customer'", "type": "unknown_tool"}]
    with pytest.raises(PermanentError) as refused:
        memory_registry.execute("stripe.delete_customer", {}, idempotency_key="k")
    assert refused.value.code == "unknown_tool"


def test_execute_validates_again(memory_registry: Registry) -> None:
    with pytest.raises(PermanentError) as refused:
        memory_registry.execute("stripe.refund", {"charge": "ch_1", "amount": -5,
                                                  "currency": "usd"}, idempotency_key="k-bad")
    assert refused.value.code == "invalid_params" and "amount" in str(refused.value)
    assert memory_registry.call_ledger.calls("k-bad") == []


# ---- property: validate answers with params or a ParamsError, never anything else -------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(sorted({name for spec in CATALOG
                                       for name in spec.params.model_fields})) | st.text(max_size=8)


_cases = st.tuples(
    st.sampled_from(TOOL_NAMES),
    st.booleans(),  # start from the tool's example params, or from nothing
    st.dictionaries(_field_names, _json, max_size=5),  # fields changed or added
    st.none() | _json,  # sometimes: not an object at all
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(case=_cases)
def test_any_params_validate_or_raise_params_error(
    memory_registry: Registry, example_params: dict[str, dict[str, Any]],
    case: tuple[str, bool, dict[str, Any], Any],
) -> None:
    tool, from_example, changes, whole = case
    params: Any = {**(example_params[tool] if from_example else {}), **changes}
    if whole is not None and not from_example:
        params = whole
    try:
        clean = memory_registry.validate(tool, params)
    except ParamsError as exc:
        assert exc.errors and json.loads(json.dumps(exc.errors)) == exc.errors
    else:
        assert json.loads(json.dumps(clean)) == clean
        assert memory_registry.validate(tool, clean) == clean
