"""Offline verification speed: entries per second of ``verify_export`` on a synthetic log.

    python bench/verify_speed.py [--size 1000000] [--runs 3] [--baseline REV] [--cache DIR]

Builds (once, then cached on disk) an export folder of ``--size`` synthetic decision entries
(``ledger.synthetic``: checkpoints every 1,000 entries, a few key rotations), then times
``verify_export`` on it ``--runs`` times, each in a fresh process, and prints CPU
(``time.process_time``) and wall-clock entries/s per run and their medians.

``--baseline REV`` also times the verifier as it was at git revision ``REV`` (its ``ledger``
package checked out into a temporary folder and put first on the child's ``sys.path``),
alternating with the working tree run by run, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CHILD = """
import json, sys, time
import ledger.verify as v
from pathlib import Path
folder = Path(sys.argv[1])
key = (folder / "log.pub").read_text().strip()
cpu, wall = time.process_time(), time.perf_counter()
report = v.verify_export(folder, key)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"cpu": cpu, "wall": wall, "ok": report.ok, "entries": report.entries,
                  "module": v.__file__}))
"""


def build_export(size: int, folder: Path) -> None:
    """Write ``entries.jsonl``, ``checkpoints/<size>.note`` and ``log.pub`` for a synthetic log."""
    sys.path.insert(0, str(ROOT))
    from ledger.synthetic import build_log

    rotations = [size // 4, size // 2] if size >= 8 else []
    log = build_log(size, checkpoint_every=1000, rotate_at=rotations)
    tmp = folder.with_name(folder.name + ".partial")
    (tmp / "checkpoints").mkdir(parents=True, exist_ok=True)
    with (tmp / "entries.jsonl").open("wb") as f:
        for raw in log.entries:
            f.write(raw)
            f.write(b"\n")
    for n, note in log.checkpoints.items():
        (tmp / "checkpoints" / f"{n:012d}.note").write_text(note)
    (tmp / "log.pub").write_text(log.first_key + "\n")
    tmp.rename(folder)


def checkout(rev: str, into: Path) -> None:
    """The ``ledger`` package as it was at ``rev``, extracted under ``into``."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "ledger"],
        check=True, capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")


def run_once(folder: Path, package_root: Path) -> dict[str, object]:
    """One timed verification in a fresh interpreter importing ``ledger`` from package_root."""
    env = dict(os.environ, PYTHONPATH=str(package_root))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder)], check=True, capture_output=True, env=env,
        cwd=package_root, text=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    expected = package_root / "ledger" / "verify.py"
    if Path(str(result["module"])).resolve() != expected.resolve():
        raise SystemExit(f"child imported {result['module']}, not {expected}")
    if not result["ok"]:
        raise SystemExit(f"verification failed on the synthetic log ({package_root})")
    return result


def main() -> int:
    """Parse arguments, build or reuse the export, run and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time the verifier at this revision")
    parser.add_argument("--cache", type=Path, help="folder for the built export (reused)")
    args = parser.parse_args()

    folder = args.cache or Path(tempfile.gettempdir()) / f"warden-verify-speed-{args.size}"
    if not (folder / "log.pub").is_file():
        print(f"building a {args.size:,}-entry export in {folder} ...", flush=True)
        started = time.perf_counter()
        build_export(args.size, folder)
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)

    variants = {"current": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            checkout(args.baseline, Path(tmp))
            variants = {f"baseline {args.baseline}": Path(tmp), **variants}
        results: dict[str, list[dict[str, object]]] = {name: [] for name in variants}
        for run in range(1, args.runs + 1):
            for name, package_root in variants.items():
                r = run_once(folder, package_root)
                results[name].append(r)
                print(f"run {run} {name:>20}: {args.size / r['cpu']:>9,.0f} entries/s CPU "  # type: ignore[operator]
                      f"({r['cpu']:.2f} s), {args.size / r['wall']:>9,.0f} entries/s wall "  # type: ignore[operator]
                      f"({r['wall']:.2f} s)", flush=True)
    print(f"median of {args.runs} runs, {args.size:,} entries:")
    for name, rs in results.items():
        cpu = statistics.median(float(r["cpu"]) for r in rs)  # type: ignore[arg-type]
        wall = statistics.median(float(r["wall"]) for r in rs)  # type: ignore[arg-type]
        print(f"  {name:>20}: {args.size / cpu:>9,.0f} entries/s CPU, "
              f"{args.size / wall:>9,.0f} entries/s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
