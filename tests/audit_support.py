"""The auditor's commands from tests: `warden audit export` of a test server's database and
`warden audit verify` of the folder, run as the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway_server import Server


def warden(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def export(server: Server, out: Path) -> Path:
    done = warden("audit", "export", "--db", server.runtime.settings.database_url, "--out", out,
                  "--sign-with", server.runtime.settings.signing_key_file, cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out


def verify(folder: Path, key: str) -> subprocess.CompletedProcess[str]:
    return warden("audit", "verify", folder, "--key", key, cwd=folder.parent)
