"""The auditor's commands from tests: `warden audit export` of a test server's database and
`warden audit verify` of the folder, run as the real command line."""

from __future__ import annotations

import json
import shutil
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


def with_altered_signature(folder: Path, out: Path, seq: int) -> Path:
    """A copy of the export `folder` at `out` whose entry `seq` (a passkey-signed approval) has one
    bit of its signature flipped, the file otherwise as it was: what tampering in an export is."""
    from ledger.canonical import canonical_bytes
    from passkey_authenticator import b64url, unb64url

    shutil.copytree(folder, out)
    lines = (out / "entries.jsonl").read_bytes().splitlines()
    entry = json.loads(lines[seq])
    signature = bytearray(unb64url(entry["data"]["passkey"]["signature"]))
    signature[8] ^= 1
    entry["data"]["passkey"]["signature"] = b64url(bytes(signature))
    lines[seq] = canonical_bytes(entry)
    (out / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return out
