"""Render times of the console's busiest pages on a big database.

    python bench/console_pages.py [--decisions 100000] [--pending 1000] [--requests 20] [--json FILE]

Starts a real gateway (uvicorn on loopback, SQLite in a temporary folder, the console mounted;
`tests/gateway_server.start_server`), submits a handful of real packets through the pipeline
(refunds that execute, escalate or are denied, CRM notes; from agents a1..a4), then fills the
`decisions` table directly, in one transaction, with copies of those rows under new ids, packet
ids and times: `--pending` pending approvals (expiring over the next 4 hours) and history up to
`--decisions` rows in all, spread over the last 100 days. (Through the pipeline, 100,000
decisions would take longer than everything measured here; the pages read only this table.)

Then it signs the approver in with an HTTP client (the real form: sign-in cookie and token, then
the session cookie) and times, over HTTP, `--requests` requests of each page (after 2 not
counted): the inbox (every pending approval), a decision, the activity page's first page, a
filtered page (agent and status), a page deep in the history (the "Older" key of a row about
95% of the way back) and the page after the first (its "Older" link). The time is the client's,
request sent to body read, on loopback. Prints median and p95 and the deep page's median against
the first page's: key paging should keep them about equal.

`--without-index` also drops `ix_decisions_created` (schema version 4: `decisions
(created_at, decision_id)`) after the first measurement and measures again, printing both: the
figures beside their baseline. Figures depend on the machine; the script decides nothing.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as `python bench/X.py`, this folder comes first on sys.path, where `ledger.py` would hide the
# `ledger` package: the folder is taken off the path before anything else is imported.
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "console"))

import httpx  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from console_support import PASSWORD, give_passwords  # noqa: E402
from console.queries import INBOX_LIMIT  # noqa: E402
from gateway.store.schema import decisions  # noqa: E402
from gateway_server import PEOPLE, Server, note, refund, server_config, start_server  # noqa: E402

DAY = 86_400.0
HISTORY_DAYS = 100
INDEX = "ix_decisions_created"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------ data


def templates(server: Server) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Real rows made by the pipeline: (settled ones, pending ones)."""
    ids = []
    for agent in ("a1", "a2", "a3", "a4"):
        for packet in (refund(agent, 2500), refund(agent, 72000), refund(agent, 600000), note(agent)):
            answer = server.client(agent).post("/v1/actions", json=packet)
            assert answer.status_code in (200, 202), answer.text
            ids.append(answer.json()["decision_id"])
    time.sleep(0.5)  # executions recorded
    with server.runtime.db.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(decisions).where(decisions.c.decision_id.in_(ids)))]
    settled = [r for r in rows if r["status"] not in ("pending_approval", "executing")]
    pending = [r for r in rows if r["status"] == "pending_approval"]
    assert settled and pending, [r["status"] for r in rows]
    return settled, pending


def copy(row: dict[str, Any], i: int, created_at: float, expires_at: float | None) -> dict[str, Any]:
    millis = int(created_at * 1000)
    decision_id = f"dec_{millis:012x}{i:014x}"
    packet_id = f"bench-{i:09d}"
    new = dict(row)
    new["decision_id"] = decision_id
    new["packet_id"] = packet_id
    new["decision"] = row["decision"].replace(row["decision_id"], decision_id).replace(row["packet_id"], packet_id)
    new["packet"] = row["packet"].replace(row["packet_id"], packet_id)
    new["created_at"] = created_at
    new["updated_at"] = created_at
    new["expires_at"] = expires_at
    return new


