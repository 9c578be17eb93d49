"""The README's example agent, run as a program against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway_server import Server

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "refund_agent.py"


def test_the_example_agent_refunds_and_proves_it(gateway: Server, tmp_path: Path) -> None:
    key = tmp_path / "ledger.pub"
    key.write_text(str(gateway.runtime.signer.verifier_key) + "\n")
    env = {**os.environ, "WARDEN_URL": gateway.base_url, "WARDEN_AGENT_TOKEN": gateway.tokens["a2"],
           "WARDEN_AGENT": "a2", "WARDEN_LOG_KEY": str(key)}
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refunded, recorded = done.stdout.splitlines()
    assert refunded.startswith("refunded: re_")
    assert recorded.startswith("recorded at seq ")
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    assert EXAMPLE.read_text() in readme, "the README shows the example as it is tested"
    assert len(EXAMPLE.read_text().splitlines()) == 15
