"""Exports in Dagster: ``export_job`` (launchpad: format, out, filter, window) and one schedule per
entry of the ``exports:`` section of the configuration file. The work is :mod:`destinations.exports`."""

from datetime import datetime, timedelta, timezone

import dagster as dg


@dg.op(
    config_schema={
        "format": dg.Field(str, default_value="csv", description="csv, xlsx or jsonl"),
        "out": dg.Field(str, description="a file path, a directory ending in /, or s3://bucket/prefix/"),
        "filter": dg.Field(dg.Permissive(), default_value={},
                           description="the filter language, e.g. {scopes: [OrganizationMembership]}"),
        "window": dg.Field(dg.Noneable(str), default_value=None,
                           description="look-back ending now (7d, 1mo) when the filter has no start"),
        "name": dg.Field(dg.Noneable(str), default_value=None, description="file name (default: from the bounds)"),
        "access": dg.Field(dg.Noneable(dg.Permissive()), default_value=None,
                           description="the read API's access rule for the key that asked: {organization_id, "
                                       "project_id (null: the whole organization), visibility (rules; default PostHog's)}"),
    },
    required_resource_keys={"lake"},
    description="Export activity_log rows matching a filter to CSV, XLSX or JSONL, with a manifest.",
)
def export(context: dg.OpExecutionContext) -> dg.Output[dict]:
    from destinations.exports import FORMATS, ExportError, run_export
    from transforms.durations import DurationError, parse_duration
    from transforms.filters import ActivityFilter, FilterError

    settings = context.op_config
    if settings["format"] not in FORMATS:
        raise dg.Failure(f"format {settings['format']!r} is not one of {', '.join(FORMATS)}")
    try:
        activity_filter = ActivityFilter.from_dict(settings["filter"])
        window = parse_duration(settings["window"], "window") if settings["window"] else None
    except (FilterError, DurationError) as exc:
        raise dg.Failure(str(exc)) from None
    where = None
    if settings["access"] is not None:
        from transforms.keys import access_condition
        from transforms.visibility import DEFAULT_RULES, rules_from, visible

        access = settings["access"]
        if not access.get("organization_id"):
            raise dg.Failure("access: names no organization_id")
        try:  # the read API's visibility rules; without them, PostHog's (never fewer rows hidden by omission)
            hidden = rules_from(access["visibility"]) if "visibility" in access else DEFAULT_RULES
        except (TypeError, ValueError) as exc:
            raise dg.Failure(f"access.visibility{exc}") from None
        where = access_condition(access["organization_id"], access.get("project_id"),
                                 hide_impersonated_logins=bool(access.get("hide_impersonated_logins")))
        where = where & visible(hidden)
    if window is not None and activity_filter.start is None:
        end = activity_filter.end or datetime.now(timezone.utc)
        activity_filter = activity_filter.with_bounds(window.before(end), activity_filter.end)
    try:
        result = run_export(context.resources.lake.lake(), activity_filter, settings["format"], settings["out"],
                            name=settings["name"], progress=context.log.info, where=where,
                            access=settings["access"])
    except ExportError as exc:
        raise dg.Failure(str(exc)) from None
    manifest = result.manifest
    return dg.Output(
        {"file": result.file, "manifest": result.manifest_uri, "rows": manifest["rows"]},
        metadata={"rows": manifest["rows"], "file": result.file, "manifest": result.manifest_uri,
                  "sha256": manifest["files"][0]["sha256"], "table_version": manifest["table_version"],
                  "filter": dg.MetadataValue.json(manifest["filter"])},
    )


@dg.job(description="Export activity_log to CSV/XLSX/JSONL with a manifest (run config: format, out, filter, window).")
def export_job() -> None:
    export()


def export_schedules(exports) -> list[dg.ScheduleDefinition]:
    """One schedule per configured export: at each tick, the ``window`` ending at the scheduled time."""
    return [_schedule(spec) for spec in exports]


def _schedule(spec) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"export_{spec.name.replace('-', '_').replace('.', '_')}", cron_schedule=spec.schedule,
                 execution_timezone="UTC", job=export_job, default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Export {spec.name!r}: {spec.format}, window {spec.window or 'forever'}, "
                             f"to {spec.destination}")
    def scheduled(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        end = context.scheduled_execution_time.astimezone(timezone.utc)
        start = spec.window.before(end) if spec.window is not None else None
        # [start, end): the end is exclusive, so consecutive runs neither overlap nor leave a gap.
        bounded = spec.filter.with_bounds(start, end - timedelta(microseconds=1))
        return dg.RunRequest(
            run_key=f"{spec.name}-{end:%Y%m%dT%H%M%SZ}",
            run_config={"ops": {"export": {"config": {
                "format": spec.format, "out": spec.destination, "filter": bounded.to_dict(),
                "name": f"{spec.name}_{end:%Y%m%dT%H%M%SZ}"}}}},
            tags={"activitylog/export": spec.name},
        )

    return scheduled
