"""A backfill of every day (normalize + enrich as Dagster runs of 31 days) with one worker and with
several, on the same ingested lake, side by side: what parallel partitions buy on this machine.

    python -m bench.backfill                       # 1M events / 365 days, workers 1 and 4
    python -m bench.backfill --events 100000 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import DEFAULT_DIR, ROOT, bench_ingest, prepare_landing, say


def backfill(lake: Path, home: Path, workers: int) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ACTIVITYLOG_LAKE": str(lake), "DAGSTER_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "activitylog"), "backfill", "--workers", str(workers),
                           "--quiet"], env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"backfill with {workers} workers failed:\n{done.stdout}\n{done.stderr}")
    return {"workers": workers, "seconds": round(seconds, 2), "summary": done.stdout.strip().splitlines()[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 1_000_000)))
    parser.add_argument("--workers", default="1,4", help="comma-separated worker counts (default 1,4)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--keep", action="store_true", help="reuse a landing written earlier")
    args = parser.parse_args(argv)
    landing, _ = prepare_landing(argparse.Namespace(events=args.events, days=365, files=20,
                                                    dir=args.dir.resolve(), keep=args.keep))
    work = args.dir.resolve() / "work-backfill"
    lake = work / "lake"
    shutil.rmtree(work, ignore_errors=True)
    say(f"- ingesting {args.events:,} events (not timed)")
    from pipelines.demo import write_reference_data
    from transforms.lake import Lake

    bench_ingest()(Lake.at(lake), str(landing))
    write_reference_data(lake / "reference", seed=1)  # what enrichment joins, as in the other suites
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        say(f"- backfill of every day, {workers} worker(s)")
        rows.append(backfill(lake, work / f"dagster-{workers}", workers))
    base = rows[0]["seconds"]
    say()
    say(f"{'workers':>8} {'seconds':>9} {'speed-up':>9}   (cores: {os.cpu_count()})")
    for row in rows:
        row["speedup"] = round(base / row["seconds"], 2)
        say(f"{row['workers']:>8} {row['seconds']:>9.1f} {row['speedup']:>8.2f}×   {row['summary']}")
    out = args.dir.resolve() / "results" / "backfill.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"events": args.events, "runs": rows}, indent=2))
    say(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
