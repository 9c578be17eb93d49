"""Field types shared by the tools' params models, so every tool spells money and ids alike.

- Money is an integer in the currency's minor unit (cents), as Stripe does: `Amount` for money
  that moves (1 .. 2**53-1), `Price` for a price or a cost (0 allowed: a free sample, a product
  without a price yet). A whole-number float (`1999.0`) is accepted and becomes `1999`; a
  fraction, a string or a boolean is refused.
- `Currency` is an ISO 4217 code in lower case (`usd`), as Stripe writes it.
- `Number` is a finite number (int or float, never a boolean or a string).
- Ids are short printable strings without spaces.

The JSON Schema of these types is what `GET /v1/tools` shows agents, so every field of a params
model carries a `description`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StringConstraints

#: The largest integer a JSON double (and so any JavaScript client) carries exactly.
MAX_SAFE_INTEGER = 2**53 - 1


def _whole_number(value: Any) -> Any:
    """`1999.0` → `1999`; anything else goes on to strict int validation unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _strict_int(low: int, high: int = MAX_SAFE_INTEGER) -> Any:
    return Field(strict=True, ge=low, le=high)


# (the constraints come before the validator, so that the JSON Schema shows them)
Amount = Annotated[int, _strict_int(1), BeforeValidator(_whole_number)]
Price = Annotated[int, _strict_int(0), BeforeValidator(_whole_number)]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$", min_length=3, max_length=3)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


def whole_number(low: int, high: int) -> Any:
    """An integer type in low..high that also takes a whole-number float (`20.0`)."""
    return Annotated[int, _strict_int(low, high), BeforeValidator(_whole_number)]


#: Ids of objects in Shopify or the CRM: numeric ids, `gid://shopify/...`, or names like `c_42`.
GenericId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.:/]*$"),
]


class Params(BaseModel):
    """Base of every tool's params model: unknown fields are refused, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------- money display

#: ISO 4217 currencies whose minor unit is not the cent (Stripe's list of zero- and
#: three-decimal currencies).
_ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def minor_unit_exponent(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


def decimal_string(amount: int, currency: str) -> str:
    """Minor units as the decimal string Shopify's REST API uses: 2999 usd → "29.99"."""
    exponent = minor_unit_exponent(currency)
    return str(Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))
