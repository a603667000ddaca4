"""Suite ``query`` of ``make bench``: the filter language and resource history on the bench lake,
beside DuckDB reading the same Delta files as Parquet, in the same run.

Each side runs in its own fresh process, opens its table once (warm: a DuckDB connection with a view
over the live files of ``activity_log``; our ``Lake`` with its cached Delta tables), runs every query
once to warm up, then :data:`REPEATS` times; the median is reported. Both sides return the same page (the
first 100 rows, every column, newest first; the history returns all of the item's rows) and the suite
checks that they return the same ids in the same order.

Cold: the wall time of a whole process, from the shell, for one query: our ``activitylog query`` and
``activitylog history`` (import, open table, query, print JSONL) and ``python -c "import duckdb; ..."``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.enrich import enriched_lake
from bench.harness import Bench, Outcome, measurement, run_child, say

REPEATS = 15
PAGE = 100
ORG_SCOPES = ["Organization", "OrganizationMembership", "OrganizationInvite"]

# (name, label, target ms)
QUERIES = [
    ("history", "history of one item (team, scope, item_id), all time", 20),
    ("org_scopes", "30 days, scopes in (Organization, OrganizationMembership, OrganizationInvite)", 50),
    ("detail_active", "30 days, detail filter changes[].field exact active", 60),
    ("search", '30 days, search text "checkout"', 100),
    ("user_deleted_flags", "30 days, one user deleted feature flags", 30),
]
# Measured on 2026-11-25 on this machine class with the same data (from the issue), for reference.
POSTGRES_MS = {"history": 0.4, "org_scopes": 270, "detail_active": 557, "search": 1890, "user_deleted_flags": 18}


def parameters(lake_root: str) -> dict[str, Any]:
    """The query parameters, chosen from the data: the last 30 days, a typical item, a busy user."""
    import polars as pl

    from transforms.lake import ACTIVITY_LOG, Lake

    lake = Lake.at(lake_root)
    days = lake.days(ACTIVITY_LOG)
    end = days[-1]
    start = end - timedelta(days=29)
    log = lake.scan(ACTIVITY_LOG)
    items = (log.filter(pl.col("item_id").is_not_null()).group_by("team_id", "scope", "item_id").len()
             .sort("len", "scope", "item_id").collect())
    item = items.row(items.height // 2, named=True)  # the median item by number of events
    users = (log.filter(pl.col("day").is_between(start, end) & (pl.col("scope") == "FeatureFlag")
                        & (pl.col("activity") == "deleted") & pl.col("actor_email").is_not_null())
             .group_by("actor_email").len().sort("len", "actor_email", descending=[True, False]).collect())
    return {"start": start.isoformat(), "end": end.isoformat(), "team_id": item["team_id"], "scope": item["scope"],
            "item_id": item["item_id"], "item_events": item["len"],
            "user": users["actor_email"][0] if users.height else "nobody@example.com"}


def _filters(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    window = {"start": p["start"], "end": p["end"]}
    return {
        "org_scopes": {**window, "scopes": ORG_SCOPES},
        "detail_active": {**window, "detail_filters": {"changes[].field": {"operation": "exact", "value": "active"}}},
        "search": {**window, "search": "checkout"},
        "user_deleted_flags": {**window, "users": [p["user"]], "scopes": ["FeatureFlag"], "activities": ["deleted"]},
    }


def _time(run) -> tuple[float, Any]:
    run()  # warm-up
    samples, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, result


@measurement("query_ours")
def measure_ours(spec: dict[str, Any], profiler) -> dict[str, Any]:
    """Our side; the parameters are chosen from the data first (:func:`parameters`, not timed)."""
    from transforms.filters import ActivityFilter
    from transforms.history import item_history
    from transforms.lake import Lake
    from transforms.query import query_page

    p = parameters(spec["lake"])
    lake = Lake.at(spec["lake"])
    runs = {name: (lambda f=ActivityFilter.from_dict(data): query_page(lake, f, limit=PAGE).rows)
            for name, data in _filters(p).items()}
    runs["history"] = lambda: item_history(lake, p["scope"], p["item_id"], team_id=p["team_id"]).rows
    out: dict[str, Any] = {}
    with profiler.timed():
        for name, _, _ in QUERIES:
            ms, rows = _time(runs[name])
            out[name] = {"ms": round(ms, 2), "rows": rows.height, "ids": rows["id"].to_list()}
    return {"rows": sum(v["rows"] for v in out.values()), "queries": out, "params": p}


def duckdb_sql(p: dict[str, Any]) -> dict[str, tuple[str, list[Any]]]:
    window = "day BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)"
    page = f"ORDER BY created_at DESC, id DESC LIMIT {PAGE}"
    bounds = [p["start"], p["end"]]
    return {
        "history": ("SELECT * FROM activity_log WHERE team_id = ? AND scope = ? AND item_id = ? "
                    "ORDER BY created_at DESC, id DESC", [p["team_id"], p["scope"], p["item_id"]]),
        "org_scopes": (f"SELECT * FROM activity_log WHERE {window} AND scope IN ({', '.join('?' * 3)}) {page}",
                       bounds + ORG_SCOPES),
        "detail_active": (f"SELECT * FROM activity_log WHERE {window} AND "
                          f"list_contains(json_extract_string(detail, '$.changes[*].field'), 'active') {page}", bounds),
        "search": (f"SELECT * FROM activity_log WHERE {window} AND "
                   f"(detail ILIKE '%checkout%' OR summary ILIKE '%checkout%') {page}", bounds),
        "user_deleted_flags": (f"SELECT * FROM activity_log WHERE {window} AND (actor_uuid = ? OR lower(actor_email) = "
                               f"lower(?)) AND scope = 'FeatureFlag' AND activity = 'deleted' {page}",
                               bounds + [p["user"], p["user"]]),
    }


def duckdb_view(lake_root: str) -> str:
    """A view over the live Parquet files of activity_log (from the Delta log: no stale files)."""
    from deltalake import DeltaTable

    files = DeltaTable(f"{lake_root}/activity_log").file_uris()
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"CREATE VIEW activity_log AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)"


@measurement("query_duckdb")
def measure_duckdb(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import duckdb

    p = spec["params"]
    connection = duckdb.connect()
    connection.execute(duckdb_view(spec["lake"]))
    out: dict[str, Any] = {}
    with profiler.timed():
        for name, (sql, arguments) in duckdb_sql(p).items():
            ms, table = _time(lambda: connection.execute(sql, arguments).to_arrow_table())
            out[name] = {"ms": round(ms, 2), "rows": table.num_rows, "ids": table.column("id").to_pylist()}
    return {"rows": sum(v["rows"] for v in out.values()), "queries": out}


def cold_runs(lake_root: str, p: dict[str, Any], runs: int = 3) -> dict[str, float]:
    """Whole-process wall time (median of ``runs``) for one query from the shell."""
    activitylog = str(Path(sys.executable).parent / "activitylog")
    sql, arguments = duckdb_sql(p)["org_scopes"]
    duck = (f"import duckdb; c = duckdb.connect(); c.execute({duckdb_view(lake_root)!r}); "
            f"print(len(c.execute({sql!r}, {arguments!r}).fetchall()))")
    commands = {
        "activitylog query (30 days, org scopes, 100 rows JSONL)": [
            activitylog, "query", "--lake", lake_root, "--start", p["start"], "--end", p["end"],
            *[a for s in ORG_SCOPES for a in ("--scope", s)], "--format", "jsonl", "--limit", str(PAGE)],
        "activitylog history (one item, JSONL)": [
            activitylog, "history", p["scope"], p["item_id"], "--team-id", str(p["team_id"]), "--lake", lake_root,
            "--format", "jsonl"],
        "python -c 'import duckdb; same query'": [sys.executable, "-c", duck],
        "python -c 'import dagster' (for scale)": [sys.executable, "-c", "import dagster"],
    }
    timings = {}
    for label, command in commands.items():
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples.append(time.perf_counter() - started)
        timings[label] = statistics.median(samples) * 1000
    return timings


def run(bench: Bench) -> Outcome:
    """Our queries and DuckDB's on the enriched bench lake (built here when the enrich suite did not)."""
    say("suite query: filters and history, ours beside DuckDB, each side in a fresh process")
    work = bench.work
    lake = work / "enrich_lake"
    failed = enriched_lake(lake, bench.landing, work, "enrich" in bench.suites, "query")
    if failed:
        say(f"  FAILED: {failed['error']}")
        return Outcome(section={"ours": {**failed, "name": "ours_query", "label": "query suite: prepare"}})
    say("- ours: filter language + resource history")
    ours = run_child(measure_ours, {"name": "ours_query", "label": "query suite: ours", "lake": str(lake)}, work)
    if "error" in ours:
        return Outcome(section={"ours": ours})
    say("- DuckDB over the same Parquet files")
    duck = run_child(measure_duckdb, {"name": "duckdb_query", "label": "query suite: DuckDB", "lake": str(lake),
                                      "params": ours["params"]}, work)
    say("- cold processes")
    cold = cold_runs(str(lake), ours["params"])
    return Outcome(section={"params": ours["params"], "ours": ours, "duckdb": duck, "cold": cold})


