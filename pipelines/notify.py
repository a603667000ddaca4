"""Notifications in Dagster: the notify job and the sensor that starts it for every new or changed day
of ``activity_log``. The work itself is :mod:`destinations.dispatch` (no Dagster there)."""

from datetime import date

import dagster as dg

from assets.pools import table_pool
from assets.resources import ConfigResource, LakeResource
from transforms.notify import DELIVERIES

@dg.op(
    config_schema={
        "days": dg.Field([str], default_value=[], description="days (YYYY-MM-DD) to evaluate"),
        "retry_failed": dg.Field(bool, default_value=False, description="send the failed deliveries again"),
    },
    description="Evaluate every subscription over the given days of activity_log and deliver what is new, "
                "exactly once per (subscription, event, destination).",
    required_resource_keys={"lake", "config"},  # "config" (the configuration file) clashes with run config
    pool=table_pool(DELIVERIES),
)
def notify(context: dg.OpExecutionContext) -> dg.Output[dict]:
    from destinations.dispatch import notify_days, retry_failed

    config_file: ConfigResource = context.resources.config
    lake: LakeResource = context.resources.lake
    notifications = config_file.load().notifications
    store = lake.lake()
    days = [date.fromisoformat(d) for d in context.op_config["days"]]
    if context.op_config["retry_failed"]:
        report = retry_failed(store, notifications, run_id=context.run_id, log=context.log.info)
    else:
        report = notify_days(store, notifications, days, run_id=context.run_id, log=context.log.info)
    totals = {k: report.total(k) for k in ("matched", "sent", "skipped", "failed", "already")}
    metadata = {**totals, "days": dg.MetadataValue.json([d.isoformat() for d in report.days]),
                "resumed_after_interruption": report.resumed,
                "per_subscription": dg.MetadataValue.md(report.markdown())}
    context.log_event(dg.AssetMaterialization(asset_key="deliveries", metadata=metadata))
    for destination, reason in report.disabled.items():
        context.log.error(f"destination {destination} disabled: {reason}")
    if report.failed:
        raise dg.Failure(
            description=f"{report.failed} deliveries failed (dead letters in the ledger; "
                        f"`activitylog notify --retry-failed` sends them again): " + "; ".join(report.errors[:5]),
            metadata=metadata,
        )
    return dg.Output({"days": [d.isoformat() for d in report.days], "subscriptions": report.as_rows(),
                      "resumed": report.resumed, **totals}, metadata=metadata)


@dg.job(description="Deliver notifications for days of activity_log (run config: days, retry_failed).")
def notify_job() -> None:
    notify()


# Days of one notify run the sensor starts: a 365-day backfill asks for 12 runs, not 365.
NOTIFY_DAYS_PER_RUN = 31


@dg.sensor(job=notify_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts a notify run for the days of activity_log materialized since its last tick (new "
                       "days and days changed by late events), up to 31 days per run; none without subscriptions.")
def notify_sensor(context: dg.SensorEvaluationContext, config: ConfigResource):
    after = int(context.cursor) if context.cursor else None
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("activity_log"), after_storage_id=after),
        limit=1000, ascending=True,
    )
    if not result.records:
        return dg.SkipReason("no new materializations of activity_log")
    first, last = min(r.storage_id for r in result.records), max(r.storage_id for r in result.records)
    context.update_cursor(str(last))
    if not config.load().notifications.subscriptions:
        return dg.SkipReason("no subscriptions configured (notifications.subscriptions in the configuration file)")
    days = sorted({r.partition_key for r in result.records if r.partition_key})
    chunks = [days[i:i + NOTIFY_DAYS_PER_RUN] for i in range(0, len(days), NOTIFY_DAYS_PER_RUN)]
    return [
        dg.RunRequest(
            run_key=f"notify-{first}-{last}-{number}",
            run_config={"ops": {"notify": {"config": {"days": chunk}}}},
            # queue limit 1 (dagster.yaml): one notify run at a time
            tags={"activitylog/days": str(len(chunk)), "activitylog/first_day": chunk[0],
                  "activitylog/last_day": chunk[-1], "activitylog/notify": "true"},
        )
        for number, chunk in enumerate(chunks)
    ]
