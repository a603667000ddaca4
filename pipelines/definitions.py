"""The one Definitions of the project (loaded by workspace.yaml and the CLI)."""

import dagster as dg

from assets.enrich import activity_log, reference_assets
from assets.ingest import activity_digests, activity_quarantine, activity_raw
from assets.ledgers import deliveries
from assets.normalize import activity_changes, activity_events
from pipelines.checks import LAKE_CHECKS, checks_job
from pipelines.event_storage import enable_batching
from pipelines.exports import export_job, export_schedules
from pipelines.jobs import ingest_job, refresh_job
from pipelines.progress import progress_logger
from pipelines.notify import notify_job, notify_sensor
from pipelines.resources import default_resources
from pipelines.sensors import landing_sensor, refresh_sensor
from pipelines.retention import erase_user_job, retention_job, retention_schedule
from transforms.settings import Settings
from pipelines.streams import stream_job, stream_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Definitions bound to a lake and landing area (default: from the environment)."""
    from pipelines.config import load_config

    enable_batching()
    config = load_config()  # schedules come from the configuration file
    return dg.Definitions(
        assets=[activity_raw, activity_quarantine, activity_digests, activity_events, activity_changes, activity_log,
                *reference_assets, deliveries],
        asset_checks=LAKE_CHECKS,
        jobs=[ingest_job, refresh_job, checks_job, notify_job, export_job, stream_job, retention_job, erase_user_job],
        schedules=[*export_schedules(config.exports), retention_schedule(config)],
        sensors=[landing_sensor, refresh_sensor, notify_sensor, stream_sensor],
        resources=default_resources(settings),
        loggers={"console": dg.colored_console_logger, "progress": progress_logger},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev`` and the run workers load (workspace.yaml): built when Dagster asks for it,
    from the environment and the configuration file at that moment, not when the module is imported."""
    return build_definitions()
