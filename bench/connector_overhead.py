"""What a live call through Warden adds over the provider's SDK, and whether the client-side rate
limits keep concurrent calls within a provider's limits.

    python bench/connector_overhead.py [--calls 300] [--warmup 30] [--seconds 10]
                                       [--concurrency 8] [--crm-rate 50] [--skip-gateway]

(1) Overhead per call. The fake Stripe (`tests/fakes/stripe.py`, a real HTTP server on
loopback answering as Stripe's API does) runs in a Python process of its own, so that it does not
share the GIL with what is measured. Then, one call after the other, `--calls` refunds (after
`--warmup` not counted) each way, the ways taking turns in blocks of 10 so that a burst of load on
the machine hits all of them:

  (a) direct: Stripe's SDK itself, `StripeClient(...).v1.refunds.create(params,
      {"idempotency_key": ...})` over its synchronous httpx client, retries off, the same pinned
      API version and the same params (charge, amount, metadata) the connector sends;
  (a') the SDK's async path: `create_async` (the one the connector takes, over httpx's
      AsyncClient), awaited on an event loop of the calling thread; it tells what (b) owes to
      the SDK and what to the connector;
  (b) connector: `StripeLive.execute("stripe.refund", params, idempotency_key=...)` from
      `build_registry("live", live=LiveConfig(stripe=...))`: the hop onto the connector loop and
      back, the deadline, the SDK's async path, the error mapping and the summary;
  (b') registry: `Registry.execute(...)`, as the outbox's threads call it: (b) plus validating
      the params against the tool's schema (the request path awaits `execute_async`, the same
      hop from the server's event loop);
  (c) gateway: a real `warden serve` (its own process, SQLite, durable commits,
      `connectors_mode = live` against the same fake) and an agent (A2) POSTing refund packets
      (`stripe.refund`, $1 to $50, evidence `{"reconciled": true, "order_total": amount}`, so the
      shipped policies allow them) to `/v1/actions` over a keep-alive connection: each request
      is decided, recorded, executed at the fake and its outcome recorded before the answer
      (`executed`, checked for every one). With it, `GET /healthz` on the same connection,
      the HTTP round trip alone, as a floor.

Per way: median, p90 and p99 in ms, and the overhead over (a) (the difference of the medians,
and of the p90s) and the ratio of the medians.

(2) Throughput under throttling (fakes in this process; nothing here is latency-bound):

  Shopify: a fake shop with a small cost bucket (`--shopify-maximum` 200 points, restored at
      `--shopify-restore` 100 points/s; every `shopify.update_price` reads the variant, 3 points,
      then updates it, 10) and `--concurrency` coroutines calling `Registry.execute_async` one
      call after the other for `--seconds`. Shown: calls/s, the points the fake charged per second
      against its restore rate (the ceiling over the run: (maximum + restore x seconds) /
      seconds, as the bucket starts full), the fake's THROTTLED answers (each executed nothing,
      and the goal is none), and the client-side waits reported through `on_wait`.
  CRM: a fake HubSpot allowing `--crm-rate` requests in any rolling 10 s (and 5 searches per
      second), `CrmConfig(requests_per_10s=--crm-rate)`, the same number of coroutines calling
      `crm.log_note` (a search for the decision id, then the note: two requests) for
      1.2 x `--seconds` (at least 12 s: more than one window). Shown: requests/s, the most
      requests that reached the fake in any 10 s and searches in any 1 s against its limits
      (by arrival, the clock its windows count by; beside it the same count by the answers'
      times in `fake.seen`), its 429 answers (the goal is none) and the client-side waits.

Not part of the test suite: the figures depend on the machine and its load. Exit code 0 when
every call succeeded and no provider answered THROTTLED or 429, else 1.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as `python bench/X.py`, this folder comes first on sys.path, where `bench/ledger.py` would
# hide the `ledger` package: the folder is taken off the path before anything else is imported.
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fake providers
sys.path.insert(0, str(ROOT / "tests" / "crash"))  # warden_process: `warden serve` as a process

import httpx  # noqa: E402
import stripe  # noqa: E402
from stripe.params import RefundCreateParams  # noqa: E402

from connectors.base import ConnectorError  # noqa: E402
from connectors.live.config import (  # noqa: E402
    STRIPE_API_VERSION,
    CrmConfig,
    LiveConfig,
    ShopifyConfig,
    StripeConfig,
)
from connectors.live.shopify import ShopifyLive  # noqa: E402
from connectors.live.stripe import METADATA_KEY  # noqa: E402
from connectors.registry import Registry, build_registry  # noqa: E402
from fakes.base import Reply, Request  # noqa: E402
from fakes.crm import TOKEN as CRM_TOKEN  # noqa: E402
from fakes.crm import FakeHubSpot  # noqa: E402
from fakes.shopify import FakeShopify  # noqa: E402
from fakes.stripe import DEFAULT_KEY  # noqa: E402

AGENT = "bench-agent"
BLOCK = 10  # calls per way per turn
#: started with `python -c`: the fake Stripe on loopback, its address on stdout; when stdin
#: closes, the number of refunds it made, and it stops
FAKE_STRIPE = (
    "import sys; sys.path[:0] = [{root!r}, {tests!r}]\n"
    "from fakes.stripe import FakeStripe\n"
    "fake = FakeStripe().start()\n"
    "print(fake.base_url, flush=True)\n"
    "sys.stdin.read()\n"
    "fake.stop()\n"
    "print(sum(fake.effects_by_key('refund').values()), flush=True)\n"
)


# ---- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The value at rank q (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Way:
    """One way of making the call: its name, the call (taking the call's number), its samples."""

    label: str
    call: Callable[[int], None]
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    @property
    def p90(self) -> float:
        return percentile(self.ms, 0.90)

    @property
    def p99(self) -> float:
        return percentile(self.ms, 0.99)


# ---- (1) overhead per call -----------------------------------------------------------------------


@contextlib.contextmanager
def fake_stripe_process(made: list[int]) -> Iterator[tuple[str, int]]:
    """FakeStripe in a Python process of its own: its base URL and PID; once it has stopped,
    `made` holds the number of refunds it made."""
    code = FAKE_STRIPE.format(root=str(ROOT), tests=str(ROOT / "tests"))
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the fake Stripe did not start (exit code {process.poll()})")
        yield url, process.pid
    finally:
        try:
            out, _ = process.communicate(timeout=10)  # closes its stdin: it stops, and counts
            made.extend(int(line) for line in out.split() if line.isdigit())
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def refund_params(i: int) -> dict[str, Any]:
    """A small refund ($1 to $50) of one of 1,000 charges (the fake makes each up, holding more
    than all the refunds take)."""
    return {"charge": f"ch_bench{i % 1000:04d}", "amount": 100 + (i * 37) % 4900, "currency": "usd"}


def direct_way(url: str, run: str) -> tuple[list[Way], Callable[[], None]]:
    """(a) Stripe's SDK, synchronously, as an application would call it without Warden; (a') its
    async path (`create_async`, the one the connector takes) on an event loop of this thread."""
    http = stripe.HTTPXClient(allow_sync_methods=True)
    client = stripe.StripeClient(DEFAULT_KEY, base_addresses={"api": url}, http_client=http,
                                 stripe_version=STRIPE_API_VERSION, max_network_retries=0)
    loop = asyncio.new_event_loop()
    http_async = stripe.HTTPXClient()
    client_async = stripe.StripeClient(DEFAULT_KEY, base_addresses={"api": url}, http_client=http_async,
                                       stripe_version=STRIPE_API_VERSION, max_network_retries=0)

    def create(i: int, way: str) -> tuple[RefundCreateParams, stripe.RequestOptions]:
        params, key = refund_params(i), f"{run}-{way}-{i}"
        return ({"charge": params["charge"], "amount": params["amount"], "metadata": {METADATA_KEY: key}},
                {"idempotency_key": key})

    def sync(i: int) -> None:
        refund = client.v1.refunds.create(*create(i, "a"))
        if refund.status != "succeeded":
            raise RuntimeError(f"refund {refund.id}: {refund.status}")

    def async_path(i: int) -> None:
        refund = loop.run_until_complete(client_async.v1.refunds.create_async(*create(i, "a2")))
        if refund.status != "succeeded":
            raise RuntimeError(f"refund {refund.id}: {refund.status}")

    def close() -> None:
        http.close()  # type: ignore[no-untyped-call]
        loop.run_until_complete(http_async.close_async())  # type: ignore[no-untyped-call]
        loop.close()

    return [Way("(a)  direct: Stripe SDK", sync), Way("(a') Stripe SDK, async path", async_path)], close


def connector_ways(url: str, run: str) -> tuple[list[Way], Registry]:
    """(b) the live connector's `execute`, and (b') the registry's (params validated first)."""
    registry = build_registry("live", live=LiveConfig(stripe=StripeConfig(api_key=DEFAULT_KEY, api_base=url)))
    connector = next(c for c in registry.connectors if c.name == "stripe")

    # the params as validation leaves them, so (b) needs none (b' validates on every call)
    if registry.validate("stripe.refund", refund_params(0)) != refund_params(0):
        raise RuntimeError("refund_params is not in the validated form")

    def direct(i: int) -> None:
        connector.execute("stripe.refund", refund_params(i), idempotency_key=f"{run}-b-{i}")

    def routed(i: int) -> None:
        registry.execute("stripe.refund", refund_params(i), idempotency_key=f"{run}-r-{i}")

    return [Way("(b)  StripeLive.execute", direct), Way("(b') Registry.execute", routed)], registry


@contextlib.contextmanager
def gateway_ways(url: str, run: str, workdir: Path) -> Iterator[list[Way]]:
    """(c) `warden serve` in live mode against the fake; (c0) its HTTP round trip alone."""
    from warden_process import WardenProcess, prepare

    deployment = prepare(f"sqlite:///{workdir / 'warden.db'}", workdir, agent=AGENT,
                         connectors_mode="live", stripe_api_key=DEFAULT_KEY, stripe_api_base=url,
                         policy_reload="false", log_level="warning")
    server = WardenProcess(deployment).start()
    client = httpx.Client(base_url=server.base_url, timeout=30.0,
                          headers={"Authorization": f"Bearer {deployment.agent_token}"})
    try:
        def governed(i: int) -> None:
            params = refund_params(i)
            answer = client.post("/v1/actions", json={
                "packet_id": f"{run}-c-{i}", "agent": AGENT,
                "action": {"tool": "stripe.refund", "params": params},
                "evidence": {"reconciled": True, "order_total": params["amount"]}})
            if answer.status_code != 200 or answer.json().get("status") != "executed":
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:300]}")

        def health(i: int) -> None:
            answer = client.get("/healthz")
            if answer.status_code != 200:
                raise RuntimeError(f"/healthz: HTTP {answer.status_code}")

        yield [Way("(c)  gateway: POST /v1/actions", governed),
               Way("(c0) gateway: GET /healthz", health)]
    finally:
        client.close()
        server.stop()


