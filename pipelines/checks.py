"""The lake-wide checks (``activity_raw/unique_ids``, ``activity_digests/integrity_chain``) as a job of
their own: the CLI runs it after the demo's pipeline, and each check's automation condition runs it
within the hour after its asset changed, so the UI shows them green or red without a click."""


import dagster as dg

from assets.ingest import activity_digests_chain, activity_raw_unique_ids

LAKE_CHECKS = [activity_raw_unique_ids, activity_digests_chain]

checks_job = dg.define_asset_job(
    "checks_job",
    selection=dg.AssetSelection.checks(*LAKE_CHECKS),
    description="Evaluate the lake-wide checks: unique event ids and the integrity chain (activitylog verify).",
)


def run_checks(settings=None, *, log_level: str = "WARNING",
               dagster_instance: dg.DagsterInstance | None = None) -> dict[str, dg.AssetCheckEvaluation]:
    """One ``checks_job`` run, recorded in ``DAGSTER_HOME``; each check's evaluation by check name.
    A failed check is a result (``passed`` False), not an error."""
    from pipelines.definitions import build_definitions
    from pipelines.runner import instance

    result = build_definitions(settings).resolve_job_def("checks_job").execute_in_process(
        run_config={"loggers": {"progress": {"config": {"log_level": log_level}}}},
        instance=dagster_instance or instance(), raise_on_error=True)
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
