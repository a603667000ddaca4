"""Sensors: start ingest runs when files land, refresh days whose raw data changed."""


import hashlib

import dagster as dg

from pipelines.jobs import ingest_job
from assets.resources import LakeResource, LandingResource
from transforms.ingest import pending_files
from transforms.landing import LandingError


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts an ingest run when new or changed files appear in the landing area.")
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, landing: LandingResource):
    try:
        files = pending_files(lake.lake(), landing.uri)
    except LandingError as exc:
        return dg.SkipReason(str(exc))
    if not files:
        return dg.SkipReason("no new files in the landing area")
    # One run per distinct set of pending files: the same files seen again do not start a second run.
    fingerprint = hashlib.sha256(
        "\n".join(f"{f.uri}|{f.size}|{f.modified}" for f in files).encode()
    ).hexdigest()[:16]
    return dg.RunRequest(run_key=f"landing-{fingerprint}", tags={"activitylog/files": str(len(files))})


# Requests refresh runs for exactly the days whose activity_raw partition changed (late events too).
refresh_sensor = dg.AutomationConditionSensorDefinition(
    "refresh_changed_days",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
