"""Leaf building speed: ``transforms.commitments`` over the bench landing's events.

    .venv/bin/python -m bench.leaves --events 100000

Writes the bench landing (``pipelines.demo.write_bench_landing``, not timed) into ``--dir``, reads
its lines as payload strings, then times :func:`transforms.commitments.build_leaves` (the batch path the
ingest uses) and, for comparison (``--single``), :func:`transforms.commitments.build_leaf` one event at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl


def report(what: str, events: int, seconds: float, cpu: float) -> None:
    """Wall-clock and CPU time (the CPU figure is the one to compare on a shared machine)."""
    print(json.dumps({"what": what, "events": events, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "events_per_second": round(events / seconds), "events_per_cpu_second": round(events / cpu)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--dir", default="bench/data")
    parser.add_argument("--single", action="store_true", help="also time build_leaf per event")
    args = parser.parse_args()
    from pipelines.demo import write_bench_landing
    from transforms import commitments

    landing = Path(args.dir) / f"leaves-{args.events}"
    if not landing.exists():
        write_bench_landing(landing, events=args.events, days=30, files=1)
    payloads = pl.Series("payload", [line for f in sorted(landing.glob("*.jsonl"))
                                     for line in f.read_text().splitlines() if line])
    if hasattr(commitments, "build_leaves"):
        start, cpu = time.perf_counter(), time.process_time()
        commitments.build_leaves(payloads)
        report("build_leaves", len(payloads), time.perf_counter() - start, time.process_time() - cpu)
    if args.single or not hasattr(commitments, "build_leaves"):
        start, cpu = time.perf_counter(), time.process_time()
        for text in payloads:
            commitments.build_leaf(json.loads(text))
        report("build_leaf per event", len(payloads), time.perf_counter() - start, time.process_time() - cpu)


if __name__ == "__main__":
    main()
