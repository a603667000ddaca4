"""Normalize: ``activity_raw`` → ``activity_events`` (one typed row per event) and
``activity_changes`` (one row per changed field). Day partitions, rebuilt whole for every day ingest
changed."""

import dagster as dg

from pipelines.partitions import daily_partitions
from pipelines.resources import LakeResource, PipelineConfigResource
from transforms.checks import expected_change_rows
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS
from transforms.refresh import day_keys, markdown_preview, refresh_changes_day, refresh_events_day

# Late events change old days: refresh any day whose upstream changed, not only the latest one.
refresh_when_upstream_changes = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)


def day_asset(**kwargs):
    return dg.asset(
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=refresh_when_upstream_changes,
        kinds={"delta", "polars"},
        **kwargs,
    )


@day_asset(
    deps=["activity_raw"],
    group_name="normalize",
    check_specs=[
        dg.AssetCheckSpec("reconciles_with_raw", asset="activity_events", blocking=True,
                          description="Each day holds exactly as many events as activity_raw."),
        dg.AssetCheckSpec("unique_ids", asset="activity_events", blocking=True,
                          description="No event id appears twice within the refreshed days."),
    ],
)
def activity_events(context: dg.AssetExecutionContext, lake: LakeResource,
                    config: PipelineConfigResource) -> dg.MaterializeResult:
    """One typed row per event: UTC timestamps, level, actor columns, detail as JSON text (secrets masked)."""
    store, rules = lake.lake(), config.mask_rules()
    days = day_keys(context.partition_keys)
    written, raw_rows, repeated, preview = 0, 0, 0, None
    for position, day in enumerate(days, start=1):
        events, day_raw_rows = refresh_events_day(store, day, rules)
        written += events.height
        raw_rows += day_raw_rows
        repeated += events.height - (events["id"].n_unique() if events.height else 0)
        preview = events if events.height else preview
        context.log.info(f"[{position}/{len(days)}] {day}: {events.height:,} events")
    return dg.MaterializeResult(
        metadata={"days": len(days), "rows": written, "table_version": store.version(ACTIVITY_EVENTS),
                  "preview": dg.MetadataValue.md(markdown_preview(preview))},
        check_results=[
            dg.AssetCheckResult(check_name="reconciles_with_raw", passed=written == raw_rows,
                                metadata={"raw_rows": raw_rows, "event_rows": written}),
            dg.AssetCheckResult(check_name="unique_ids", passed=repeated == 0, metadata={"repeated_ids": repeated}),
        ],
    )


@day_asset(
    deps=[activity_events],
    group_name="normalize",
    check_specs=[
        dg.AssetCheckSpec("rows_match_detail_changes", asset="activity_changes", blocking=True,
                          description="Change rows = sum of len(detail.changes) over the day's raw events."),
    ],
)
def activity_changes(context: dg.AssetExecutionContext, lake: LakeResource,
                     config: PipelineConfigResource) -> dg.MaterializeResult:
    """One row per entry of detail.changes: field, before/after as exact JSON text, secrets masked."""
    store, rules = lake.lake(), config.mask_rules()
    days = day_keys(context.partition_keys)
    written, events_read, without_changes, masked = 0, 0, 0, 0
    for position, day in enumerate(days, start=1):
        changes, day_events, day_without = refresh_changes_day(store, day, rules)
        written += changes.height
        events_read += day_events
        without_changes += day_without
        masked += int(changes["masked"].sum()) if changes.height else 0
        context.log.info(f"[{position}/{len(days)}] {day}: {changes.height:,} changes from {day_events:,} events")
    expected = expected_change_rows(store, days)
    return dg.MaterializeResult(
        metadata={"days": len(days), "rows": written, "events": events_read,
                  "events_without_changes": without_changes, "masked_values": masked,
                  "table_version": store.version(ACTIVITY_CHANGES)},
        check_results=[
            dg.AssetCheckResult(check_name="rows_match_detail_changes", passed=written == expected,
                                metadata={"change_rows": written, "sum_of_detail_changes": expected}),
        ],
    )
