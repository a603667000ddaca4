"""Suite ``notify`` of ``make bench``: 1,000 subscriptions evaluated over one day of 100,000 events.

Ours: :func:`transforms.notify.evaluate` — one ``select`` with one Boolean column per subscription.
Baseline, same run: the obvious loop, one Polars ``filter`` per subscription over the same day.
Both produce the same (subscription, event) pairs; the suite checks it. Evaluation only: no ledger, no
network. The subscriptions are generated (seed 7) in the shapes people write: scopes and activities,
``changes[].field`` detail filters, users, projects with organization rows, a few text searches.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from bench.enrich import DAY_EVENTS, day_landing, enriched_lake
from bench.harness import Bench, Outcome, measurement, run_child, say

SUBSCRIPTIONS = 1_000
REPEATS = 3


def subscriptions(log, count: int = SUBSCRIPTIONS, seed: int = 7) -> list[tuple[str, Any]]:
    import polars as pl

    from transforms.filters import ActivityFilter

    rng = random.Random(seed)
    scopes = log["scope"].unique().sort().to_list()
    activities = log["activity"].unique().sort().to_list()
    fields = log.select(pl.col("changed_fields").explode().drop_nulls().unique().sort()).to_series().to_list()
    emails = log["actor_email"].drop_nulls().unique().sort().to_list()
    teams = log["team_id"].drop_nulls().unique().sort().to_list()
    out = []
    for i in range(count):
        data: dict[str, Any] = {"scopes": rng.sample(scopes, rng.randint(1, 3))}
        if rng.random() < 0.6:
            data["activities"] = rng.sample(activities, rng.randint(1, 2))
        if rng.random() < 0.4 and fields:
            data["detail_filters"] = {"changes[].field": {"operation": "in", "value": rng.sample(fields, min(2, len(fields)))}}
        if rng.random() < 0.2 and emails:
            data["users"] = [rng.choice(emails)]
        if rng.random() < 0.3 and teams:
            data["team_ids"] = rng.sample(teams, 1)
        if rng.random() < 0.05:
            data["search"] = rng.choice(["checkout", "beta", "export", "pricing"])
        out.append((f"subscription-{i:04d}", ActivityFilter.from_dict(data)))
    return out


@measurement("notify")
def measure(spec: dict[str, Any], profiler) -> dict[str, Any]:
    import polars as pl

    from transforms.lake import ACTIVITY_LOG, Lake
    from transforms.notify import evaluate

    lake = Lake.at(spec["lake"])
    day = lake.days(ACTIVITY_LOG)[-1]
    log = lake.read_days(ACTIVITY_LOG, [day])
    subs = subscriptions(log)

    def ours():
        return evaluate(log, subs)

    def loop():
        parts = [log.filter(f.expression()).select(pl.lit(name).alias("subscription"), pl.col("id").alias("event_id"))
                 for name, f in subs]
        return pl.concat(parts)

    timings: dict[str, list[float]] = {"ours": [], "loop": []}
    results = {}
    with profiler.timed():
        for _ in range(REPEATS):
            for name, run in (("ours", ours), ("loop", loop)):
                started = time.perf_counter()
                results[name] = run()
                timings[name].append(time.perf_counter() - started)
    pairs = {name: set(zip(frame["subscription"], frame["event_id"])) for name, frame in results.items()}
    return {
        "rows": log.height, "subscriptions": len(subs), "matches": len(pairs["ours"]),
        "ours_seconds": statistics.median(timings["ours"]), "loop_seconds": statistics.median(timings["loop"]),
        "checks": [{"what": "one-pass evaluation = per-subscription filters", "got": pairs["ours"] == pairs["loop"],
                    "expected": True, "ok": pairs["ours"] == pairs["loop"]}],
    }


def run(bench: Bench) -> Outcome:
    """1,000 subscriptions over the enriched 100k-event day (built here when the enrich suite did not)."""
    say(f"suite notify: subscriptions over one day of {DAY_EVENTS:,} events, in a fresh process")
    ran_enrich = "enrich" in bench.suites
    lake = bench.work / "enrich_day_lake"
    one_day = day_landing(bench, announce=False, ready=ran_enrich and (lake / "activity_item_history").is_dir())
    failed = enriched_lake(lake, one_day, bench.work, ran_enrich, "notify")
    if failed:
        result = {**failed, "name": "ours_notify", "label": "notify suite: prepare"}
    else:
        say("- ours and the per-subscription baseline")
        result = run_child(measure, {"name": "ours_notify", "label": "notify suite", "lake": str(lake)}, bench.work)
    return Outcome(section=result, checks=result.get("checks", []))


def report(outcome: Outcome, say) -> None:
    """Ours beside the baseline; a failure is said and joins the measurements."""
    result = outcome.section
    if "error" in result:
        say(f"notify suite FAILED: {result['error']}")
        outcome.measurements.append(result)
        return
    print_table(result, say)


def print_table(result: dict[str, Any], say) -> None:
    say()
    say(f"notifications: {result['subscriptions']:,} subscriptions over one day of {result['rows']:,} events "
        f"({result['matches']:,} matches), median of {REPEATS}, evaluation only")
    status = "PASS" if result["ours_seconds"] <= 2.0 else "MISS"
    say(f"  {'ours: one select, a Boolean column per subscription':<60}{result['ours_seconds']:>8.2f} s   target <= 2.00  {status}")
    say(f"  {'baseline: one Polars filter per subscription':<60}{result['loop_seconds']:>8.2f} s")
    say(f"  peak RSS of the process: {result['peak_rss'] / 1024 ** 3:.2f} GiB")