def measure(ways: list[Way], calls: int, warmup: int) -> None:
    """Warm-up, then `calls` timed calls per way, the ways taking turns in blocks of BLOCK."""
    clock = time.perf_counter_ns
    numbers = iter(range(10**9))
    for way in ways:
        for _ in range(warmup):
            way.call(next(numbers))
    done = 0
    while done < calls:
        share = min(BLOCK, calls - done)
        for way in ways:
            for _ in range(share):
                i = next(numbers)
                start = clock()
                try:
                    way.call(i)
                except (ConnectorError, stripe.StripeError, httpx.HTTPError, RuntimeError) as exc:
                    way.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                way.ms.append((clock() - start) / 1e6)
        done += share


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc; 0.0 where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overhead(args: argparse.Namespace) -> tuple[list[Way], dict[str, float]]:
    run = uuid.uuid4().hex[:8]
    ways: list[Way] = []
    extra: dict[str, float] = {}
    made: list[int] = []
    with fake_stripe_process(made) as (url, fake_pid), tempfile.TemporaryDirectory(prefix="warden-bench-conn-") as tmp:
        print(f"fake Stripe at {url} (process {fake_pid})")
        direct, close_direct = direct_way(url, run)
        connector, registry = connector_ways(url, run)
        ways = [*direct, *connector]
        try:
            with contextlib.ExitStack() as stack:
                if not args.skip_gateway:
                    print("starting warden serve (live, SQLite) against it ...")
                    ways += stack.enter_context(gateway_ways(url, run, Path(tmp)))
                print(f"{args.calls} calls per way after {args.warmup} not counted, in turns of {BLOCK} ...")
                fake_cpu = cpu_seconds(fake_pid)
                started = time.perf_counter()
                measure(ways, args.calls, args.warmup)
                extra["seconds"] = time.perf_counter() - started
                refunds = sum(len(w.ms) + args.warmup for w in ways if not w.label.startswith("(c0)"))
                extra["fake_cpu_ms_per_call"] = 1000 * (cpu_seconds(fake_pid) - fake_cpu) / max(1, refunds)
                extra["refunds_sent"] = refunds
        finally:
            close_direct()
            registry.close()
    extra["refunds_made"] = made[0] if made else -1
    return ways, extra


