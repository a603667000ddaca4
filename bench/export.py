"""Suite ``export`` of ``make bench``: the last 90 days of the bench lake (~250,000 rows) to CSV and XLSX.

Ours: :func:`destinations.exports.run_export` (reads day batches at a pinned version, neutralises
formulas, writes the file, hashes it, writes the manifest). Baselines, same run and same rows: the
frame collected in memory first (not timed), then ``polars.write_csv`` / ``polars.write_excel``
(xlsxwriter underneath). Each measurement runs in its own process, so its peak RSS is its own.
Targets: CSV ≤ 1.7 s (PostgreSQL ``COPY … TO CSV`` of the same rows: 1.66 s), XLSX ≤ 20 s, peak ≤ 2 GiB.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.enrich import enriched_lake
from bench.harness import Bench, Outcome, measurement, run_child, say, say_seconds

DAYS = 90
TARGETS = {"csv": 1.7, "xlsx": 20.0}
MEMORY_TARGET_GIB = 2.0


def _filter(lake):
    from transforms.filters import ActivityFilter
    from transforms.lake import ACTIVITY_LOG

    last = lake.days(ACTIVITY_LOG)[-1]
    return ActivityFilter(start=last - timedelta(days=DAYS - 1), end=last)


@measurement("export_ours")
def measure_ours(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from destinations.exports import run_export, verify_manifest
    from transforms.lake import Lake

    lake = Lake.at(spec["lake"])
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    activity_filter = _filter(lake)
    with profiler.timed():
        result = run_export(lake, activity_filter, spec["format"], str(out) + "/", name="bench")
    ok = verify_manifest(result.manifest_uri)[1] == []
    size = result.manifest["files"][0]["bytes"]
    shutil.rmtree(out, ignore_errors=True)
    return {"rows": result.manifest["rows"], "bytes": size,
            "checks": [{"what": f"{spec['format']} export verifies against its manifest", "got": ok,
                        "expected": True, "ok": ok}]}


@measurement("export_polars")
def measure_baseline(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import polars as pl

    from transforms.export import iter_export
    from transforms.lake import Lake

    lake = Lake.at(spec["lake"])
    frame = pl.concat([rows for _, rows in iter_export(lake, _filter(lake))])  # not timed
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    with profiler.timed():
        if spec["format"] == "csv":
            frame.write_csv(out / "bench.csv")
        else:
            frame.write_excel(out / "bench.xlsx")
    size = (out / f"bench.{spec['format']}").stat().st_size
    shutil.rmtree(out, ignore_errors=True)
    return {"rows": frame.height, "bytes": size}


def run(bench: Bench) -> Outcome:
    """CSV and XLSX, ours and Polars', on the enriched bench lake (built here when no earlier suite did)."""
    say("suite export: 90 days to CSV and XLSX, ours beside Polars' writers, each in a fresh process")
    work = bench.work
    lake = work / "enrich_lake"
    failed = enriched_lake(lake, bench.landing, work, bool({"query", "enrich"} & set(bench.suites)), "export")
    if failed:
        return Outcome(section={"ours_csv": failed}, errors=["ours_csv"])
    results = {}
    for fmt in ("csv", "xlsx"):
        for who, measure in (("ours", measure_ours), ("polars", measure_baseline)):
            say(f"- {who}: {fmt}")
            results[f"{who}_{fmt}"] = run_child(measure, {"name": f"{who}_export_{fmt}", "lake": str(lake),
                                                          "format": fmt, "out": str(work / f"export-{who}")}, work)
            say_seconds(results[f"{who}_{fmt}"])
    return Outcome(section=results, checks=[c for r in results.values() for c in r.get("checks", [])],
                   errors=[key for key, r in results.items() if "error" in r and key.startswith("ours")])


def report(outcome: Outcome, say) -> None:
    """The table of the four exports and the targets of ours."""
    results: dict[str, dict[str, Any]] = outcome.section
    say()
    say(f"exports: the last {DAYS} days of activity_log, each in a fresh process")
    say(f"  {'measurement':<52}{'seconds':>9}{'peak GiB':>10}{'rows':>10}{'MB':>8}")
    for key, label in (("ours_csv", "ours: CSV (+ manifest, SHA-256)"), ("polars_csv", "polars.write_csv, frame in memory"),
                       ("ours_xlsx", "ours: XLSX (+ manifest, SHA-256)"),
                       ("polars_xlsx", "polars.write_excel, frame in memory")):
        r = results.get(key, {})
        if "error" in r or not r:
            say(f"  {label:<52}{'FAILED' if r else 'n/a':>9}  {r.get('error', '')[:80]}")
            continue
        say(f"  {label:<52}{r['seconds']:>9.2f}{r['peak_rss'] / 1024 ** 3:>10.2f}{r['rows']:>10,}{r['bytes'] / 1e6:>8.0f}")
    for fmt, target in TARGETS.items():
        r = results.get(f"ours_{fmt}", {})
        if "seconds" in r:
            status = "PASS" if r["seconds"] <= target else "MISS"
            memory = "PASS" if r["peak_rss"] / 1024 ** 3 <= MEMORY_TARGET_GIB else "MISS"
            say(f"  {fmt}: {r['seconds']:.2f} s (target <= {target}) {status}; peak {r['peak_rss'] / 1024 ** 3:.2f} GiB "
                f"(target <= {MEMORY_TARGET_GIB}) {memory}")
