"""Retention in Dagster: ``retention_job`` (daily schedule, running by default). It deletes what the
``retention:`` policy expires, vacuums after the grace period, and records itself as a system activity
event through the normal ingest path. The work is :mod:`transforms.retention`."""

import dagster as dg

from assets.pools import RAW_POOL


def policy_of(config, lake=None):
    """The configuration's policy; its legal holds are the configuration's (``retention.holds``) and,
    given the ``lake``, the active ones of its ``legal_holds`` table (``activitylog hold``)."""
    from transforms.retention import RetentionPolicy

    retention = config.retention
    organizations, projects = set(retention.holds.organizations), set(retention.holds.projects)
    if lake is not None:
        from transforms.holds import held

        held_organizations, held_projects = held(lake)
        organizations |= held_organizations
        projects |= held_projects
    return RetentionPolicy(default=retention.default, organizations=dict(retention.organizations),
                           projects=dict(retention.projects), held_organizations=frozenset(organizations),
                           held_projects=frozenset(projects))


@dg.op(
    config_schema={"dry_run": dg.Field(bool, default_value=False, description="count what would go; change nothing")},
    required_resource_keys={"lake", "landing", "config"},
    description="Delete expired rows from every table holding event data, vacuum, and log the run as an event.",
    pool=RAW_POOL,
)
def retention(context: dg.OpExecutionContext) -> dg.Output[dict]:
    from transforms.retention import apply_retention, record_system_event, vacuum

    config = context.resources.config.load()
    lake = context.resources.lake.lake()
    dry_run = context.op_config["dry_run"]
    if not config.retention.configured:
        context.log.info("no retention policy configured (retention: in the configuration file): nothing expires")
        grace = config.retention.vacuum_grace
        vacuumed = {} if dry_run or grace is None else vacuum(lake, grace.to_timedelta())  # e.g. after an erasure
        return dg.Output({"configured": False, "dry_run": dry_run, "deleted": {}, "vacuumed_files": vacuumed,
                          "vacuum_grace": str(grace) if grace is not None else "never", "days_changed": []})
    policy = policy_of(config, lake)  # holds are read now: one added while the run deletes counts from the next run
    report = apply_retention(lake, policy, dry_run=dry_run, log=context.log.info, run_id=context.run_id)
    detail = report.as_detail(policy)
    days_changed: list[str] = []
    if not dry_run:
        grace = config.retention.vacuum_grace
        detail["vacuumed_files"] = vacuum(lake, grace.to_timedelta() if grace is not None else None)
        detail["vacuum_grace"] = str(grace) if grace is not None else "never"
        logged = record_system_event(lake, "retention_deleted", detail, context.resources.landing.validation(),
                                     run_id=context.run_id)
        _materialized(context, logged, {"system_event": "retention_deleted"})
        days_changed = [d.isoformat() for d in sorted(logged)]
    metadata = {"dry_run": dry_run, "whole_days": len(report.whole_days), "partial_days": len(report.partial_days),
                "deleted": dg.MetadataValue.json(dict(report.tables)),
                "by_policy": dg.MetadataValue.json(dict(report.by_policy)), "held": report.held,
                "seconds": round(report.seconds, 3)}
    return dg.Output({"configured": True, "dry_run": dry_run, **detail, "days_changed": days_changed},
                     metadata=metadata)


@dg.job(description="Retention: delete expired rows everywhere, vacuum, and record the run as a system event.")
def retention_job() -> None:
    retention()


def retention_schedule(config) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="retention_daily", cron_schedule=config.retention.schedule, execution_timezone="UTC",
        job=retention_job, default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily retention run (the retention: section; nothing is deleted without a policy).",
    )


