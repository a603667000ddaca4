"""SIEM streams in Dagster: ``stream_job`` and the sensor that starts it when a stream has days to
deliver. The work is :func:`destinations.siem.run_streams`."""

import time

import dagster as dg

from assets.pools import table_pool
from assets.resources import ConfigResource, LakeResource
from transforms.streams import STREAM_LEDGER

#: How often the sensor tries a stream again that stopped on an error (without new activity).
RETRY_SECONDS = 300


@dg.op(
    config_schema={"streams": dg.Field([str], default_value=[], description="stream names (default: all)")},
    required_resource_keys={"lake", "config", "landing"},
    description="Deliver the configured SIEM streams up to now (at-least-once; the event id is the dedupe key).",
    pool=table_pool(STREAM_LEDGER),
)
def stream(context: dg.OpExecutionContext) -> dg.Output[dict]:
    from destinations.siem import run_streams
    from transforms.audit import spool_events

    streams = context.resources.config.load().streams
    names = context.op_config["streams"] or None
    landing = context.resources.landing.uri

    try:  # a stream entering or leaving `failing` is an event of the log, through the landing area:
        # an operator subscription to it notifies on any destination, exactly once
        report = run_streams(context.resources.lake.lake(), streams, names, log=context.log.info,
                             alert=lambda event: spool_events(landing, [event]))
    except KeyError as exc:
        raise dg.Failure(str(exc.args[0])) from None
    rows = report.as_rows()
    state = {n: h["state"] for n, h in report.health.items()}
    table = "\n".join(["| stream | state | days | sent | batches | status |", "|---|---|---|---|---|---|"] +
                      [f"| {r['stream']} | {state.get(r['stream'], '-')} | {r['days']} | {r['sent']} | {r['batches']} "
                       f"| {r['status']} |" for r in rows])
    metadata = {"sent": sum(r["sent"] for r in rows), "streams": dg.MetadataValue.md(table),
                "states": dg.MetadataValue.json(state),
                "alerts": dg.MetadataValue.json([{"stream": e["item_id"], "activity": e["activity"]}
                                                 for e in report.alerts])}
    if report.errors:
        raise dg.Failure(description="paused streams: " + "; ".join(f"{n}: {e}" for n, e in report.errors.items()),
                         metadata=metadata)
    return dg.Output({"streams": rows}, metadata=metadata)


@dg.job(description="Deliver SIEM streams (configured in the streams: section) up to now.")
def stream_job() -> None:
    stream()


@dg.sensor(job=stream_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts a stream run when a configured stream has days of activity_log to deliver.")
def stream_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, config: ConfigResource):
    from transforms.lake import ACTIVITY_LOG
    from transforms.streams import OK, STREAM_PROGRESS, due_days, stream_health

    streams = config.load().streams
    if not streams:
        return dg.SkipReason("no streams configured")
    store = lake.lake()
    due = [name for name in sorted(streams) if not streams[name].paused and due_days(store, name)]
    if not due:
        return dg.SkipReason("every stream is up to date (or paused)")
    version = f"{store.version(ACTIVITY_LOG)}-{store.version(STREAM_PROGRESS)}"
    health = stream_health(store)
    if any(health.get(name, {}).get("state") not in (None, OK) for name in due):
        # A stream stopped on an error is tried again every RETRY_SECONDS even without new activity, so
        # `degraded` turns into `failing` (and the operator hears of it) or back into `ok`.
        version += f"-retry{int(time.time() // RETRY_SECONDS)}"
    return dg.RunRequest(run_key=f"stream-{version}-{'-'.join(due)}",
                         run_config={"ops": {"stream": {"config": {"streams": due}}}},
                         tags={"activitylog/streams": ",".join(due)})
