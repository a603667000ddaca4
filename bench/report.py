"""The common table of ``make bench``: every measurement of the suites ``ingest`` and ``enrich`` (seconds,
peak and starting RSS, CPU seconds, MB/s), the targets that pair ours with its baselines (PASS/MISS), and
where the time of each profiled measurement goes."""

from __future__ import annotations

from typing import Any

from bench.harness import GIB, say

# (label, numerator, denominator or None, target, kind): kind "ratio" compares seconds, "memory" GiB.
# A denominator "a|b" means a, or b when a failed (the literal raw-Polars recipe cannot always run).
TARGETS = [
    ("first ingest / raw Polars", "ours_first", "raw_polars|raw_polars_flat", 1.5, "ratio"),
    ("re-ingest of copies / first ingest", "ours_copies", "ours_first", 0.5, "ratio"),
    ("peak memory of first ingest (GiB)", "ours_first", None, 4.0, "memory"),
    ("activitylog ingest (whole command) / raw Polars", "ours_command", "raw_polars|raw_polars_flat", 3.0, "ratio"),
    ("peak memory of activitylog ingest (GiB)", "ours_command", None, 4.0, "memory"),
    ("activitylog ingest, one new 10k file on the lake (s)", "ours_incremental", None, 5.0, "seconds"),
    ("gzip bomb (5 GB inflated), size cap only: peak GiB", "bomb_size_cap", None, 1.0, "memory"),
    ("gzip bomb (5 GB inflated), size cap only: seconds", "bomb_size_cap", None, 10.0, "seconds"),
    ("normalize + enrich, all days / read raw + write back", "enrich_all", "enrich_baseline", 1.5, "ratio"),
    ("normalize + enrich, one day of 100,000 events (s)", "enrich_day", None, 3.0, "seconds"),
]
INFORMATIVE = [
    ("first ingest / raw Polars, nested as text", "ours_first", "raw_polars_flat"),
    ("first ingest / DuckDB", "ours_first", "duckdb"),
    ("no-op re-ingest / first ingest", "ours_noop", "ours_first"),
    ("same events in new files / first ingest", "ours_reordered", "ours_first"),
]


def ratios(results: list[dict]) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in results if "error" not in r}
    rows = []
    used: set[tuple[str, str | None]] = set()
    for label, num, den, target, kind in TARGETS:
        if den and "|" in den:
            first, fallback = den.split("|")
            den = first if first in by_name else fallback
            if den == fallback:
                label = f"{label} (nested as text; structs failed)"
        row: dict[str, Any] = {"what": label, "target": target, "value": None, "status": "n/a"}
        if kind == "memory" and num in by_name:
            row["value"] = by_name[num]["peak_rss"] / GIB
        elif kind == "seconds" and num in by_name:
            row["value"] = by_name[num]["seconds"]
        elif kind == "ratio" and num in by_name and den in by_name and by_name[den]["seconds"] > 0:
            row["value"] = by_name[num]["seconds"] / by_name[den]["seconds"]
        if row["value"] is not None:
            row["status"] = "PASS" if row["value"] <= target else "MISS"
        rows.append(row)
        used.add((num, den))
    for label, num, den in INFORMATIVE:
        if (num, den) in used:
            continue
        value = None
        if num in by_name and den in by_name and by_name[den]["seconds"] > 0:
            value = by_name[num]["seconds"] / by_name[den]["seconds"]
        rows.append({"what": label, "target": None, "value": value, "status": "info"})
    return rows


def print_report(info: dict[str, Any], stamp: dict[str, Any], results: list[dict], ratio_rows: list[dict]) -> None:
    say()
    say(f"machine: {info['cpu']}; {info['usable_cores']} usable cores "
        f"({info.get('physical_cores', '?')} physical); {info['ram_gib']} GiB RAM; Python {info['python']}")
    say(f"         polars {info['polars']}, deltalake {info['deltalake']}, duckdb {info['duckdb']}, "
        f"pyarrow {info['pyarrow']}; {info['platform']}")
    say(f"data:    {stamp['events']:,} events, {stamp['params']['days']} days, "
        f"{stamp['files']} files, {stamp['bytes'] / 1e6:,.0f} MB NDJSON (warm page cache)")
    say()
    header = (f"{'measurement':<42}{'seconds':>9}{'peak GiB':>10}{'start GiB':>11}{'CPU s':>8}{'MB/s':>7}"
              f"{'rows written':>14}  notes")
    say(header)
    say("-" * len(header))
    for r in results:
        if "error" in r:
            say(f"{r['label']:<42}{'FAILED':>9}  {r['error'].splitlines()[0][:80]}")
            continue
        mbps = stamp["bytes"] / 1e6 / r["seconds"] if r["seconds"] > 0 and r.get("reads_landing", True) else None
        say(f"{r['label']:<42}{r['seconds']:>9.2f}{r['peak_rss'] / GIB:>10.2f}{r['rss_before'] / GIB:>11.2f}"
            f"{r['cpu_seconds']:>8.1f}{(f'{mbps:,.0f}' if mbps else '-'):>7}{r['rows']:>14,}  {r.get('notes', '')}")
    say("(seconds: the measured call only, in a fresh process; peak GiB: that process's RSS high-water mark,")
    say(" imports included; start GiB: its RSS after importing Polars; CPU s: user + system of the call;")
    say(" MB/s: landing bytes / seconds)")
    if info.get("busy_warning"):
        say(f"WARNING: {info['busy_warning']}")
    say()
    for row in ratio_rows:
        value = "n/a" if row["value"] is None else f"{row['value']:.2f}"
        target = "" if row["target"] is None else f"target <= {row['target']:.2f}"
        say(f"  {row['what']:<58}{value:>8}   {target:<16}{row['status']}")
    for r in results:
        if r.get("profile"):
            say()
            say(f"where the time goes: {r['label']} ({r['seconds']:.2f} s; self = not in a nested stage)")
            print_profile(r["profile"], r["seconds"])


def print_profile(profile: list[dict[str, Any]], total: float) -> None:
    header = f"  {'stage':<52}{'calls':>6}{'total s':>9}{'self s':>9}{'self %':>8}{'peak RSS GiB':>14}"
    say(header)
    for row in profile:
        name = "  " * (len(row["path"]) - 1) + row["path"][-1]
        share = 100 * row["self"] / total if total else 0
        peak = f"{row['peak_rss'] / GIB:.2f}" if row.get("peak_rss") else "-"
        say(f"  {name:<52}{row['calls']:>6}{row['total']:>9.2f}{row['self']:>9.2f}{share:>7.1f}%{peak:>14}")

