"""A real gateway on loopback for the SDK's tests: the in-process server of the repository's
tests/gateway_server.py (uvicorn in a thread, SQLite, the shipped policies, sandbox connectors),
spoken to over HTTP only through the SDK.

The gateway's policies are the shipped ones with a one-second approval window on contact
deletions (to see `expired`), its sandbox fails every `crm.upsert_contact` (to see `failed`), and
it signs a checkpoint at least every 0.2 s (so a receipt is ready quickly).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPOSITORY / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from gateway_server import Server, policies_with, server_config, start_server  # noqa: E402

from warden_sdk import WardenClient  # noqa: E402

SHORT_EXPIRY = ('require approval deletion_approval from role "approver"',
                'require approval deletion_approval from role "approver" expires in 1s')


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sdk-gateway")
    policies = policies_with(tmp, {"crm.policy": SHORT_EXPIRY})
    settings = server_config(f"sqlite:///{tmp / 'warden.db'}", tmp, policy_dir=policies,
                             sandbox_faults="crm.upsert_contact=permanent*always",
                             checkpoint_every_seconds=0.2)
    server, stop = start_server(settings)
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def client(gateway: Server) -> Iterator[WardenClient]:
    """Agent a2 (autonomy A2, every tool)."""
    with WardenClient(gateway.base_url, gateway.tokens["a2"], "a2") as sdk:
        yield sdk