def report_overhead(ways: list[Way], extra: dict[str, float]) -> None:
    base = ways[0]
    print(f"\n{'way':<34}{'calls':>6}{'median ms':>11}{'p90 ms':>9}{'p99 ms':>9}"
          f"{'+median ms':>12}{'+p90 ms':>9}{'median ratio':>14}")
    for way in ways:
        if not way.ms:
            print(f"{way.label:<34}{0:>6}   no successful call")
            continue
        more = ("" if way is base else
                f"{way.median - base.median:>+12.2f}{way.p90 - base.p90:>+9.2f}{way.median / base.median:>13.2f}x")
        print(f"{way.label:<34}{len(way.ms):>6}{way.median:>11.2f}{way.p90:>9.2f}{way.p99:>9.2f}{more}")
    print(f"(+: over (a), the SDK called directly; the fake Stripe's own CPU: "
          f"{extra.get('fake_cpu_ms_per_call', 0):.2f} ms per refund; {extra.get('seconds', 0):.0f} s in all)")
    print(f"the fake Stripe made {extra['refunds_made']:.0f} refunds; {extra['refunds_sent']:.0f} succeeded here "
          f"(warm-up included){'' if extra['refunds_made'] == extra['refunds_sent'] else ': MISMATCH'}")
    for way in ways:
        for problem in way.errors[:3]:
            print(f"  {way.label}: {problem}")
        if len(way.errors) > 3:
            print(f"  {way.label}: ... {len(way.errors) - 3} more errors")


