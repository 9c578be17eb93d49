"""The MCP front's tool-call latency against the same decision over HTTP `POST /v1/actions`.

    python bench/mcp_latency.py [--calls 300] [--warmup 30]

A real `warden serve` (its own process, SQLite, durable commits, the sandbox connectors) and one
agent (A2, every tool) registered with `warden agents add`. One call after the other, the ways
taking turns in blocks of 10 so that a burst of load on the machine hits all of them, each call
a CRM note (`crm.log_note`, L0: decided, recorded, executed and its outcome recorded before the
answer, checked `executed` every time) with its own packet id:

  (a) HTTP: the packet POSTed to /v1/actions over a keep-alive connection (httpx);
  (b) MCP over streamable HTTP: `tools/call` on /mcp of the same server, through the `mcp` SDK's
      client (one initialised session, bearer token; each call is a POST answered as an SSE stream);
  (c) MCP over stdio: `tools/call` to `warden mcp`, a process of its own on the same database,
      through the SDK's stdio client.

Per way: median, p90 and p99 in ms, and the difference and ratio of the medians against (a).
Not part of the test suite: the figures depend on the machine and its load. Exit code 0 when every
call executed, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(PYTHONPATH=str(ROOT), WARDEN_DATABASE_URL=f"sqlite:///{tmp / 'warden.db'}",
               WARDEN_DATA_DIR=str(tmp / "data"), WARDEN_SIGNING_KEY_FILE=str(tmp / "data" / "ledger.key"),
               WARDEN_POLICY_RELOAD="false", WARDEN_LOG_LEVEL="warning", WARDEN_CONSOLE="false")
    return env


def warden(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout


def note(i: int) -> dict[str, Any]:
    return {"record_id": "rec_bench", "body": f"bench note {i}"}


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.9)] * 1000,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000)


async def measure(args: argparse.Namespace, base: str, token: str, env: dict[str, str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"HTTP POST /v1/actions": [], "MCP, streamable HTTP": [], "MCP, stdio": []}
    counter = iter(range(10**9))
    failures: list[str] = []
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    async def via_http() -> None:
        i = next(counter)
        packet = {"packet_id": f"bench-http-{i}", "agent": "bench-agent",
                  "action": {"tool": "crm.log_note", "params": note(i)}}
        answer = await anyio.to_thread.run_sync(lambda: http.post("/v1/actions", json=packet))
        if answer.json().get("status") != "executed":
            failures.append(answer.text)

    stdio = StdioServerParameters(command=sys.executable, args=["-m", "gateway.cli", "mcp"], cwd=str(ROOT),
                                  env={**env, "WARDEN_AGENT_TOKEN": token})
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
                streamable_http_client(base + "/mcp", http_client=client) as (read, write),
                ClientSession(read, write) as over_http,
                stdio_client(stdio) as (sread, swrite), ClientSession(sread, swrite) as over_stdio):
        await over_http.initialize()
        await over_stdio.initialize()

        def via(session: ClientSession) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                result = await session.call_tool("crm.log_note", note(next(counter)))
                if result.is_error or (result.structured_content or {}).get("status") != "executed":
                    failures.append(str(result.content))
            return call

        ways = {"HTTP POST /v1/actions": via_http, "MCP, streamable HTTP": via(over_http), "MCP, stdio": via(over_stdio)}
        for way in ways.values():
            for _ in range(args.warmup):
                await way()
        done = 0
        while done < args.calls:
            for name, way in ways.items():
                for _ in range(BLOCK):
                    started = time.perf_counter()
                    await way()
                    times[name].append(time.perf_counter() - started)
            done += BLOCK
    http.close()
    if failures:
        print(f"{len(failures)} calls did not execute; first: {failures[0][:300]}", file=sys.stderr)
        raise SystemExit(1)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = environment(tmp)
        warden(env, "db", "upgrade")
        token = warden(env, "agents", "add", "bench-agent", "--autonomy", "A2", "--tools", "*",
                       "--owner", "ops@bench.local").strip().splitlines()[-1].split()[-1]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(base + "/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("warden serve did not start")
                time.sleep(0.1)
            times = anyio.run(measure, args, base, token, env)
        finally:
            server.terminate()
            server.wait(timeout=30)
    baseline = statistics.median(times["HTTP POST /v1/actions"]) * 1000
    print(f"{args.calls} calls per way (after {args.warmup} warm-up), crm.log_note executed each time\n")
    print("| way | median | p90 | p99 | median over HTTP | ratio |")
    print("|---|---|---|---|---|---|")
    for name, samples in times.items():
        p50, p90, p99 = summary(samples)
        over = "" if name.startswith("HTTP") else f"+{p50 - baseline:.2f} ms"
        ratio = "" if name.startswith("HTTP") else f"{p50 / baseline:.2f}×"
        print(f"| {name} | {p50:.2f} ms | {p90:.2f} ms | {p99:.2f} ms | {over} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
