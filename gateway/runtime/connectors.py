"""The connectors as the running gateway sees them: built from the settings, and their health.

`connectors_for(settings, on_wait=)` builds the registry of `settings.connectors_mode`: the
sandbox, or the live connectors configured from the `stripe_*`, `shopify_*` and `crm_*` settings
(a system without credentials refuses its calls as "not configured").

`ConnectorHealth` runs each live connector's read-only check (`Registry.check`) at start and then
every `every` seconds on a thread of its own, so `/readyz` reports a connector whose credentials
fail without calling any provider per probe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from connectors.live.config import CrmConfig, LiveConfig, ShopifyConfig, StripeConfig
from connectors.live.throttle import OnWait
from connectors.registry import ConnectorCheck, Registry, build_registry
from gateway.config import Settings

log = logging.getLogger("warden.connectors")

#: Failures of a check that make the gateway not ready: the credentials themselves.
CREDENTIAL_FAILURES = frozenset({"credentials_refused", "forbidden"})


def live_config(settings: Settings) -> LiveConfig:
    """The live connectors' configuration; a system whose credential is empty is left out."""
    stripe = StripeConfig(
        api_key=settings.stripe_api_key, api_base=settings.stripe_api_base,
        account=settings.stripe_account or None, max_network_retries=settings.stripe_max_network_retries,
    ) if settings.stripe_api_key else None
    shopify = ShopifyConfig(
        shop=settings.shopify_shop, access_token=settings.shopify_access_token,
        api_base=settings.shopify_api_base, location_id=settings.shopify_location_id,
    ) if settings.shopify_access_token and settings.shopify_shop else None
    crm = CrmConfig(access_token=settings.crm_access_token, api_base=settings.crm_api_base,
                    requests_per_10s=settings.crm_requests_per_10s) if settings.crm_access_token else None
    return LiveConfig(stripe=stripe, shopify=shopify, crm=crm, timeout_seconds=settings.connector_timeout_seconds)


def connectors_for(settings: Settings, *, on_wait: OnWait | None = None) -> Registry:
    return build_registry(
        settings.connectors_mode, data_dir=settings.data_dir,
        faults=settings.sandbox_faults or None, latency_ms=settings.sandbox_latency_ms,
        live=live_config(settings) if settings.connectors_mode == "live" else None, on_wait=on_wait,
    )


class ConnectorHealth:
    """The last check of each connector, refreshed in the background (live mode only)."""

    def __init__(self, registry: Registry, *, every: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._checks: dict[str, ConnectorCheck] = {}
        self._checked_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.registry.mode == "live"

    def refresh(self) -> dict[str, ConnectorCheck]:
        checks = self.registry.check()
        for name, check in checks.items():
            if not check.ok and check.code != "not_configured":
                log.warning("connector check failed", extra={"connector": name, "code": check.code,
                                                             "detail": check.detail})
        with self._lock:
            self._checks, self._checked_at = checks, self.clock()
        return checks

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return

        def loop() -> None:
            while True:
                try:
                    self.refresh()
                except Exception:
                    log.exception("connector checks failed")
                if self._stop.wait(self.every):
                    return

        self._thread = threading.Thread(target=loop, name="warden-connector-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> bool:
        """False while a configured connector's credentials are refused."""
        with self._lock:
            return not any(not c.ok and c.code in CREDENTIAL_FAILURES for c in self._checks.values())

    def report(self) -> dict[str, Any]:
        """{connector: {"ok", "detail", "code"?}} as last checked, with the check's time."""
        with self._lock:
            checks, at = dict(self._checks), self._checked_at
        connectors = {name: {"ok": c.ok, "detail": c.detail, **({"code": c.code} if c.code else {})}
                      for name, c in sorted(checks.items())}
        return {"mode": self.registry.mode, "checked_at": at, "connectors": connectors}
