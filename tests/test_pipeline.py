"""The Dagster side, run for real: definitions, the ingest job, refreshes of changed days, sensors."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from pipelines.definitions import build_definitions
from pipelines.resources import PipelineConfigResource
from pipelines.runner import run_ingest
from transforms.settings import Settings
from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.validate import ValidationSettings


@pytest.fixture
def pipeline_settings(tmp_path) -> Settings:
    (tmp_path / "landing").mkdir()
    return Settings(lake=str(tmp_path / "lake"), landing=str(tmp_path / "landing"),
                    validation=ValidationSettings(default_team_id=1))


def materialized_days(instance, asset: str) -> list[str]:
    return sorted(instance.get_materialized_partitions(dg.AssetKey(asset)))


def test_definitions_load():
    defs = build_definitions()
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"ingest_job", "refresh_job"}
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "activity_raw", "activity_quarantine", "activity_events", "activity_changes", "activity_log",
        "reference_users", "reference_projects", "reference_organizations", "deliveries", "activity_digests"}
    assert {s.name for s in defs.sensors} == {"landing_sensor", "refresh_changed_days", "notify_sensor", "stream_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)
    assert graph.get(dg.AssetKey("activity_log")).parent_keys >= {dg.AssetKey("activity_events"), dg.AssetKey("activity_changes")}


@pytest.mark.slow
def test_ingest_then_refresh_materializes_every_changed_day(pipeline_settings, instance):
    days = ["2024-01-03", "2024-01-04", "2024-01-09"]
    write_lines(Path(pipeline_settings.landing) / "first.jsonl",
                [make_event(created_at=f"{d}T10:00:00Z") for d in days for _ in range(3)] + ["oops"])

    result = run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")

    assert (result.ingest["accepted"], result.ingest["quarantined"]) == (9, 1)
    assert result.ingest["days_changed"] == days
    for asset in ("activity_raw", "activity_events", "activity_log"):
        assert materialized_days(instance, asset) == days
    lake = Lake.at(pipeline_settings.lake)
    for table in (ACTIVITY_RAW, ACTIVITY_EVENTS, ACTIVITY_LOG):
        assert lake.scan(table).collect().height == 9
    # two contiguous ranges → one ingest run and two refresh runs
    assert len(result.run_ids) == 3
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("activity_events"), "reconciles_with_raw")])
    assert checks[dg.AssetCheckKey(dg.AssetKey("activity_events"), "reconciles_with_raw")].status.value == "SUCCEEDED"


@pytest.mark.slow
def test_late_events_refresh_exactly_their_days(pipeline_settings, instance):
    landing = Path(pipeline_settings.landing)
    write_lines(landing / "a.jsonl", [make_event(created_at="2024-01-10T10:00:00Z")])
    run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")
    before = {d: len(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("activity_log"), asset_partitions=[d]), limit=10).records)
        for d in ["2024-01-03", "2024-01-07", "2024-01-08", "2024-01-10"]}

    late = [make_event(created_at=f"2024-01-{d}T10:00:00Z") for d in ("03", "07", "08")]
    write_lines(landing / "b.jsonl", late)
    result = run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")

    assert result.ingest["days_changed"] == ["2024-01-03", "2024-01-07", "2024-01-08"]
    after = {d: len(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("activity_log"), asset_partitions=[d]), limit=10).records)
        for d in before}
    assert after == {"2024-01-03": 1, "2024-01-07": 1, "2024-01-08": 1, "2024-01-10": before["2024-01-10"]}
    log = Lake.at(pipeline_settings.lake).scan(ACTIVITY_LOG).collect()
    assert log.group_by("day").len().sort("day")["len"].to_list() == [1, 1, 1, 1]


def test_automation_requests_exactly_the_changed_days(pipeline_settings, instance):
    """With `dagster dev` running, the refresh sensor must pick the days the ingest job changed."""
    defs = build_definitions(pipeline_settings)
    landing = Path(pipeline_settings.landing)
    write_lines(landing / "a.jsonl", [make_event(created_at=f"2024-01-{d}T10:00:00Z") for d in ("03", "07", "08")])
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # initial cursor
    assert first.total_requested == 0

    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)

    requested = result.get_requested_partitions(dg.AssetKey("activity_events"))
    assert sorted(requested) == ["2024-01-03", "2024-01-07", "2024-01-08"]


def test_landing_sensor_requests_a_run_only_for_new_files(pipeline_settings, instance):
    defs = build_definitions(pipeline_settings)
    sensor = defs.get_sensor_def("landing_sensor")
    resources = defs.resources

    def evaluate():
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return sensor(context)

    empty = evaluate()
    assert isinstance(empty, dg.SkipReason)

    write_lines(Path(pipeline_settings.landing) / "a.jsonl", [make_event()])
    request = evaluate()
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == evaluate().run_key  # same files → same key → one run

    defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
    assert isinstance(evaluate(), dg.SkipReason)


def test_unique_ids_check_fails_on_a_repeated_id(pipeline_settings, instance):
    from assets.ingest import activity_raw_unique_ids
    from pipelines.resources import LakeResource

    lake = Lake.at(pipeline_settings.lake)
    frame = pl.DataFrame({"id": ["a", "a"], "day": [date(2024, 1, 1), date(2024, 1, 2)]})
    lake.append(ACTIVITY_RAW, frame, partition_by=["day"])

    result = activity_raw_unique_ids(lake=LakeResource(root=pipeline_settings.lake))

    assert not result.passed
    assert result.metadata["repeated_ids"].value == 1


def test_enrichment_uses_the_config_file_and_reports_its_checks(pipeline_settings, instance, tmp_path, monkeypatch):
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "people.csv").write_text("uuid,first_name,last_name,role\nuser-uuid-42,Zoë,Ångström,owner\n")
    config = tmp_path / "activitylog.yaml"
    config.write_text("masking:\n  fields: [webhook_url]\nreference:\n  users: ref/people.csv\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    changes = [{"field": "webhook_url", "before": "https://hooks/secret", "after": None},
               {"field": "password", "before": "kept: not in this file's list", "after": "x"}]
    write_lines(Path(pipeline_settings.landing) / "a.jsonl", [make_event(detail={"name": "n", "changes": changes})])

    run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")

    lake = Lake.at(pipeline_settings.lake)
    log = lake.scan(ACTIVITY_LOG).collect()
    assert log["actor_name"].item() == "Zoë Ångström" and log["actor_role"].item() == "owner"
    assert "secret" not in log["detail"].item() and "kept" in log["detail"].item()
    changes_table = lake.scan("activity_changes").collect().sort("change_index")
    assert changes_table["before"].to_list() == ['"masked"', '"kept: not in this file\'s list"']
    keys = [dg.AssetCheckKey(dg.AssetKey("activity_log"), "raw_events_exactly_once"),
            dg.AssetCheckKey(dg.AssetKey("activity_log"), "no_unmasked_secrets"),
            dg.AssetCheckKey(dg.AssetKey("activity_changes"), "rows_match_detail_changes")]
    results = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert {k.name: results[k].status.value for k in keys} == {
        "raw_events_exactly_once": "SUCCEEDED", "no_unmasked_secrets": "SUCCEEDED", "rows_match_detail_changes": "SUCCEEDED"}
    assert materialized_days(instance, "activity_changes") == ["2024-01-15"]


NOTIFY_CONFIG = """\
notifications:
  destinations:
    out: {type: file, path: out.jsonl}
    hook: {type: webhook, url: {env: NOTIFY_TEST_URL}, max_attempts: 1}
  subscriptions:
    - {name: flags, filter: {scopes: [FeatureFlag]}, destinations: [out]}
    - {name: broken, filter: {scopes: [Insight]}, destinations: [hook]}
