"""`warden serve` as a real operating-system process, for crash tests: start it with `WARDEN_*`
settings, wait until it answers, `kill -9` it, start it again on the same database and data dir.

- `prepare(db_url, root)` creates the schema, writes the checkpoint signing key (so the test knows
  the verifier key), registers an agent (`crash-bot` unless named, A2, every tool) and an
  auditor, and returns
  a `Deployment` (settings as environment variables, tokens, verifier key).
- `WardenProcess(deployment).start()` runs `python -m gateway.cli serve` with that environment
  (working directory `root`, no inherited `WARDEN_*` variable, output in `root/serve-N.log`) and
  waits for `/healthz`; `kill9()` sends SIGKILL and reaps it; `stop()` asks it to shut down.
  `WardenProcess(deployment, env={...})` adds variables for that one process (a failpoint).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

AGENT = "crash-bot"
AGENT_OWNER = "ops@crash.local"
AUDITOR = "auditor@crash.local"
LOG_ORIGIN = "warden.local/audit"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**settings: Any) -> dict[str, str]:
    """This process's environment without any `WARDEN_*` variable, plus `settings` as
    `WARDEN_<NAME>` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update({f"WARDEN_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class Deployment:
    """One gateway's database, data dir and identities, shared by its successive processes."""

    root: Path
    db_url: str
    data_dir: Path
    agent: str
    agent_token: str
    auditor_token: str
    verifier_key: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def sandbox_ledger_path(self) -> Path:
        return self.data_dir / "sandbox-calls.db"

    def env(self, port: int) -> dict[str, str]:
        return clean_environment(
            database_url=self.db_url, data_dir=self.data_dir,
            signing_key_file=self.data_dir / "ledger.key", host="127.0.0.1", port=port,
            **self.settings,
        )

    def cli(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `warden ARGV...` with this deployment's environment."""
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *argv], cwd=self.root, env=self.env(8080),
            capture_output=True, text=True, timeout=timeout,
        )


def prepare(db_url: str, root: Path, *, agent: str = AGENT, **settings: Any) -> Deployment:
    """Schema, signing key and identities (`agent`: A2, every tool; an auditor) for a gateway
    over `db_url`; `settings` are extra `WARDEN_*` settings of its processes (e.g.
    `sandbox_latency_ms=200`)."""
    from gateway.store import identities
    from gateway.store.schema import upgrade
    from ledger.database import make_engine
    from ledger.keys import write_signer_key
    from ledger.note import generate_key
    from ledger.store import Ledger

    data_dir = root / "data"
    signer = generate_key(LOG_ORIGIN)
    write_signer_key(data_dir / "ledger.key", signer)
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        ledger = Ledger()
        with engine.begin() as conn:
            now = time.time()
            _agent, agent_token = identities.add_agent(
                conn, ledger, agent, "A2", ("*",), AGENT_OWNER, now, "test")
            _user, auditor_token = identities.add_user(conn, ledger, AUDITOR, "auditor", now, "test")
    finally:
        engine.dispose()
    return Deployment(root, db_url, data_dir, agent, agent_token, auditor_token, signer.verifier_key,
                      {"log_origin": LOG_ORIGIN, **settings})


class WardenProcess:
    """One `warden serve` process of a deployment; `env`: extra variables for this process only."""

    started = 0

    def __init__(self, deployment: Deployment, *, env: Mapping[str, str] | None = None) -> None:
        self.deployment = deployment
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        WardenProcess.started += 1
        self.log_path = deployment.root / f"serve-{WardenProcess.started}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> WardenProcess:
        self.deployment.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve"], cwd=self.deployment.root,
                env=self.deployment.env(self.port) | self.extra_env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"warden serve exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill9()
                    raise RuntimeError(f"warden serve did not answer within {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, whatever was in flight stays in flight."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it hangs); returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.process.returncode

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                            timeout=30.0)
