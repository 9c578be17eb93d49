"""What the agents' SDK adds over raw httpx per call, for the same decisions.

    python bench/sdk_overhead.py [--calls 300] [--warmup 30]

A real `warden serve --demo` (its own process, SQLite in a temporary directory, the shipped
policies, sandbox connectors) on a free port. One call after the other over a keep-alive
connection, the ways taking turns in blocks of 10 so that a burst of load hits them all:

  (a) raw httpx: `httpx.Client.post("/v1/actions", json=packet)` and `response.json()`;
  (b) `WardenClient.submit(...)`: the packet built and serialised once, the request, the retry
      loop, the answer validated into a typed `Decision`;
  (c) `WardenClient.act(...)`: (b), and the check that the decision is final and not refused;
  (d) `AsyncWardenClient.submit(...)` on one event loop;
  (e) dry runs: raw httpx `POST /v1/actions/evaluate` against `WardenClient.evaluate`.

Every call is an L0 `crm.log_note` by the demo agent (A2), so (a) to (d) are the same decision,
`executed`, checked for every one; (e) answers `allowed`. Per way: median, p90, p99 in ms and
the median's difference from its raw counterpart; and the client process's own CPU time per
call (mean), which is what the SDK itself costs, unblurred by the gateway's share of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

import httpx  # noqa: E402

from warden_sdk import AsyncWardenClient, WardenClient  # noqa: E402

PARAMS = {"record_id": "rec_bench", "body": "followed up"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(data: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    env = {**os.environ, "WARDEN_DATA_DIR": str(data), "WARDEN_DATABASE_URL": f"sqlite:///{data / 'warden.db'}",
           "WARDEN_SIGNING_KEY_FILE": str(data / "ledger.key"), "WARDEN_PORT": str(port),
           "WARDEN_POLICY_RELOAD": "false", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--demo"], cwd=data, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    tokens = data / "demo-tokens.env"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"warden serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200 and tokens.exists():
                break
        except httpx.TransportError:
            time.sleep(0.2)
    found = dict(line.removeprefix("export ").split("=", 1) for line in tokens.read_text().split("\n") if "=" in line)
    return process, base, found["WARDEN_AGENT_TOKEN"].strip("'\"")


def packet() -> dict[str, Any]:
    return {"packet_id": f"raw-{uuid.uuid4().hex}", "agent": "demo-agent",
            "action": {"tool": "crm.log_note", "params": PARAMS}, "evidence": {}, "proof": {"invariant_checks": []},
            "context": {}}


def timed(call: Callable[[], str], want: str) -> tuple[float, float]:
    """(wall ms, this process's CPU ms): the client's own work is its CPU time, which the
    gateway's share of the machine does not blur."""
    started, cpu = time.perf_counter(), time.process_time()
    status = call()
    elapsed, spent = time.perf_counter() - started, time.process_time() - cpu
    if status != want:
        raise SystemExit(f"expected {want}, got {status}")
    return elapsed * 1000, spent * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, base, token = start_gateway(Path(tmp))
        try:
            run(base, token, args.calls, args.warmup)
        finally:
            process.terminate()
            process.wait(30)


def run(base: str, token: str, calls: int, warmup: int) -> None:
    raw = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    sdk = WardenClient(base, token, "demo-agent", timeout=30)
    loop = asyncio.new_event_loop()
    asdk = AsyncWardenClient(base, token, "demo-agent", timeout=30)

    ways: dict[str, tuple[Callable[[], str], str]] = {
        "(a) raw httpx, POST /v1/actions": (lambda: raw.post("/v1/actions", json=packet()).json()["status"], "executed"),
        "(b) WardenClient.submit": (lambda: sdk.submit("crm.log_note", PARAMS).status, "executed"),
        "(c) WardenClient.act": (lambda: sdk.act("crm.log_note", PARAMS).status, "executed"),
        "(d) AsyncWardenClient.submit": (
            lambda: loop.run_until_complete(asdk.submit("crm.log_note", PARAMS)).status, "executed"),
        "(e) raw httpx, POST /v1/actions/evaluate": (
            lambda: raw.post("/v1/actions/evaluate", json=packet()).json()["status"], "allowed"),
        "(e') WardenClient.evaluate": (lambda: sdk.evaluate("crm.log_note", PARAMS).status, "allowed"),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    total = calls + warmup
    done = 0
    while done < total:
        for name, (call, want) in ways.items():
            block = [timed(call, want) for _ in range(10)]
            if done >= warmup:
                samples[name].extend(wall for wall, _ in block)
                cpu[name].extend(spent for _, spent in block)
        done += 10
    loop.run_until_complete(asdk.close())
    loop.close()
    sdk.close()
    raw.close()

    def quantile(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1]

    baselines = {"(b)": "(a)", "(c)": "(a)", "(d)": "(a)", "(e')": "(e)"}
    medians = {name.split()[0]: statistics.median(values) for name, values in samples.items()}
    cpus = {name.split()[0]: statistics.mean(values) for name, values in cpu.items()}
    print(f"{len(samples[next(iter(samples))])} calls per way after {warmup} not counted\n")
    print("| way | median | p90 | p99 | over raw, median | client CPU per call (mean) | over raw |")
    print("|---|---|---|---|---|---|---|")
    for name, values in samples.items():
        key = name.split()[0]
        over = f"{medians[key] - medians[baselines[key]]:+.2f} ms" if key in baselines else ""
        over_cpu = f"{cpus[key] - cpus[baselines[key]]:+.3f} ms" if key in baselines else ""
        print(f"| {name} | {statistics.median(values):.2f} ms | {quantile(values, 90):.2f} ms | "
              f"{quantile(values, 99):.2f} ms | {over} | {cpus[key]:.3f} ms | {over_cpu} |")


if __name__ == "__main__":
    main()
