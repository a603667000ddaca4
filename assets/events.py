"""``activity_events`` and ``activity_log``: day partitions rebuilt from ``activity_raw``."""


import dagster as dg

from pipelines.partitions import daily_partitions
from pipelines.resources import LakeResource
from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_LOG
from transforms.refresh import day_keys, markdown_preview, refresh_events_day, refresh_log_day

# Late events change old days: refresh any day whose upstream changed, not only the latest one.
refresh_when_upstream_changes = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)


@dg.asset(
    deps=["activity_raw"],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=refresh_when_upstream_changes,
    group_name="activity",
    kinds={"delta", "polars"},
    check_specs=[
        dg.AssetCheckSpec("reconciles_with_raw", asset="activity_events", blocking=True,
                          description="Each day holds exactly as many events as activity_raw."),
        dg.AssetCheckSpec("unique_ids", asset="activity_events", blocking=True,
                          description="No event id appears twice within the refreshed days."),
    ],
)
def activity_events(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """One typed row per event: UTC timestamps, level, actor columns, detail as JSON text."""
    store = lake.lake()
    days = day_keys(context.partition_keys)
    written, raw_rows, repeated, preview = 0, 0, 0, None
    for position, day in enumerate(days, start=1):
        events, day_raw_rows = refresh_events_day(store, day)
        written += events.height
        raw_rows += day_raw_rows
        repeated += events.height - (events["id"].n_unique() if events.height else 0)
        preview = events if events.height else preview
        context.log.info(f"[{position}/{len(days)}] {day}: {events.height:,} events")
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "rows": written,
            "table_version": store.version(ACTIVITY_EVENTS),
            "preview": dg.MetadataValue.md(markdown_preview(preview)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="reconciles_with_raw", passed=written == raw_rows,
                                metadata={"raw_rows": raw_rows, "event_rows": written}),
            dg.AssetCheckResult(check_name="unique_ids", passed=repeated == 0,
                                metadata={"repeated_ids": repeated}),
        ],
    )


@dg.asset(
    deps=[activity_events],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=refresh_when_upstream_changes,
    group_name="activity",
    kinds={"delta", "polars"},
    check_specs=[
        dg.AssetCheckSpec("reconciles_with_events", asset="activity_log", blocking=True,
                          description="Each day holds exactly as many rows as activity_events."),
    ],
)
def activity_log(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """The table people query, export and notify from (sql/activity_log.sql)."""
    store = lake.lake()
    days = day_keys(context.partition_keys)
    written, event_rows, preview = 0, 0, None
    for position, day in enumerate(days, start=1):
        log, day_event_rows = refresh_log_day(store, day)
        written += log.height
        event_rows += day_event_rows
        preview = log if log.height else preview
        context.log.info(f"[{position}/{len(days)}] {day}: {log.height:,} rows")
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "rows": written,
            "table_version": store.version(ACTIVITY_LOG),
            "preview": dg.MetadataValue.md(markdown_preview(preview)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="reconciles_with_events", passed=written == event_rows,
                                metadata={"event_rows": event_rows, "log_rows": written}),
        ],
    )
