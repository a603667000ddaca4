"""Enrich: ``activity_events`` + ``activity_changes`` + reference data → ``activity_log``."""

import dagster as dg
import polars as pl

from assets.normalize import activity_changes, activity_events, day_asset, run_in_batches
from assets.pools import table_pool
from assets.resources import ConfigResource, LakeResource
from transforms.checks import history_matches_log, raw_events_once_in_log, unmasked_secrets
from transforms.history import ACTIVITY_ITEM_HISTORY
from transforms.lake import ACTIVITY_LOG
from transforms.refresh import refresh_log

reference_assets = [
    dg.AssetSpec(f"reference_{name}", group_name="reference", kinds={"csv"},
                 description=f"Reference data: {name} (configured in the `reference:` section, or "
                             f"<lake>/reference/{name}[.csv|.parquet])")
    for name in ("users", "projects", "organizations")
]


@day_asset(
    deps=[activity_events, activity_changes, *reference_assets],
    group_name="enrich",
    pool=table_pool(ACTIVITY_LOG),
    check_specs=[
        dg.AssetCheckSpec("raw_events_exactly_once", asset="activity_log", blocking=True,
                          description="Every raw event of the day appears exactly once in activity_log."),
        dg.AssetCheckSpec("no_unmasked_secrets", asset="activity_log", blocking=True,
                          description="No masked field shows a value in activity_log or activity_changes."),
        dg.AssetCheckSpec("history_matches_log", asset="activity_log",
                          description="activity_item_history (resource histories) holds exactly the day's "
                                      "events that have an item id."),
    ],
)
def activity_log(context: dg.AssetExecutionContext, lake: LakeResource,
                 config: ConfigResource) -> dg.MaterializeResult:
    """The table people query, export and notify from: names, changed fields and a summary sentence.
    Also keeps ``activity_item_history`` (the same events laid out by resource) for the same days."""
    from transforms.recovery import LOG_STAGE, failures_of_run, record_refreshed, run_stage_fingerprints

    store = lake.lake()
    references = config.references(store)
    stats = run_in_batches(context, store, refresh_log, references, "rows", LOG_STAGE, config.mask_rules())
    days, written = stats["day"].to_list(), int(stats["rows"].sum())
    # The days written all the way through: recorded with the raw fingerprint their events were built from.
    fingerprints, failed = run_stage_fingerprints(store, context.run_id, days)
    record_refreshed(store, LOG_STAGE, {d: fp for d, fp in fingerprints.items() if d not in failed}, context.run_id)
    failures = failures_of_run(store, context.run_id)
    if failures.height:
        for day in days:  # the days that did refresh are materialized (notify_sensor picks them up)
            context.log_event(dg.AssetMaterialization(asset_key="activity_log", partition=day.isoformat(),
                                                      metadata={"rows": int(stats.filter(pl.col("day") == day)["rows"].sum())}))
        listed = "; ".join(f"{d} ({stage}{f', event {e}' if e else ''}: {err})"
                           for d, stage, e, err in failures.iter_rows())
        raise dg.Failure(description=f"refresh failed on {failures['day'].n_unique()} day(s): {listed}. "
                                     f"The other {len(days)} day(s) were refreshed; a later run retries these.",
                         metadata={"failed_days": dg.MetadataValue.json([d.isoformat() for d in failures["day"].to_list()])})
    once = raw_events_once_in_log(store, days)
    leaks = unmasked_secrets(store, days, config.mask_rules())
    history = history_matches_log(store, days)
    return dg.MaterializeResult(
        # per-partition rows and previews are added by run_in_batches; these are the run's
        metadata={"run_days": len(days), "run_rows": written, "table_version": store.version(ACTIVITY_LOG),
                  "history_table_version": store.version(ACTIVITY_ITEM_HISTORY),
                  "reference_rows": dg.MetadataValue.json({name: frame.height for name, frame in references.items()})},
        check_results=[
            dg.AssetCheckResult(
                check_name="raw_events_exactly_once",
                passed=once["missing_from_log"] == 0 and once["repeated_in_log"] == 0 and once["not_in_raw"] == 0,
                metadata=once),
            dg.AssetCheckResult(check_name="no_unmasked_secrets", passed=sum(leaks.values()) == 0, metadata=leaks),
            dg.AssetCheckResult(check_name="history_matches_log", metadata=history,
                                passed=history["missing_from_history"] == 0 and history["not_in_log"] == 0),
        ],
    )