@dg.op(
    config_schema={
        "request": dg.Field(str, is_required=False, description="an erasure request id (activitylog erase-user "
                            "writes the request beside the lake, so the user's identity is not kept in this run)"),
        "user": dg.Field(str, is_required=False, description="the actor's uuid or email (kept in the run's "
                         "configuration in DAGSTER_HOME: prefer `activitylog erase-user`, which passes a request id)"),
        "reason": dg.Field(str, is_required=False, description="why (recorded in the user_erased event)"),
        "requested_by": dg.Field(str, is_required=False, description="who asked (recorded in the user_erased event)"),
    },
    required_resource_keys={"lake", "landing"},
    description="Erase one actor's personal data (email, names, IP, identifiers) from the lake; their events "
                "stay, under a pseudonym; the integrity chain gets a new version of each day.",
    pool=RAW_POOL,
)
def erase_user(context: dg.OpExecutionContext) -> dg.Output[dict]:
    from transforms.erasure import ErasureError, erase_user as erase
    from transforms.erasure_requests import RequestError, drop_request, read_request
    from transforms.recovery import finish_digests
    from transforms.retention import record_system_event

    lake = context.resources.lake.lake()
    config = context.op_config
    if bool(config.get("request")) == bool(config.get("user")):
        raise dg.Failure("give the run either a request id (request) or a user, not both or neither")
    try:
        request = read_request(lake, config["request"]) if config.get("request") else dict(config)
    except RequestError as exc:
        raise dg.Failure(str(exc)) from None
    try:
        report = erase(lake, request["user"], run_id=context.run_id)
    except ErasureError as exc:
        raise dg.Failure(str(exc)) from None
    finish_digests(lake, report.days, reason="erasure", run_id=context.run_id)
    exports = _erase_exports(lake, report.identity)
    runs = _erase_runs(context.instance, report.identity, context.run_id, exports)
    detail = {"pseudonym": report.pseudonym, "events": report.events, "days": len(report.days),
              "quarantine_lines": report.quarantine_lines, "reference_rows": report.reference_rows,
              "identifiers_found": report.identifiers,  # counts only: the erased values are not repeated here
              "exports_deleted": len(exports), "export_ids": exports, "dagster_runs_deleted": len(runs),
              "reason": request.get("reason"), "requested_by": request.get("requested_by"),
              "request_id": config.get("request")}
    logged = record_system_event(lake, "user_erased", detail, context.resources.landing.validation(),
                                 run_id=context.run_id)
    days = sorted(set(report.days) | logged)
    _materialized(context, days, {"erasure": report.pseudonym})
    if config.get("request"):
        drop_request(lake, config["request"])  # the last place the user's identity was written
    context.log.info(f"erased {report.events} events' personal data (pseudonym {report.pseudonym}) on {len(report.days)} days")
    return dg.Output({**detail, "days_changed": [d.isoformat() for d in days]},
                     metadata={"events": report.events, "days": len(report.days), "pseudonym": report.pseudonym})


def _materialized(context: dg.OpExecutionContext, days, metadata: dict) -> None:
    """One materialization of ``activity_raw`` per day the op rewrote or logged into."""
    for day in sorted(days):
        context.log_event(dg.AssetMaterialization(asset_key="activity_raw", partition=day.isoformat(),
                                                  metadata=metadata))


def _erase_exports(lake, identity) -> list[str]:
    """API exports (under the exports root) whose files name the user are deleted; their ids."""
    from pipelines.api.exports import ExportStore, exports_root

    return ExportStore(exports_root(lake.root)).erase(identity.names_user)


def _erase_runs(instance: dg.DagsterInstance, identity, own_run: str, exports: list[str]) -> list[str]:
    """Finished Dagster runs whose configuration or tags name the user (an export filtered on their
    email, a run launched with ``user:``) are deleted with their event logs, and so are the runs of
    the exports the erasure deleted (whatever their status: a stopped one never finishes); their ids."""
    import json

    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    deleted = []
    for run in instance.get_runs():
        erased_export = run.tags.get("activitylog/export_id") in exports
        if run.run_id == own_run or (run.status not in finished and not erased_export):
            continue
        if erased_export or identity.names_user(json.dumps(run.run_config, default=str) + json.dumps(dict(run.tags), default=str)):
            instance.delete_run(run.run_id)
            deleted.append(run.run_id)
    return deleted


@dg.job(description="GDPR erasure of one actor's personal data (run config: request, or user; reason, requested_by).")
def erase_user_job() -> None:
    erase_user()
