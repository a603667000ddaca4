"""Normalize: ``activity_raw`` → ``activity_events`` (one typed row per event) and
``activity_changes`` (one row per changed field). Day partitions, rebuilt whole for every day ingest
changed."""

import dagster as dg
import polars as pl

from pipelines.partitions import daily_partitions
from pipelines.pools import table_pool
from pipelines.resources import LakeResource, PipelineConfigResource
from transforms.checks import expected_change_rows
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_RAW
from transforms.refresh import BACKFILL_DAYS_PER_RUN, day_batches, day_keys, markdown_preview, refresh_changes, refresh_events

# Late events change old days: refresh any day whose upstream changed, not only the latest one.
refresh_when_upstream_changes = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)


def run_in_batches(context: dg.AssetExecutionContext, store, refresh, argument, counted: str) -> pl.DataFrame:
    """Run a ``transforms.refresh`` step over the run's days in batches, logging each day."""
    days = day_keys(context.partition_keys)
    batches = day_batches(store, ACTIVITY_RAW, days)
    done, stats = 0, []
    for batch in batches:
        batch_stats = refresh(store, batch, argument)
        for day, rows in batch_stats.select("day", counted).iter_rows():
            done += 1
            context.log.info(f"[{done}/{len(days)}] {day}: {rows:,} {counted}")
        stats.append(batch_stats)
    return pl.concat(stats)


def day_asset(**kwargs):
    """A day-partitioned asset. A backfill runs it in ranges of up to 31 days, each range a run of its
    own, so the run queue can work on several ranges at once (``max_concurrent_runs``); its op is in
    the pool named after the Delta table it writes."""
    return dg.asset(
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_DAYS_PER_RUN),
        automation_condition=refresh_when_upstream_changes,
        kinds={"delta", "polars"},
        **kwargs,
    )


@day_asset(
    deps=["activity_raw"],
    group_name="normalize",
    pool=table_pool(ACTIVITY_EVENTS),
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
    stats = run_in_batches(context, store, refresh_events, rules, "events")
    written, raw_rows, repeated = (int(stats[c].sum()) for c in ("events", "raw_rows", "repeated_ids"))
    preview = store.read_days(ACTIVITY_EVENTS, stats["day"].tail(1).to_list())
    return dg.MaterializeResult(
        metadata={"days": stats.height, "rows": written, "table_version": store.version(ACTIVITY_EVENTS),
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
    pool=table_pool(ACTIVITY_CHANGES),
    check_specs=[
        dg.AssetCheckSpec("rows_match_detail_changes", asset="activity_changes", blocking=True,
                          description="Change rows = sum of len(detail.changes) over the day's raw events."),
    ],
)
def activity_changes(context: dg.AssetExecutionContext, lake: LakeResource,
                     config: PipelineConfigResource) -> dg.MaterializeResult:
    """One row per entry of detail.changes: field, before/after as exact JSON text, secrets masked."""
    store, rules = lake.lake(), config.mask_rules()
    stats = run_in_batches(context, store, refresh_changes, rules, "changes")
    written = int(stats["changes"].sum())
    expected = expected_change_rows(store, stats["day"].to_list())
    return dg.MaterializeResult(
        metadata={"days": stats.height, "rows": written, "events": int(stats["events"].sum()),
                  "events_without_changes": int(stats["events_without_changes"].sum()),
                  "masked_values": int(stats["masked"].sum()),
                  "table_version": store.version(ACTIVITY_CHANGES)},
        check_results=[
            dg.AssetCheckResult(check_name="rows_match_detail_changes", passed=written == expected,
                                metadata={"change_rows": written, "sum_of_detail_changes": expected}),
        ],
    )
