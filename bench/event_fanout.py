"""Event fan-out: from a decision's commit to its server-sent event and to its webhook delivery.

    python bench/event_fanout.py [--subscribers 100] [--decisions 200] [--interval 0.02] [--json FILE]

Starts a real gateway in this process (uvicorn on loopback, SQLite in a temporary folder;
`tests/gateway_server.start_server`) with one webhook endpoint for `decision` events, and in a
second process `--subscribers` open `GET /v1/events?kinds=decision` streams (as the founder,
one asyncio loop, httpx) and the webhook receiver (verifying each signature with
`standardwebhooks`). Then it submits `--decisions` CRM notes, one every `--interval` seconds.

The commit time is taken in the gateway, at the log writer's commit (`Writer.on_subjects`,
right after the batch holding the decision committed); the arrival times in the other process
when the event's last byte was read or the delivery's body verified; both `time.time()` on one
machine. Prints, for the SSE events (every subscriber's copy) and for the webhook deliveries,
the median and p95 from commit to arrival, and for SSE the time until the last of the
subscribers had it. Figures depend on the machine (2 cores here, gateway and clients sharing
them); the script decides nothing.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------ the clients' process


async def _subscriber(base_url: str, token: str, ready: asyncio.Event, counter: list[int], want: int,
                      arrivals: dict[str, list[float]], done: asyncio.Event) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=120),
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async with client.stream("GET", "/v1/events", params={"kinds": "decision"}) as response:
            counter[0] += 1
            if counter[0] == want:
                ready.set()
            data = None
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and data is not None:
                    decision_id = json.loads(data)["decision_id"]
                    arrivals.setdefault(decision_id, []).append(time.time())
                    data = None
                if done.is_set():
                    return


def clients(base_url: str, token: str, subscribers: int, port: int, secret: str) -> None:
    """Run in the second process: the subscribers and the receiver; prints arrivals as JSON when
    a line arrives on stdin (the gateway process says it is done)."""
    from webhook_receiver import Receiver

    receiver = Receiver(port)
    receiver.secret = secret
    receiver.start()
    arrivals: dict[str, list[float]] = {}

    async def main() -> None:
        ready, done = asyncio.Event(), asyncio.Event()
        counter = [0]
        tasks = [asyncio.create_task(_subscriber(base_url, token, ready, counter, subscribers, arrivals, done))
                 for _ in range(subscribers)]
        await asyncio.wait_for(ready.wait(), 60)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    hooks = {}
    for delivery in receiver.unique():
        hooks[delivery["body"]["decision_id"]] = delivery["wall"]
    receiver.stop()
    print(json.dumps({"sse": arrivals, "webhook": hooks}), flush=True)


# ------------------------------------------------------------------ the gateway's process


def run(subscribers: int, decisions: int, interval: float) -> dict[str, Any]:
    import httpx

    from gateway.events.webhooks import add_endpoint
    from gateway_server import free_port, note, server_config, start_server

    commits: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = server_config(f"sqlite:///{Path(tmp) / 'warden.db'}", Path(tmp), log_json=True, log_level="warning")
        server, stop = start_server(settings)
        try:
            server.runtime.writer.on_subjects(
                lambda subjects: [commits.setdefault(s, time.time()) for s in subjects if s.startswith("dec_")])
            port = free_port()
            runtime = server.runtime
            _endpoint, secret = runtime.writer.run(lambda conn: add_endpoint(
                conn, runtime.ledger, f"http://127.0.0.1:{port}/hook", ["decision"], "bench", time.time()))
            child = subprocess.Popen(
                [sys.executable, __file__, "--clients", server.base_url, server.tokens["founder"], str(subscribers),
                 str(port), secret], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "ready", "the subscribers did not connect"
            submitted = []
            with httpx.Client(base_url=server.base_url, timeout=30,
                              headers={"Authorization": f"Bearer {server.tokens['a2']}"}) as client:
                for _ in range(decisions):
                    response = client.post("/v1/actions", json=note("a2"))
                    submitted.append(response.json()["decision_id"])
                    time.sleep(interval)
            time.sleep(3.0)  # the last ones arrive
            child.stdin.write("done\n")
            child.stdin.flush()
            result = json.loads(child.stdout.readline())
            child.wait(30)
        finally:
            stop()
    sse = [(arrived - commits[d]) * 1000 for d in submitted for arrived in result["sse"].get(d, [])]
    last = [(max(result["sse"][d]) - commits[d]) * 1000 for d in submitted if len(result["sse"].get(d, [])) == subscribers]
    hooks = [(result["webhook"][d] - commits[d]) * 1000 for d in submitted if d in result["webhook"]]
    return {
        "subscribers": subscribers, "decisions": decisions,
        "sse_events": len(sse), "sse_expected": subscribers * decisions,
        "sse_median_ms": statistics.median(sse), "sse_p95_ms": _percentile(sse, 0.95),
        "sse_last_subscriber_median_ms": statistics.median(last), "sse_last_subscriber_p95_ms": _percentile(last, 0.95),
        "webhooks": len(hooks),
        "webhook_median_ms": statistics.median(hooks), "webhook_p95_ms": _percentile(hooks, 0.95),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--clients":
        base_url, token, subscribers, port, secret = sys.argv[2:7]
        clients(base_url, token, int(subscribers), int(port), secret)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = run(args.subscribers, args.decisions, args.interval)
    print(f"event fan-out: {figures['decisions']} decisions, {figures['subscribers']} SSE subscribers, one webhook")
    print(f"  SSE, commit → event     median {figures['sse_median_ms']:7.1f} ms   p95 {figures['sse_p95_ms']:7.1f} ms"
          f"   ({figures['sse_events']} of {figures['sse_expected']} events)")
    print(f"  SSE, to the last of {figures['subscribers']}  median {figures['sse_last_subscriber_median_ms']:7.1f} ms"
          f"   p95 {figures['sse_last_subscriber_p95_ms']:7.1f} ms")
    print(f"  webhook, commit → 2xx   median {figures['webhook_median_ms']:7.1f} ms   p95 {figures['webhook_p95_ms']:7.1f} ms"
          f"   ({figures['webhooks']} of {figures['decisions']} deliveries)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
