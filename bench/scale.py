"""The scaling curve: ingest, normalize + enrich and the query set at several sizes (default 100k, 1M
and 5M events over 365 days), each step in a fresh process, to show how time and memory grow.

    python -m bench.scale                      # 100k, 1M, 5M (the 5M landing takes a while to write once)
    python -m bench.scale --sizes 100000,1000000 --keep

Time should grow linearly (or better) with the events; the 30-day queries with the events per day;
the history of one item should stay flat (it reads one bucket of activity_item_history).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.harness import (
    DEFAULT_DIR, GIB, bench_ingest, bench_references, measurement, prepare_landing, run_child, say,
)
from bench.queries import measure_ours as measure_queries

QUERY_NAMES = ["history", "org_scopes", "detail_active", "search", "user_deleted_flags"]


@measurement("scale_ingest")
def scale_ingest(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import Lake

    ingest = bench_ingest()
    with profiler.timed():
        report = ingest(Lake.at(spec["lake"]), spec["landing"])
    return {"rows": report.accepted}


@measurement("scale_refresh")
def scale_refresh(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import ACTIVITY_RAW, Lake
    from transforms.refresh import refresh_all

    lake = Lake.at(spec["lake"])
    references = bench_references(spec["reference"])
    with profiler.timed():
        refresh_all(lake, lake.days(ACTIVITY_RAW), references=references)
    return {"rows": lake.scan("activity_log").select("id").collect().height}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="comma-separated event counts")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--keep", action="store_true", help="reuse landings written earlier")
    args = parser.parse_args(argv)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        landing_args = argparse.Namespace(events=size, days=365, files=20, dir=args.dir.resolve(), keep=args.keep)
        landing, _ = prepare_landing(landing_args)
        work = args.dir.resolve() / "work-scale" / str(size)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        lake = work / "lake"
        spec = {"lake": str(lake), "landing": str(landing), "reference": str(work / "reference")}
        say(f"- {size:,} events: ingest")
        ingest = run_child(scale_ingest, {**spec, "name": f"ingest_{size}"}, work)
        say(f"- {size:,} events: normalize + enrich")
        refresh = run_child(scale_refresh, {**spec, "name": f"refresh_{size}"}, work)
        say(f"- {size:,} events: queries")
        queries = run_child(measure_queries, {"name": f"query_{size}", "lake": str(lake)}, work)
        rows.append({"events": size, "ingest": ingest, "refresh": refresh, "queries": queries})
        shutil.rmtree(work, ignore_errors=True)
    say()
    say(f"{'events':>10}{'ingest s':>10}{'GiB':>6}{'enrich s':>10}{'GiB':>6}  "
        + "".join(f"{q:>20}" for q in QUERY_NAMES) + "   (query ms, warm median)")
    for row in rows:
        def fig(r: dict, key: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
            return "FAILED" if "error" in r else fmt.format(r[key] * scale)
        queries = row["queries"].get("queries", {})
        say(f"{row['events']:>10,}{fig(row['ingest'], 'seconds'):>10}{fig(row['ingest'], 'peak_rss', 1 / GIB):>6}"
            f"{fig(row['refresh'], 'seconds'):>10}{fig(row['refresh'], 'peak_rss', 1 / GIB):>6}  "
            + "".join(f"{queries[q]['ms']:>20.1f}" if q in queries else f"{'FAILED':>20}" for q in QUERY_NAMES))
    out = args.dir.resolve() / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, default=str))
    say(f"results: {out}")
    return 1 if any("error" in r[k] for r in rows for k in ("ingest", "refresh", "queries")) else 0


if __name__ == "__main__":
    sys.exit(main())
