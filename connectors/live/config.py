"""What a live connector needs to reach its provider: addresses, credentials, limits.

Built by the gateway from its settings (credentials only from the environment or `*_FILE`). A
secret is never part of a config's repr, so a config can be logged or shown in an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Stripe's API version, pinned: every request sends it (`Stripe-Version`), whatever the
#: account's default.
STRIPE_API_VERSION = "2026-10-28.endive"
#: Shopify's Admin API version, pinned in every URL and checked against X-Shopify-API-Version.
SHOPIFY_API_VERSION = "2026-10"
#: HubSpot's CRM objects API: the base path, in one place (see README, "Going live").
CRM_API_PATH = "/crm/v3"


@dataclass(frozen=True)
class StripeConfig:
    api_key: str = field(repr=False)
    api_base: str = "https://api.stripe.com"
    #: a connected account to act on (Stripe Connect, sent as Stripe-Account); a packet's
    #: `stripe_account` param, where a tool has one, wins
    account: str | None = None
    #: retries inside the SDK: 0, since the outbox retries (with the same idempotency key)
    max_network_retries: int = 0


@dataclass(frozen=True)
class ShopifyConfig:
    shop: str  # example.myshopify.com
    access_token: str = field(repr=False)
    #: the shop's address; empty: https://{shop}
    api_base: str = ""
    #: the location stock is adjusted at (a gid or its number); empty: the shop's first location
    location_id: str = ""

    @property
    def base_url(self) -> str:
        return (self.api_base or f"https://{self.shop}").rstrip("/")


@dataclass(frozen=True)
class CrmConfig:
    access_token: str = field(repr=False)
    api_base: str = "https://api.hubapi.com"
    #: the client-side limit: HubSpot allows 100 (free, starter) to 190 (professional,
    #: enterprise) requests per 10 s per app
    requests_per_10s: int = 100


@dataclass(frozen=True)
class LiveConfig:
    """The live connectors to set up; a system left None answers "not configured"."""

    stripe: StripeConfig | None = None
    shopify: ShopifyConfig | None = None
    crm: CrmConfig | None = None
    #: the gateway-side deadline of every call: past it, the outcome is unknown (reconciled)
    timeout_seconds: float = 30.0

    def secrets(self) -> tuple[str, ...]:
        """Every credential, for scrubbing messages."""
        found = (self.stripe and self.stripe.api_key, self.shopify and self.shopify.access_token,
                 self.crm and self.crm.access_token)
        return tuple(s for s in found if s)
