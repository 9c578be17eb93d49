"""`warden` as a shell runs it, for the CLI tests: `warden(...)` runs one command in a subprocess
with no `WARDEN_*` variable but those given; `Serving` runs `warden serve` until the block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_COMPILE_ERROR = 0, 1, 2, 3


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any `WARDEN_*` variable, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    clean.update(env or {})
    return clean


def warden(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *map(str, args)],
        cwd=cwd, env=environment(env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serving:
    """`warden serve ARGS...` in `cwd` until the `with` block ends (then Ctrl-C, as an operator
    stops it, or `stop_signal`). `port` is where it is expected to answer; stderr (the logs) goes
    to a file."""

    def __init__(self, *args: str, cwd: Path, port: int, env: dict[str, str] | None = None,
                 stop_signal: signal.Signals = signal.SIGINT) -> None:
        self.args, self.cwd, self.port, self.env = args, cwd, port, env
        self.stop_signal = stop_signal
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = cwd.parent / f"serve-{port}.log"
        self.process: subprocess.Popen[str] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> Serving:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", *self.args], cwd=self.cwd,
                env=environment(self.env), stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"warden serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"warden serve did not answer:\n{self.log.read_text()}")
            time.sleep(0.1)

    def banner(self) -> str:
        """What `--demo` printed on stdout, up to its last line (printed before serving starts)."""
        assert self.process is not None and self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if "audit log verifier key" in line:
                return "".join(lines)
        raise AssertionError(f"no banner on stdout: {''.join(lines)!r}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        assert self.process is not None
        self.process.send_signal(self.stop_signal)
        try:
            self.returncode = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
