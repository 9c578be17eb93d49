"""The registry: modes, how a connector is registered, and the linter's list of tools."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

import connectors
from connectors import (
    ConnectorConfigError,
    ExecutionResult,
    PermanentError,
    Registry,
    ToolSpec,
    build_registry,
    catalog_tool_names,
)
from connectors.live.config import LiveConfig
from connectors.registry import SANDBOX_CALLS_FILE
from dsl import builtin_policy_dir
from dsl.model import Risk

REPO = Path(__file__).resolve().parents[2]


def test_live_mode_without_credentials_knows_every_tool_and_refuses_every_call(tmp_path: Path) -> None:
    registry = build_registry("live", data_dir=tmp_path)
    try:
        assert registry.mode == "live" and registry.call_ledger is None
        assert registry.known_tools() == catalog_tool_names()
        with pytest.raises(PermanentError, match="stripe is not configured") as refused:
            registry.execute("stripe.refund", {"charge": "ch_1", "amount": 100, "currency": "usd"},
                             idempotency_key="dec_1")
        assert refused.value.code == "not_configured"
        checks = registry.check()
        assert sorted(checks) == ["crm", "shopify", "stripe"]
        assert all(not c.ok and c.code == "not_configured" for c in checks.values())
        assert "WARDEN_CRM_ACCESS_TOKEN" in checks["crm"].detail
        # nothing can have been sent: reconciliation finds nothing, without a call
        assert registry.reconcile("crm.log_note", {"record_id": "c_1", "body": "x"}, idempotency_key="dec_2",
                                  first_attempt_at=0.0) is None
    finally:
        registry.close()
    assert not (tmp_path / SANDBOX_CALLS_FILE).exists()


def test_live_mode_needs_a_positive_timeout() -> None:
    with pytest.raises(ConnectorConfigError, match="timeout must be positive"):
        build_registry("live", live=LiveConfig(timeout_seconds=0))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "production"}, "unknown connector mode 'production': expected sandbox or live"),
    ({"latency_ms": -1}, "latency must be 0 ms or more"),
])
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message):
        build_registry(**kwargs)


def test_the_call_ledger_lives_in_the_data_dir(tmp_path: Path) -> None:
    registry = build_registry("sandbox", data_dir=tmp_path / "data")
    registry.execute("crm.log_note", {"record_id": "c_1", "body": "x"}, idempotency_key="k")
    registry.close()
    assert (tmp_path / "data" / SANDBOX_CALLS_FILE).is_file()


# ---- a connector of one's own is registered like the shipped ones ----------------------------

class PingParams(BaseModel):
    """Ping a host."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(max_length=50, description="the host pinged")


class EchoConnector:
    name = "echo"
    mode = "sandbox"
    tools = (ToolSpec("echo.ping", PingParams, Risk.L0, "Ping a host.", reversible=True,
                      compensation="nothing to undo"),)

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], str]] = []

    def execute(self, tool: str, params: Mapping[str, Any], *,
                idempotency_key: str) -> ExecutionResult:
        self.seen.append((tool, dict(params), idempotency_key))
        return ExecutionResult(external_id=f"ping-{params['host']}")


def test_any_connector_following_the_protocol_can_be_registered() -> None:
    echo = EchoConnector()
    registry = Registry([echo])
    assert registry.known_tools() == frozenset({"echo.ping"}) and registry.mode == "sandbox"
    assert registry.validate("echo.ping", {"host": "a"}) == {"host": "a"}
    assert registry.execute("echo.ping", {"host": "a"}, idempotency_key="k").external_id \
        == "ping-a"
    assert echo.seen == [("echo.ping", {"host": "a"}, "k")]
    assert registry.call_ledger is None


def test_a_tool_declared_twice_or_mixed_modes_are_refused() -> None:
    with pytest.raises(ConnectorConfigError, match="'echo.ping' is declared twice"):
        Registry([EchoConnector(), EchoConnector()])
    live = EchoConnector()
    live.mode = "live"  # type: ignore[assignment]
    live.tools = (ToolSpec("echo.pong", PingParams, Risk.L0, "Pong.", reversible=True),)
    with pytest.raises(ConnectorConfigError, match="different modes"):
        Registry([EchoConnector(), live])
    with pytest.raises(ConnectorConfigError, match="at least one connector"):
        Registry([])


def test_the_package_exports_its_public_names() -> None:
    for name in connectors.__all__:
        assert getattr(connectors, name) is not None
    assert {"Registry", "build_registry", "ParamsError", "SandboxCallLedger", "SandboxFaults",
            "catalog_tool_names", "ConnectorConfigError"} <= set(connectors.__all__)


# ---- warden policy check knows the catalog ---------------------------------------------------

def _policy_check(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(directory)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_policy_check_warns_about_a_tool_not_in_the_catalog(tmp_path: Path) -> None:
    for path in builtin_policy_dir().glob("*.policy"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "typo.policy").write_text(
        'policy refund_typo "A typo in the tool name" {\n'
        '  applies to tool "stripe.refnud"\n  risk L1\n}\n')
    result = _policy_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "typo.policy:1:1: warning: `stripe.refnud` is not a known tool" in result.stdout
    assert "[unknown_tool]" in result.stdout
    assert "stripe.refnud" not in catalog_tool_names()
