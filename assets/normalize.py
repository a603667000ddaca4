"""Normalize: ``activity_raw`` → ``activity_events`` (one typed row per event) and
``activity_changes`` (one row per changed field). Day partitions, rebuilt whole for every day ingest
changed."""

import time

import dagster as dg
import polars as pl

from assets.pools import table_pool
from assets.partitions import daily_partitions
from assets.resources import ConfigResource, LakeResource
from transforms.checks import expected_change_rows
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW
from transforms.refresh import BACKFILL_DAYS_PER_RUN, day_batches, day_keys, markdown_preview, refresh_changes, refresh_events

# Late events change old days: refresh any day whose upstream changed, not only the latest one.
refresh_when_upstream_changes = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)


def run_in_batches(context: dg.AssetExecutionContext, store, refresh, argument, counted: str, stage: str,
                   probe_argument=None) -> pl.DataFrame:
    """Run a ``transforms.refresh`` step over the run's days in batches, logging each day.

    Failure isolation: a batch that fails is run again day by day, and a day that still fails is
    bisected to the event that makes it fail; it is recorded as failed in ``refresh_state`` (so it
    stays stale and the next run tries it again), logged as an error, and left out of the later
    stages of this run. The other days go on; the run fails at its end (``activity_log``), naming
    the failed days. The ``events`` stage records the raw fingerprint each day was built from, taken
    before reading; the ``log`` stage copies it once the day is written through (transforms.recovery)."""
    from transforms.recovery import (EVENTS_STAGE, fingerprint_before, record_failed, record_refreshed,
                                     run_isolated, run_stage_fingerprints)
    from transforms.refresh import stage_inputs, stage_probe

    days = day_keys(context.partition_keys)
    fingerprints = fingerprint_before(store, days) if stage == EVENTS_STAGE else {}
    _, failed_before = run_stage_fingerprints(store, context.run_id, days)
    todo = [d for d in days if d not in failed_before]
    for day in sorted(failed_before):
        context.log.warning(f"{day}: skipped by {stage} (an earlier stage of this run failed on it)")
    batches = day_batches(store, ACTIVITY_RAW, todo)
    stats, failures = [], {}
    progress = DayProgress(context.log, len(days), counted)
    rules = argument if stage != "log" else probe_argument
    references = argument if stage == "log" else None
    for batch in batches:
        batch_stats, failed = run_isolated(batch, lambda b: refresh(store, b, argument), stage,
                                           stage_inputs(store, stage), stage_probe(store, stage, rules, references))
        for failure in failed.values():
            context.log.error(f"{failure} — the day is left as it was; the other days go on")
        failures.update(failed)
        if batch_stats is None:
            continue
        previews = day_previews(store, stage, batch_stats["day"].to_list())
        for row in batch_stats.iter_rows(named=True):
            progress.day(row["day"], row[counted])
            # This partition's own figures (and preview), not the run's: partition pages and plots are true.
            day_metadata = {name: int(value) for name, value in row.items() if name != "day" and value is not None}
            if row["day"] in previews:
                day_metadata["preview"] = dg.MetadataValue.md(previews[row["day"]])
            context.add_asset_metadata(day_metadata, partition_key=row["day"].isoformat())
        stats.append(batch_stats)
    progress.flush()
    record_failed(store, failures, context.run_id)
    if stage == EVENTS_STAGE:
        record_refreshed(store, EVENTS_STAGE, {d: fp for d, fp in fingerprints.items()
                                              if d in todo and d not in failures}, context.run_id)
    if not stats:
        return pl.DataFrame(schema={"day": pl.Date, **{c: pl.Int64 for c in (
            "raw_rows", "events", "repeated_ids", "changes", "events_without_changes", "masked", "rows")}})
    return pl.concat(stats)


class DayProgress:
    """The run's progress over its days: a line per day, except that days finished within
    ``every`` seconds of the last line are summed into the next one (``[40/365] 2026-01-02 … 2026-01-09:
    9,812 events (8 days)``); each day's own figures are in its partition's metadata. A refresh of a
    year of days writes a few dozen lines instead of a thousand run events."""

    def __init__(self, log, total: int, counted: str, every: float = 1.0) -> None:
        self.log, self.total, self.counted, self.every = log, total, counted, every
        self.done, self.pending, self.last = 0, [], time.monotonic()

    def day(self, day, count: int) -> None:
        self.done += 1
        self.pending.append((day, count))
        if self.done in (1, self.total) or time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        (first, _), (last, _) = self.pending[0], self.pending[-1]
        total = sum(count for _, count in self.pending)
        days = f"{first}" if len(self.pending) == 1 else f"{first} … {last}"
        more = "" if len(self.pending) == 1 else f" ({len(self.pending)} days)"
        self.log.info(f"[{self.done}/{self.total}] {days}: {total:,} {self.counted}{more}")
        self.pending, self.last = [], time.monotonic()


def day_previews(store, stage: str, days: list) -> dict:
    """A markdown preview of each day's first rows of ``activity_log`` (the log stage only: one read
    of the batch's days, preview columns only, no personal data)."""
    from transforms.refresh import PREVIEW_COLUMNS

    if stage != "log" or not days:
        return {}
    frame = store.read_days(ACTIVITY_LOG, days, columns=["day", *PREVIEW_COLUMNS])
    if frame is None:
        return {}
    return {day: markdown_preview(rows.sort("created_at")) for (day,), rows in frame.group_by("day")}


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
                    config: ConfigResource) -> dg.MaterializeResult:
    """One typed row per event: UTC timestamps, level, actor columns, detail as JSON text (secrets masked)."""
    store, rules = lake.lake(), config.mask_rules()
    stats = run_in_batches(context, store, refresh_events, rules, "events", "events")
    written, raw_rows, repeated = (int(stats[c].sum()) for c in ("events", "raw_rows", "repeated_ids"))
    return dg.MaterializeResult(  # per-partition figures are added by run_in_batches; these are the run's
        metadata={"run_days": stats.height, "run_rows": written, "table_version": store.version(ACTIVITY_EVENTS)},
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
                     config: ConfigResource) -> dg.MaterializeResult:
    """One row per entry of detail.changes: field, before/after as exact JSON text, secrets masked."""
    store, rules = lake.lake(), config.mask_rules()
    stats = run_in_batches(context, store, refresh_changes, rules, "changes", "changes")
    written = int(stats["changes"].sum())
    expected = expected_change_rows(store, stats["day"].to_list())
    return dg.MaterializeResult(
        metadata={"run_days": stats.height, "run_rows": written, "run_events": int(stats["events"].sum()),
                  "run_events_without_changes": int(stats["events_without_changes"].sum()),
                  "run_masked_values": int(stats["masked"].sum()),
                  "table_version": store.version(ACTIVITY_CHANGES)},
        check_results=[
            dg.AssetCheckResult(check_name="rows_match_detail_changes", passed=written == expected,
                                metadata={"change_rows": written, "sum_of_detail_changes": expected}),
        ],
    )
