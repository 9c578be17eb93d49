"""Replay and impact rates: recorded decisions per second of `warden replay --all` and `warden
policy impact`, beside `warden audit verify` over the same export as the baseline.

    python bench/replay_impact.py [--size 100000] [--runs 3] [--cache DIR]

Builds once (then cached in `--cache`) a SQLite gateway database holding `--size` decisions made
by the real pipeline (`Gateway.submit`, in-process, 16 threads) from the 21 packets of
`bench/packets/decide.json` at their autonomy levels (allowed, pending, denied, drafted across the
whole catalog), and its audit export. Then, each run in a fresh process, alternating:

  verify         `warden audit verify EXPORT --key ...`  (reads and hashes every entry: the floor)
  replay         `warden replay --all --export EXPORT`   (every decision decided again)
  impact/export  `warden policy impact CANDIDATE --export EXPORT --json`
  impact/db      `warden policy impact CANDIDATE --db URL --json`

The candidate is the shipped policies with the refund cap lowered from $5,000 to $10. Prints,
per command, the median wall-clock seconds, decisions per second and peak resident memory (the
commands stream: memory must not grow with the log). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKETS = json.loads((ROOT / "bench" / "packets" / "decide.json").read_text())


def build(size: int, folder: Path) -> None:
    """The database (folder/warden.db), its key and its export (folder/export)."""
    sys.path.insert(0, str(ROOT))
    from gateway.config import Settings
    from gateway.engine.agents import Agent
    from gateway.engine.models import Packet
    from gateway.pipeline.errors import PipelineError
    from gateway.runtime.runtime import Runtime

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    settings = Settings(database_url=f"sqlite:///{partial / 'warden.db'}", data_dir=partial / "data",
                        signing_key_file=partial / "data" / "ledger.key", policy_reload=False,
                        outbox_workers=1, log_json=True)
    runtime = Runtime(settings)
    agents = {level: Agent(name=f"bench-{level.lower()}", autonomy=level, tools=("*",))
              for level in ("A0", "A1", "A2", "A3", "A4")}

    def packet(n: int, case: dict) -> tuple[Agent, Packet]:
        agent = agents[case["autonomy"]]
        return agent, Packet.model_validate({**case["packet"], "packet_id": f"bench-{n}", "agent": agent.name})

    # the packets the gateway accepts (a few of the engine benchmark's have params it refuses)
    cases = []
    for case in PACKETS:
        try:
            runtime.gateway.check_packet(*packet(-1, case), record=False)
        except PipelineError:
            continue
        cases.append(case)

    def submit(n: int) -> None:
        runtime.gateway.submit(*packet(n, cases[n % len(cases)]))

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(submit, range(size)), 1):
            if done % 10_000 == 0:
                print(f"  built {done} decisions ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    runtime.stop()
    exported = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "export", "--db", settings.database_url,
                               "--out", str(partial / "export"), "--sign-with", str(settings.signing_key_file)],
                              cwd=ROOT, capture_output=True, text=True)
    if exported.returncode != 0:
        raise SystemExit(f"export failed: {exported.stderr}")
    partial.rename(folder)


def candidate(folder: Path) -> Path:
    target = folder / "candidate"
    if not target.exists():
        shutil.copytree(ROOT / "policies", target, ignore=shutil.ignore_patterns("tests", "examples", "*.md"))
        payments = target / "payments.policy"
        text = payments.read_text()
        payments.write_text(text.replace("deny refund_hard_cap when params.amount > 500000",
                                         "deny refund_hard_cap when params.amount > 1000"))
    return target


def timed(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one command in a fresh process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "gateway.cli", *argv], cwd=ROOT, stdout=out, stderr=err,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} failed ({code}): {err.read().decode()}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/warden-bench-replay"))
    args = parser.parse_args()
    folder = args.cache / f"log-{args.size}"
    if not folder.exists():
        print(f"building {args.size} decisions through the pipeline (once; cached in {folder})", file=sys.stderr)
        build(args.size, folder)
    export, db = folder / "export", f"sqlite:///{folder / 'warden.db'}"
    key = (export / "log.pub").read_text().strip()
    commands = {
        "verify": ["audit", "verify", str(export), "--key", key],
        "replay": ["replay", "--all", "--export", str(export)],
        "impact/export": ["policy", "impact", str(candidate(folder)), "--export", str(export), "--json"],
        "impact/db": ["policy", "impact", str(candidate(folder)), "--db", db, "--json"],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for run in range(args.runs):
        for name, argv in commands.items():
            wall, peak, outputs[name] = timed(argv)
            walls[name].append(wall)
            peaks[name] = max(peak, peaks.get(name, 0.0))
        print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{n} {w[-1]:.1f} s" for n, w in walls.items()),
              file=sys.stderr)
    report = json.loads(outputs["impact/export"])
    decisions = report["decisions"]["replayed"]
    print(f"\n{decisions} recorded decisions ({args.size} submitted), {os.cpu_count()} CPUs, "
          f"median of {args.runs} runs each")
    print(f"{'command':<15}{'median s':>10}{'decisions/s':>14}{'vs verify':>11}{'peak RSS':>11}")
    floor = statistics.median(walls["verify"])
    for name, times in walls.items():
        median = statistics.median(times)
        print(f"{name:<15}{median:>10.2f}{decisions / median:>14,.0f}{median / floor:>10.2f}x"
              f"{peaks[name]:>7.0f} MiB")
    print("(peak RSS per command; run with --size 10000 beside it: the commands stream, so it stays flat)")
    print(f"impact: {report['decisions']['changed']} changed, transitions "
          + ", ".join(f"{t['from']}->{t['to']} {t['count']}" for t in report["transitions"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
