"""Suite ``retention`` of ``make bench``: remove the 60 oldest whole days of the 1M-event bench lake,
and verify the integrity chain over all 365 days.

Ours: :func:`transforms.retention.apply_retention` on a copy of the enriched lake (every table that
holds event data; vacuum excluded, as in the target), and :func:`transforms.integrity.verify` after
:func:`update_digests` built the chain (not timed). Baseline, same run: the same 60 days dropped from
``activity_raw`` the way a plain Parquet lake would do it — read the table, filter, write it back.
PostgreSQL's ``DELETE … WHERE created_at < …`` of the same rows took 3.1 s on this machine class
(measured separately, not rerun here). Targets: retention ≤ 0.5 s, verify ≤ 10 s.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.enrich import enriched_lake
from bench.harness import Bench, Outcome, measurement, run_child, say, say_seconds

WHOLE_DAYS = 60


def _policy_and_now(lake):
    from transforms.durations import Duration
    from transforms.lake import ACTIVITY_RAW
    from transforms.retention import RetentionPolicy

    days = lake.days(ACTIVITY_RAW)
    now = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    return RetentionPolicy(default=Duration(days=len(days) - WHOLE_DAYS)), now


@measurement("retention_ours")
def measure_retention(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.lake import Lake
    from transforms.retention import apply_retention

    copy = Path(spec["copy"])
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(spec["lake"], copy)  # not timed
    lake = Lake.at(copy)
    policy, now = _policy_and_now(lake)
    with profiler.timed():
        report = apply_retention(lake, policy, now=now)
    shutil.rmtree(copy, ignore_errors=True)
    ok = len(report.whole_days) == WHOLE_DAYS
    return {"rows": report.deleted, "tables": dict(report.tables), "whole_days": len(report.whole_days),
            "checks": [{"what": f"{WHOLE_DAYS} whole days deleted", "got": len(report.whole_days),
                        "expected": WHOLE_DAYS, "ok": ok}]}


@measurement("retention_baseline")
def measure_baseline(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import polars as pl

    from transforms.lake import Lake

    lake = Lake.at(spec["lake"])
    policy, now = _policy_and_now(lake)
    first_kept = policy.whole_days_before(now)
    target = Path(spec["copy"])
    shutil.rmtree(target, ignore_errors=True)
    with profiler.timed():
        kept = lake.scan("activity_raw").filter(pl.col("day") >= first_kept).collect()
        kept.write_delta(str(target), mode="overwrite", delta_write_options={"partition_by": ["day"]})
    shutil.rmtree(target, ignore_errors=True)
    return {"rows": kept.height}


@measurement("verify_ours")
def measure_verify(spec: dict[str, Any], profiler) -> dict[str, Any]:
    from transforms.integrity import ACTIVITY_DIGESTS, update_digests, verify
    from transforms.lake import ACTIVITY_RAW, Lake

    lake = Lake.at(spec["lake"])
    if not lake.exists(ACTIVITY_DIGESTS):
        update_digests(lake, lake.days(ACTIVITY_RAW))  # not timed: the ingest job does this as it goes
    with profiler.timed():
        report = verify(lake)
    return {"rows": report.events, "days": report.days,
            "checks": [{"what": "the chain verifies", "got": report.ok, "expected": True, "ok": report.ok}]}


@measurement("verify_baseline")
def measure_verify_baseline(spec: dict[str, Any], profiler) -> dict[str, Any]:
    """The least a verification can do: read every payload of activity_raw (Polars) and SHA-256 each
    day's payloads in id order — no digest table, no chain, no Delta log checks."""
    import hashlib

    import polars as pl

    from transforms.lake import ACTIVITY_RAW, Lake

    lake = Lake.at(spec["lake"])
    with profiler.timed():
        raw = lake.scan(ACTIVITY_RAW).select("day", "id", "payload").sort("day", "id").collect()
        hashes = {}
        for (day,), group in raw.group_by("day", maintain_order=True):
            digest = hashlib.sha256()
            for payload in group["payload"]:
                digest.update(payload.encode())
            hashes[day] = digest.hexdigest()
    return {"rows": raw.height, "days": len(hashes)}


def run(bench: Bench) -> Outcome:
    """Retention and verify beside their baselines on the enriched bench lake (built here when no earlier
    suite did)."""
    say("suite retention: delete 60 whole days, verify the chain, each in a fresh process")
    work = bench.work
    lake = work / "enrich_lake"
    failed = enriched_lake(lake, bench.landing, work, bool({"query", "enrich", "export"} & set(bench.suites)),
                           "retention")
    if failed:
        return Outcome(section={"retention": failed})
    results = {}
    for key, measure in (("retention", measure_retention), ("baseline", measure_baseline),
                         ("verify", measure_verify), ("verify_baseline", measure_verify_baseline)):
        say(f"- {key}")
        results[key] = run_child(measure, {"name": f"{key}_retention", "lake": str(lake),
                                           "copy": str(work / "retention_copy")}, work)
        say_seconds(results[key])
    return Outcome(section=results, checks=[c for r in results.values() for c in r.get("checks", [])])


def report(outcome: Outcome, say) -> None:
    """Retention and verify beside their baselines, with their targets."""
    results: dict[str, dict[str, Any]] = outcome.section
    say()
    say("retention and integrity on the 1M-event lake, each in a fresh process")
    for key, label, target in (("retention", f"ours: retention of the {WHOLE_DAYS} oldest days (every table, "
                                                "before vacuum)", 0.5),
                               ("baseline", "baseline: rewrite activity_raw without those days (Polars)", None),
                               ("verify", "ours: verify the chain over every day", 10.0),
                               ("verify_baseline", "baseline: read every payload and SHA-256 each day (Polars)",
                                None)):
        r = results.get(key, {})
        if not r or "error" in r:
            say(f"  {label:<72}{'FAILED' if r else 'n/a':>9}  {r.get('error', '')[:60]}")
            continue
        status = "" if target is None else ("PASS" if r["seconds"] <= target else "MISS")
        say(f"  {label:<72}{r['seconds']:>8.2f} s  {r['rows']:>9,} rows  "
            f"{'target <= ' + str(target) if target else '':<14}{status}")
    say("  (PostgreSQL DELETE … WHERE created_at < … of the same rows: 3.1 s, measured separately)")