def fill(server: Server, total: int, pending: int) -> dict[str, Any]:
    settled, waiting = templates(server)
    now = time.time()
    history = total - pending - len(settled)
    pending -= len(waiting)  # the real pending rows count too
    start = now - HISTORY_DAYS * DAY
    step = (HISTORY_DAYS * DAY - 3600) / max(1, history)
    rows = []
    for i in range(history):
        rows.append(copy(settled[i % len(settled)], i, start + i * step, None))
    for j in range(pending):
        i = history + j
        rows.append(copy(waiting[j % len(waiting)], i, now - 3600 + j * (3000 / pending), now + 600 + j * 10))
    began = time.perf_counter()
    with server.runtime.db.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(decisions), rows[chunk:chunk + 5000])
    took = time.perf_counter() - began
    with server.runtime.db.connect() as conn:
        count = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
    deep = rows[int(history * 0.05)]  # ~95% of the way back from the newest
    return {"count": count, "insert_seconds": took, "deep_key": f"{deep['created_at']!r}~{deep['decision_id']}",
            "decision_id": rows[history // 2]["decision_id"], "agent": rows[0]["agent"]}


# ------------------------------------------------------------------ HTTP


def signed_in(server: Server, who: str) -> httpx.Client:
    client = httpx.Client(base_url=server.base_url, timeout=60)
    form = client.get("/console/login")
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    answer = client.post("/console/login", data={"email": PEOPLE[who][0], "password": PASSWORD,
                                                "signin_token": token.group(1), "next": "/console/"})
    assert answer.status_code == 303, (answer.status_code, answer.text[:500])
    assert "warden_session" in client.cookies
    return client


def timed(client: httpx.Client, path: str, requests: int, warmup: int = 2) -> tuple[list[float], httpx.Response]:
    times = []
    answer = None
    for i in range(warmup + requests):
        began = time.perf_counter()
        answer = client.get(path)
        took = (time.perf_counter() - began) * 1000
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        if i >= warmup:
            times.append(took)
    assert answer is not None
    return times, answer


def older_link(html: str) -> str:
    found = re.search(r'href="([^"]*/activity\?[^"]*before=[^"]+)" rel="next"', html)
    assert found, "no Older link"
    return found.group(1).replace("&amp;", "&")


def measure(client: httpx.Client, data: dict[str, Any], requests: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    out["inbox"], inbox = timed(client, "/console/", requests)
    shown = min(data["pending"], INBOX_LIMIT)  # the soonest to expire; a link leads to the rest
    assert inbox.text.count('id="row-') == shown, inbox.text.count('id="row-')
    assert data["pending"] <= INBOX_LIMIT or f"of {data['pending']} pending" in inbox.text
    out["decision"], _ = timed(client, f"/console/decisions/{data['decision_id']}", requests)
    out["activity first page"], first = timed(client, "/console/activity", requests)
    assert first.text.count('/console/decisions/dec_') == 50, "the first page is not a full page"
    out["activity filtered (agent, status)"], _ = timed(
        client, f"/console/activity?agent={data['agent']}&status=executed", requests)
    out["activity second page (Older)"], _ = timed(client, older_link(first.text), requests)
    deep_path = "/console/activity?" + httpx.QueryParams({"before": data["deep_key"]}).__str__()
    out["activity deep page (~95,000 back)"], deep = timed(client, deep_path, requests)
    assert deep.text.count('/console/decisions/dec_') == 50, "the deep page is not a full page"
    return out


def report(title: str, figures: dict[str, list[float]]) -> None:
    print(title)
    print()
    print(f"| {'page':<36} | {'median':>9} | {'p95':>9} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 11}|")
    for name, values in figures.items():
        print(f"| {name:<36} | {statistics.median(values):>6.1f} ms | {percentile(values, 0.95):>6.1f} ms |")
    first = statistics.median(figures["activity first page"])
    deep = statistics.median(figures["activity deep page (~95,000 back)"])
    print()
    second = statistics.median(figures["activity second page (Older)"])
    print(f"deep page / first page (medians): {deep / first:.2f}x; deep page / second page: {deep / second:.2f}x")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--without-index", action="store_true",
                        help=f"then drop {INDEX} and measure again (the figures before schema version 4)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="warden-console-pages-") as tmp:
        tmp_path = Path(tmp)
        from browser_support import free_port

        port = free_port()
        settings = server_config(f"sqlite:///{tmp_path / 'warden.db'}", tmp_path, console=True,
                                 public_url=f"http://localhost:{port}", log_level="warning")
        server, stop = start_server(settings, port=port)
        try:
            give_passwords(server)
            data = fill(server, args.decisions, args.pending)
            with server.runtime.db.connect() as conn:
                data["pending"] = conn.execute(select(func.count()).select_from(decisions)
                                               .where(decisions.c.status == "pending_approval")).scalar_one()
                indexes = {row[1] for row in conn.execute(text("PRAGMA index_list('decisions')"))}
            print(f"{data['count']:,} decisions, {data['pending']:,} pending (inserted in "
                  f"{data['insert_seconds']:.1f} s); SQLite; {args.requests} requests per page after 2 warm-up")
            print()
            client = signed_in(server, "approver")
            label = "with" if INDEX in indexes else "without"
            results[label] = measure(client, data, args.requests)
            report(f"Console pages, {label} index {INDEX}:", results[label])
            if args.without_index and INDEX in indexes:
                with server.runtime.db.begin() as conn:
                    conn.execute(text(f"DROP INDEX {INDEX}"))
                results["without"] = measure(client, data, args.requests)
                report(f"Console pages, without index {INDEX} (dropped for comparison):", results["without"])
            client.close()
        finally:
            stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