"""


@pytest.mark.slow
def test_notify_sensor_starts_one_run_for_the_materialized_days_and_the_run_reports_counts(
        pipeline_settings, instance, tmp_path, monkeypatch):
    from pipelines.notify import notify_sensor
    from pipelines.runner import run_notify

    config = tmp_path / "activitylog.yaml"
    config.write_text(NOTIFY_CONFIG.replace("Insight]}, destinations: [hook]", "Nothing]}, destinations: [hook]"))
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("NOTIFY_TEST_URL", "http://127.0.0.1:9/unused")
    now = date.today().isoformat()
    write_lines(Path(pipeline_settings.landing) / "a.jsonl",
                [make_event(created_at=f"{now}T00:00:00Z"), make_event(created_at="2024-01-03T10:00:00Z")])
    run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")

    configured = PipelineConfigResource(path=str(config))
    with dg.build_sensor_context(instance=instance, resources={"config": configured}) as context:
        (request,) = notify_sensor(context)  # both days in one run
        cursor = context.cursor
    assert request.run_config["ops"]["notify"]["config"]["days"] == ["2024-01-03", now]
    assert (request.tags["activitylog/days"], request.tags["activitylog/first_day"]) == ("2", "2024-01-03")
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"config": configured}) as context:
        assert isinstance(notify_sensor(context), dg.SkipReason)  # nothing new: no second run

    report, run_id = run_notify(pipeline_settings, dagster_instance=instance, log_level="WARNING")
    assert report["days"] == ["2024-01-03", now]
    flags = next(r for r in report["subscriptions"] if r["subscription"] == "flags")
    assert (flags["matched"], flags["sent"], flags["skipped"]) == (2, 1, 1)  # 2024-01-03 is past max_event_age
    (event,) = instance.fetch_materializations(dg.AssetKey("deliveries"), limit=1).records
    metadata = event.asset_materialization.metadata
    assert metadata["sent"].value == 1 and "| flags | 2 | 1 | 1 | 0 | 0 |" in metadata["per_subscription"].value
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
    assert run_notify(pipeline_settings, dagster_instance=instance, log_level="WARNING")[0]["days"] == []


def test_notify_sensor_coalesces_many_days_and_stays_quiet_without_subscriptions(
        pipeline_settings, instance, tmp_path, monkeypatch):
    from pipelines.notify import NOTIFY_DAYS_PER_RUN, notify_sensor

    # 40 days of activity_log materialized (as a backfill would): two runs of at most 31 days, not 40.
    days = [(date(2024, 1, 1) + timedelta(days=i)).isoformat() for i in range(40)]
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization("activity_log", partition=day))
    config = tmp_path / "activitylog.yaml"
    config.write_text(NOTIFY_CONFIG)
    monkeypatch.setenv("NOTIFY_TEST_URL", "http://127.0.0.1:9/unused")
    with dg.build_sensor_context(instance=instance, resources={"config": PipelineConfigResource(path=str(config))}) as context:
        requests = notify_sensor(context)
    chunks = [r.run_config["ops"]["notify"]["config"]["days"] for r in requests]
    assert [len(c) for c in chunks] == [NOTIFY_DAYS_PER_RUN, 40 - NOTIFY_DAYS_PER_RUN]
    assert sum(chunks, []) == days and len({r.run_key for r in requests}) == 2
    # No subscriptions: nothing to start, and the same materializations are not offered again.
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with dg.build_sensor_context(instance=instance, resources={"config": PipelineConfigResource(path=str(empty))}) as context:
        skipped = notify_sensor(context)
        cursor = context.cursor
    assert isinstance(skipped, dg.SkipReason) and "no subscriptions configured" in skipped.skip_message
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"config": PipelineConfigResource(path=str(config))}) as context:
        again = notify_sensor(context)
    assert isinstance(again, dg.SkipReason) and "no new materializations" in again.skip_message


def test_notify_run_fails_visibly_when_a_delivery_fails(pipeline_settings, instance, tmp_path, monkeypatch):
    from pipelines.runner import run_notify

    config = tmp_path / "activitylog.yaml"
    config.write_text(NOTIFY_CONFIG)
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    monkeypatch.setenv("NOTIFY_TEST_URL", "http://127.0.0.1:9/refused")  # nothing listens on port 9
    now = date.today().isoformat()
    write_lines(Path(pipeline_settings.landing) / "a.jsonl", [make_event(scope="Insight", created_at=f"{now}T00:00:00Z")])
    run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")

    with pytest.raises(dg.Failure, match=r"1 deliveries failed .*--retry-failed"):
        run_notify(pipeline_settings, dagster_instance=instance, log_level="CRITICAL")
    run = instance.get_runs(limit=1)[0]
    assert run.job_name == "notify_job" and run.status == dg.DagsterRunStatus.FAILURE
    (event,) = instance.fetch_materializations(dg.AssetKey("deliveries"), limit=1).records
    assert event.asset_materialization.metadata["failed"].value == 1


def test_production_instance_configuration_is_valid(tmp_path, monkeypatch):
    """deploy/dagster.yaml loads (its PostgreSQL storage set aside here: the PostgreSQL pass loads it
    whole) and carries the run limits the pipeline relies on; the Helm values say the same."""
    text = (Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml").read_text()
    assert "postgres_db:" in text and "{env: DAGSTER_PG_PASSWORD}" in text
    without_storage = text[:text.index("storage:")] + text[text.index("concurrency:"):]
    (tmp_path / "dagster.yaml").write_text(without_storage)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = dg.DagsterInstance.get()
    try:
        config = instance.get_concurrency_config()
        limits = {item["key"]: item["limit"] for item in config.run_queue_config.tag_concurrency_limits}
        assert limits["activitylog/notify"] == 1 and config.pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
    import yaml

    helm = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "helm-values.yaml").read_text())
    runs = yaml.safe_load(text)["concurrency"]["runs"]
    assert helm["concurrency"]["runs"]["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert helm["concurrency"]["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert helm["concurrency"]["pools"]["defaultLimit"] == config.pool_config.default_pool_limit
    assert helm["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"] == [
        "--module-name", "pipelines.definitions"]


def test_this_pass_runs_on_the_instance_and_lake_it_names(instance, lake):
    """The PostgreSQL and S3 passes really are: the instance's storage and the lake's scheme."""
    from tests.helpers import postgres
    from tests.helpers.environment import TEST_LAKE

    storage = type(instance.run_storage).__name__
    if postgres.URL:
        assert storage == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1  # deploy/dagster.yaml's pools
    else:
        assert "Postgres" not in storage
    assert lake.root.startswith("s3://") == (TEST_LAKE == "s3")


def test_each_partition_carries_its_own_metadata(pipeline_settings, instance):
    """Two days with different numbers of events: each day's materialization shows that day's rows and
    a preview of that day, not the run's totals."""
    events = ([make_event(created_at="2024-01-03T10:00:00Z") for _ in range(3)]
              + [make_event(created_at="2024-01-04T10:00:00Z", scope="Insight") for _ in range(5)])
    write_lines(Path(pipeline_settings.landing) / "a.jsonl", events)
    run_ingest(pipeline_settings, dagster_instance=instance, log_level="WARNING")
    lake = Lake.at(pipeline_settings.lake)
    in_table = dict(lake.scan(ACTIVITY_LOG).group_by("day").len().collect().iter_rows())
    for asset, counted in (("activity_events", "events"), ("activity_changes", "changes"), ("activity_log", "rows")):
        seen = {}
        for record in instance.fetch_materializations(dg.AssetKey(asset), limit=10).records:
            metadata = record.asset_materialization.metadata
            seen[record.partition_key] = metadata
            assert "run_rows" in metadata  # the run's total, under its own name
            if asset != "activity_changes":
                assert metadata["run_rows"].value == 8
        assert sorted(seen) == ["2024-01-03", "2024-01-04"]
        if asset != "activity_changes":
            assert {day: m[counted].value for day, m in seen.items()} == {"2024-01-03": 3, "2024-01-04": 5}
            assert {d.isoformat(): n for d, n in in_table.items()} == {"2024-01-03": 3, "2024-01-04": 5}
    previews = {r.partition_key: r.asset_materialization.metadata["preview"].value
                for r in instance.fetch_materializations(dg.AssetKey("activity_log"), limit=10).records}
    assert "2024-01-03" in previews["2024-01-03"] and "2024-01-04" not in previews["2024-01-03"]
    assert "Insight" in previews["2024-01-04"] and "Insight" not in previews["2024-01-03"]
    assert "@" not in previews["2024-01-03"] + previews["2024-01-04"]  # no email in DAGSTER_HOME