def report(outcome: Outcome, say) -> None:
    """The side-by-side table, whose checks join the outcome's; a side that failed is said, and our failure
    joins the measurements."""
    section = outcome.section
    if section.get("duckdb", {}).get("error"):  # report ours alone, DuckDB marked as failed
        section["duckdb"]["queries"] = {}
    if section.get("ours", {}).get("queries") is not None and section.get("duckdb"):
        outcome.checks += print_table(section["params"], section["ours"], section["duckdb"], section["cold"], say)
    for side in ("ours", "duckdb"):
        if section.get(side, {}).get("error"):
            say(f"query suite, {side}: FAILED: {section[side]['error']}")
            if side == "ours":
                outcome.measurements.append(section[side])


def print_table(params: dict[str, Any], ours: dict[str, Any], duck: dict[str, Any], cold: dict[str, float],
                say) -> list[dict[str, Any]]:
    """Print the side-by-side table; return check rows (same ids in the same order on both sides)."""
    say()
    say(f"queries on activity_log, {params['start']} … {params['end']} for the 30-day ones; history of "
        f"{params['scope']} {params['item_id']} (project {params['team_id']}, {params['item_events']} events); "
        f"median of {REPEATS}, warm")
    header = f"  {'query':<78}{'ours ms':>9}{'DuckDB ms':>11}{'PG ms*':>9}{'target':>8}{'rows':>6}"
    say(header)
    checks = []
    for name, label, target in QUERIES:
        mine, theirs = ours["queries"][name], duck["queries"].get(name)
        status = "PASS" if mine["ms"] <= target else "MISS"
        duck_ms = f"{theirs['ms']:>11.1f}" if theirs else f"{'FAILED':>11}"
        say(f"  {label:<78}{mine['ms']:>9.1f}{duck_ms}{POSTGRES_MS[name]:>9}{'<= ' + str(target):>8}"
            f"{mine['rows']:>6}  {status}")
        if theirs is None:
            continue
        checks.append({"what": f"query {name}: same ids as DuckDB", "got": mine["ids"] == theirs["ids"],
                       "expected": True, "ok": mine["ids"] == theirs["ids"]})
    say("  (* PostgreSQL 15 with PostHog's indexes, measured separately on this machine class; not rerun here)")
    say()
    say("cold process, whole command from the shell (median of 3):")
    for label, ms in cold.items():
        say(f"  {label:<60}{ms:>8.0f} ms")
    return checks