# ---- (2) throughput under throttling ---------------------------------------------------------------


class ChargedShopify(FakeShopify):
    """FakeShopify that also adds up the points it charged (each answer's actualQueryCost)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.points_charged = 0.0

    def handle(self, request: Request) -> Reply:
        reply = super().handle(request)
        body = reply.body if isinstance(reply.body, dict) else {}
        actual = ((body.get("extensions") or {}).get("cost") or {}).get("actualQueryCost")
        if isinstance(actual, int | float):
            with self.lock:
                self.points_charged += actual
        return reply


class CountedHubSpot(FakeHubSpot):
    """FakeHubSpot that also notes when each request arrived (the clock its rolling windows
    count by; `seen` stamps a request once it is answered) and what it was answered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[tuple[float, str, int]] = []  # (monotonic, route, status)

    def handle(self, request: Request) -> Reply:
        arrived = time.monotonic()
        reply = super().handle(request)
        with self.lock:
            self.arrivals.append((arrived, request.route, reply.status))
        return reply


@dataclass
class Waits:
    """What `on_wait` reported: waits and seconds waited, per connector."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    count: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __call__(self, connector: str, waited: float) -> None:
        with self.lock:
            self.count[connector] = self.count.get(connector, 0) + 1
            self.seconds[connector] = self.seconds.get(connector, 0.0) + waited


@dataclass
class Load:
    """A run of concurrent calls: how many, how long each took, and what failed."""

    seconds: float = 0.0
    ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def drive(registry: Registry, tool: str, make: Callable[[int], dict[str, Any]], *,
                concurrency: int, seconds: float, run: str) -> Load:
    """`concurrency` coroutines, each calling `tool` one call after the other until `seconds`."""
    load = Load()
    numbers = iter(range(10**9))
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            i = next(numbers)
            start = time.perf_counter()
            try:
                await registry.execute_async(tool, make(i), idempotency_key=f"{run}-{tool}-{i}")
            except ConnectorError as exc:
                load.errors[exc.code] = load.errors.get(exc.code, 0) + 1
                continue
            load.ms.append(1000 * (time.perf_counter() - start))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.seconds = time.monotonic() - started
    return load


def max_in_window(moments: list[float], span: float) -> int:
    """The most moments in any half-open window [t, t + span)."""
    ordered = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - span:
            first += 1
        most = max(most, last - first + 1)
    return most


def shopify_throughput(args: argparse.Namespace) -> dict[str, Any]:
    fake = ChargedShopify(maximum=args.shopify_maximum, restore=args.shopify_restore).start()
    variants = [fake.add_variant(price="40.00") for _ in range(max(1, args.concurrency))]
    waits = Waits()
    registry = build_registry("live", on_wait=waits, live=LiveConfig(shopify=ShopifyConfig(
        shop=fake.domain, access_token=fake.access_token, api_base=fake.base_url)))

    def price(i: int) -> dict[str, Any]:
        variant = variants[i % len(variants)]
        return {"product_id": str(variant.product), "variant_id": str(variant.number),
                "old_price": 4000, "new_price": 3000 + i % 2000, "currency": "usd"}

    try:
        load = asyncio.run(drive(registry, "shopify.update_price", price, concurrency=args.concurrency,
                                 seconds=args.seconds, run=uuid.uuid4().hex[:8]))
        client_throttled = sum(c.graphql.throttled for c in registry.connectors if isinstance(c, ShopifyLive))
    finally:
        registry.close()
        fake.stop()
    return {"load": load, "waits": waits.count.get("shopify", 0),
            "waited": waits.seconds.get("shopify", 0.0), "points": fake.points_charged,
            "throttled": fake.throttled_answers, "client_throttled": client_throttled,
            "requests": len(fake.seen), "maximum": args.shopify_maximum, "restore": args.shopify_restore}


def crm_throughput(args: argparse.Namespace) -> dict[str, Any]:
    fake = CountedHubSpot(rate_limit=args.crm_rate, window_seconds=10.0, autocreate=True).start()
    waits = Waits()
    registry = build_registry("live", on_wait=waits, live=LiveConfig(crm=CrmConfig(
        access_token=CRM_TOKEN, api_base=fake.base_url, requests_per_10s=args.crm_rate)))

    def note(i: int) -> dict[str, Any]:
        return {"record_id": str(1001 + i % 20), "body": f"Followed up on the quote ({i})."}

    seconds = max(12.0, 1.2 * args.seconds)
    try:
        load = asyncio.run(drive(registry, "crm.log_note", note, concurrency=args.concurrency,
                                 seconds=seconds, run=uuid.uuid4().hex[:8]))
    finally:
        registry.close()
        fake.stop()
    counted = [at for at, _, status in fake.arrivals if status != 429]
    searches = [at for at, route, status in fake.arrivals if status != 429 and route.endswith("/search")]
    answered = [s.at for s in fake.seen if s.status != 429]
    return {"load": load, "waits": waits.count.get("crm", 0), "waited": waits.seconds.get("crm", 0.0),
            "requests": len(fake.seen), "window_max": max_in_window(counted, 10.0),
            "window_max_answered": max_in_window(answered, 10.0),
            "search_max": max_in_window(searches, 1.0), "answered_429": fake.throttled,
            "limit": args.crm_rate, "search_limit": fake.search_per_second}


def _latency(load: Load) -> str:
    if not load.ms:
        return "no call completed"
    return f"median {statistics.median(load.ms):.0f} ms, p90 {percentile(load.ms, 0.9):.0f} ms per call"


def report_shopify(s: dict[str, Any], concurrency: int) -> None:
    load: Load = s["load"]
    ceiling = (s["maximum"] + s["restore"] * load.seconds) / load.seconds
    print(f"\nShopify, shopify.update_price, {concurrency} at a time for {load.seconds:.1f} s, bucket "
          f"{s['maximum']:g} points restored at {s['restore']:g}/s:")
    print(f"  {len(load.ms)} calls, {len(load.ms) / load.seconds:.1f} calls/s; {s['requests']} requests; "
          f"{_latency(load)}")
    print(f"  points charged {s['points']:.0f}: {s['points'] / load.seconds:.1f} points/s (restore rate "
          f"{s['restore']:g}/s; ceiling over the run with the bucket starting full {ceiling:.1f}/s)")
    print(f"  THROTTLED answers: {s['throttled']} (the connector counted {s['client_throttled']}); "
          f"client-side waits (on_wait): {s['waits']}, {s['waited']:.1f} s in all")
    if load.errors:
        print(f"  failed calls: {load.errors}")


def report_crm(c: dict[str, Any], concurrency: int) -> None:
    load: Load = c["load"]
    print(f"\nCRM, crm.log_note, {concurrency} at a time for {load.seconds:.1f} s, the fake allowing "
          f"{c['limit']} requests per rolling 10 s and {c['search_limit']} searches per second:")
    print(f"  {len(load.ms)} calls, {len(load.ms) / load.seconds:.2f} calls/s; {c['requests']} requests, "
          f"{c['requests'] / load.seconds:.2f} requests/s; {_latency(load)}")
    print(f"  most requests arriving in any 10 s: {c['window_max']} (limit {c['limit']}; by the answers' "
          f"times in the fake's log: {c['window_max_answered']}); most searches in any 1 s: {c['search_max']} "
          f"(limit {c['search_limit']})")
    print(f"  429 answers: {c['answered_429']}; client-side waits (on_wait): {c['waits']}, "
          f"{c['waited']:.1f} s in all")
    if load.errors:
        print(f"  failed calls: {load.errors}")


# ---- the run ---------------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = "%.2f %.2f %.2f" % os.getloadavg()
    return (f"{os.cpu_count()} cores ({model or platform.machine()}), load average {load}; "
            f"Python {platform.python_version()}; stripe {stripe.VERSION}, httpx {httpx.__version__}")


def summary(ways: list[Way], shop: dict[str, Any], crm: dict[str, Any]) -> None:
    print("\nsummary")
    print(f"{'measurement':<46}{'figure':>40}")
    base = ways[0]
    for way in ways:
        if not way.ms:
            continue
        figure = f"{way.median:.2f} ms (p90 {way.p90:.2f})"
        if way is not base:
            figure += f", {way.median - base.median:+.2f} ms, {way.median / base.median:.2f}x"
        print(f"{'refund, ' + way.label:<46}{figure:>40}")
    sl: Load = shop["load"]
    cl: Load = crm["load"]
    rows = [
        ("Shopify update_price: calls/s, points/s",
         f"{len(sl.ms) / sl.seconds:.1f}, {shop['points'] / sl.seconds:.1f} (restore {shop['restore']:g})"),
        ("Shopify THROTTLED answers, client waits", f"{shop['throttled']}, {shop['waits']}"),
        ("CRM log_note: calls/s, requests/s", f"{len(cl.ms) / cl.seconds:.2f}, {crm['requests'] / cl.seconds:.2f}"),
        ("CRM most requests in 10 s (limit), 429s",
         f"{crm['window_max']} ({crm['limit']}), {crm['answered_429']}"),
    ]
    for name, figure in rows:
        print(f"{name:<46}{figure:>40}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed refunds per way (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="refunds per way not counted, first (default 30)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds of Shopify load (default 10); the CRM's: 1.2x, at least 12")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent calls under throttling (default 8)")
    parser.add_argument("--shopify-maximum", type=float, default=200.0, help="the fake shop's bucket (points)")
    parser.add_argument("--shopify-restore", type=float, default=100.0, help="its restore rate (points/s)")
    parser.add_argument("--crm-rate", type=int, default=50,
                        help="requests per rolling 10 s, the fake's limit and the connector's (default 50)")
    parser.add_argument("--skip-gateway", action="store_true", help="leave out (c): no `warden serve`")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0 or args.seconds <= 0 or args.concurrency < 1 or args.crm_rate < 2:
        parser.error("--calls >= 1, --warmup >= 0, --seconds > 0, --concurrency >= 1, --crm-rate >= 2")
    if args.shopify_maximum < 13 or args.shopify_restore <= 0:
        parser.error("--shopify-maximum >= 13 (one call's mutation and read), --shopify-restore > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {machine()}")
    print("\n(1) overhead per refund: the SDK alone, the live connector, the whole gateway")
    ways, extra = overhead(args)
    report_overhead(ways, extra)
    print("\n(2) throughput under the providers' rate limits")
    shop = shopify_throughput(args)
    report_shopify(shop, args.concurrency)
    crm = crm_throughput(args)
    report_crm(crm, args.concurrency)
    summary(ways, shop, crm)
    failed = (any(way.errors for way in ways) or shop["load"].errors or crm["load"].errors
              or extra["refunds_made"] != extra["refunds_sent"])
    return 1 if failed or shop["throttled"] or crm["answered_429"] else 0


if __name__ == "__main__":
    sys.exit(main())
