"""``activity_raw`` and ``activity_quarantine`` are written by the ingest job (pipelines/jobs.py).

They are declared here as specs so the UI shows them in the lineage, with one materialization per
day that an ingest changed.
"""


import dagster as dg
import polars as pl

from assets.partitions import daily_partitions
from assets.resources import LakeResource
from transforms.lake import ACTIVITY_RAW

activity_raw = dg.AssetSpec(
    "activity_raw",
    partitions_def=daily_partitions,
    group_name="ingest",
    kinds={"delta", "polars"},
    description="System of record: the verbatim payload of every accepted event, append-only, by day.",
)

activity_quarantine = dg.AssetSpec(
    "activity_quarantine",
    group_name="ingest",
    kinds={"delta"},
    description="Rejected lines, verbatim, with source, line number and quarantine_reason.",
)


# Both lake-wide checks run within the hour after their asset changed (the automation sensor), and the
# CLI's demo runs them at its end (pipelines/checks.py): the UI shows them evaluated without a click.
HOURLY_AFTER_CHANGE = dg.AutomationCondition.on_cron("@hourly")


@dg.asset_check(asset="activity_raw", name="unique_ids", blocking=False, automation_condition=HOURLY_AFTER_CHANGE,
                description="No event id appears twice anywhere in activity_raw.")
def activity_raw_unique_ids(lake: LakeResource) -> dg.AssetCheckResult:
    frame = lake.lake().scan(ACTIVITY_RAW)
    if frame is None:
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
    counts = frame.select(pl.len().alias("rows"), pl.col("id").n_unique().alias("ids")).collect().row(0, named=True)
    repeated = counts["rows"] - counts["ids"]
    return dg.AssetCheckResult(
        passed=repeated == 0,
        metadata={"rows": counts["rows"], "distinct_ids": counts["ids"], "repeated_ids": repeated},
    )


activity_digests = dg.AssetSpec(
    "activity_digests",
    group_name="ingest",
    deps=["activity_raw"],
    kinds={"delta"},
    description="Integrity chain: one SHA-256 digest per day over activity_raw, chained day to day, "
                "optionally signed; a new version when a day changes. Written by the ingest job.",
)


@dg.asset_check(asset="activity_digests", name="integrity_chain", blocking=False,
                automation_condition=HOURLY_AFTER_CHANGE,
                description="Recompute every day's digest from activity_raw and check every link (activitylog verify).")
def activity_digests_chain(lake: LakeResource) -> dg.AssetCheckResult:
    from transforms.integrity import verify

    report = verify(lake.lake())
    first = report.first()
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={"days": report.days, "events": report.events, "digest_rows": report.digest_rows,
                  "problems": len(report.problems), "first_problem": str(first) if first else "none"},
    )
