"""A verifier (public) key given where a signing key is needed is named as such, with where the
signing key is, whatever the file's mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import EXIT_USAGE, warden
from gateway.store.schema import upgrade
from ledger.database import make_engine
from ledger.note import generate_key

COMMANDS = {
    "audit checkpoint": ["audit", "checkpoint", "--key", "ledger.pub"],
    "audit export": ["audit", "export", "--out", "export", "--sign-with", "ledger.pub"],
    "keys rotate": ["keys", "rotate", "--key", "ledger.pub", "--new-key-out", "new.key"],
}


@pytest.mark.parametrize(
    ("command", "configured", "mode"),
    [("audit checkpoint", None, 0o644), ("audit checkpoint", "keys/audit.key", 0o600),
     ("audit export", None, 0o600), ("keys rotate", "keys/audit.key", 0o644)],
)  # fmt: skip
def test_a_verifier_key_given_for_signing(tmp_path: Path, command: str, configured: str | None, mode: int) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'warden-data' / 'warden.db'}")
    upgrade(engine)
    engine.dispose()
    if configured is not None:
        (tmp_path / "warden.toml").write_text(f'signing_key_file = "{configured}"\n')
    public = tmp_path / "ledger.pub"
    public.write_text(generate_key("warden.local/audit").verifier_key + "\n")
    public.chmod(mode)
    done = warden(*COMMANDS[command], cwd=tmp_path)
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    option = "--sign-with" if command == "audit export" else "--key"
    signing_key = configured or "warden-data/ledger.key"
    assert done.stderr == (f"warden: error: ledger.pub is a verifier (public) key, not a signing key; {option} "
                           f"needs the signing key file (the signing_key_file setting: {signing_key})\n")
    assert not (tmp_path / "new.key").exists() and not (tmp_path / "export").exists()

