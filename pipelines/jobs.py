"""Jobs: ingest the landing area, and refresh changed days downstream."""


import dagster as dg

from assets.enrich import activity_log
from assets.normalize import activity_changes, activity_events
from assets.pools import RAW_POOL
from assets.partitions import daily_partitions
from assets.resources import LakeResource, LandingResource
from transforms.ingest import ingest


class IngestConfig(dg.Config):
    landing: str | None = None  # defaults to the landing resource (ACTIVITYLOG_LANDING)


@dg.op(description="Validate and deduplicate new landing files into activity_raw and activity_quarantine.",
       pool=RAW_POOL)
def ingest_landing(context: dg.OpExecutionContext, config: IngestConfig, lake: LakeResource,
                   landing: LandingResource) -> dg.Output[dict]:
    store = lake.lake()
    uri = config.landing or landing.uri
    report = ingest(store, uri, landing.validation(), run_id=context.run_id, progress=context.log.info)
    for day in sorted(report.days_changed):
        context.log_event(dg.AssetMaterialization(
            asset_key="activity_raw",
            partition=day.isoformat(),
            metadata={"new_events": report.events_per_day.get(day, 0), "run_accepted": report.accepted},
        ))
    if report.quarantined:
        context.log_event(dg.AssetMaterialization(
            asset_key="activity_quarantine",
            metadata={"quarantined": report.quarantined,
                      "reasons": dg.MetadataValue.md(reasons_markdown(report.quarantine_reasons))},
        ))
    # The integrity chain covers every day whose raw rows changed (a new digest version per day), and
    # whatever an interrupted run left owed (its digest intents; transforms.recovery).
    from transforms.recovery import finish_digests, stale_days

    chained = finish_digests(store, report.days_changed, run_id=context.run_id)
    # Days an interrupted run left unrefreshed: materialized too, so declarative automation refreshes
    # them with the days this run changed (the CLI refreshes them itself).
    for day in sorted(set(stale_days(store)) - set(report.days_changed)):
        context.log_event(dg.AssetMaterialization(asset_key="activity_raw", partition=day.isoformat(),
                                                  metadata={"recovery": "stale: derived tables not up to date"}))
    if chained:
        context.log_event(dg.AssetMaterialization(
            asset_key="activity_digests",
            metadata={"new_digest_versions": len(chained), "days": dg.MetadataValue.json(
                [r["day"].isoformat() for r in chained])}))
    for changed in report.files_changed:
        context.log.warning(f"{changed} changed after it was ingested; it was not read again")
    if not report.balanced:  # a bug, never bad input: fail loudly rather than lose lines silently
        raise dg.Failure(f"accounting does not balance: {report.as_metadata()}")
    context.log.info(
        f"{report.lines:,} lines: {report.accepted:,} accepted, {report.duplicates:,} duplicates, "
        f"{report.quarantined:,} quarantined; {len(report.days_changed)} days changed"
    )
    return dg.Output(
        report.summary(),
        metadata={**report.as_metadata(), "landing": uri,
                  "quarantine_reasons": dg.MetadataValue.md(reasons_markdown(report.quarantine_reasons))},
    )


def reasons_markdown(reasons) -> str:
    if not reasons:
        return "_none_"
    lines = ["| reason | lines |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in reasons.most_common()]
    return "\n".join(lines)


@dg.job(description="Ingest new files of the landing area (ACTIVITYLOG_LANDING) into the lake.")
def ingest_job() -> None:
    ingest_landing()


refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.assets(activity_events, activity_changes, activity_log),
    partitions_def=daily_partitions,
    description="Rebuild activity_events, activity_changes and activity_log for a day or a range of days.",
)
