"""A stream that fails tells the operator once: entering and leaving `failing` are events of the log
(scope ActivityLog), spooled into the landing area by the stream run, ingested, and delivered by an
ordinary subscription exactly once; every event reaches the sink exactly once after recovery. Real
Dagster runs, a real HEC receiver on 127.0.0.1, a real file destination."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.lakes import build_lake
from tests.helpers.receiver import Receiver
from transforms.lake import ACTIVITY_LOG
from transforms.streams import FAILING, OK, DEGRADED, STREAM_LEDGER, health_event

T0 = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("before, after, expected", [
    (None, OK, None), (OK, OK, None), (OK, DEGRADED, None), (DEGRADED, DEGRADED, None),
    (DEGRADED, FAILING, "stream_failing"), (None, FAILING, "stream_failing"), (OK, FAILING, "stream_failing"),
    (FAILING, FAILING, None), (FAILING, DEGRADED, None), (FAILING, OK, "stream_recovered"), (DEGRADED, OK, None),
])
def test_only_entering_and_leaving_failing_are_events(before, after, expected):
    previous = None if before is None else {"state": before, "since": T0, "last_error": "x"}
    event = health_event("splunk", previous, {"state": after, "since": T0, "last_error": "503 down"}, T0)
    assert (event and event["activity"]) == expected
    if event:
        assert event["scope"] == "ActivityLog" and event["item_id"] == "splunk" and event["is_system"] is True
        assert event["detail"]["changes"] == [{"type": "Stream", "action": "changed", "field": "state",
                                               "before": before, "after": after}]
        assert event["detail"]["context"]["last_error"] == "503 down"


def test_the_same_transition_is_one_event_id():
    health = {"state": FAILING, "since": T0, "last_error": "503"}
    first = health_event("s", {"state": DEGRADED, "since": T0, "last_error": "503"}, health, T0)
    again = health_event("s", {"state": DEGRADED, "since": T0, "last_error": "503"}, health, T0 + timedelta(minutes=5))
    later = health_event("s", {"state": OK, "since": T0, "last_error": None},
                         {**health, "since": T0 + timedelta(hours=1)}, T0 + timedelta(hours=1))
    assert first == again  # a run killed between spool and record spools the same event again: a duplicate
    assert later["id"] != first["id"]  # another incident, another event


def _spooled(landing) -> list[dict]:
    files = sorted((landing / "publish").rglob("*.ndjson")) if (landing / "publish").exists() else []
    return [json.loads(line) for f in files for line in f.read_text().split("\n") if line]


@pytest.mark.slow
def test_a_failing_stream_notifies_the_operator_once_and_delivers_everything_after_recovery(
        tmp_path, monkeypatch, instance):
    from pipelines.definitions import build_definitions
    from pipelines.runner import run_ingest, run_notify, run_stream
    from transforms.settings import Settings
    from pipelines.streams import stream_sensor
    from transforms.lake import Lake

    landing, lake_dir, alerts_file = tmp_path / "landing", tmp_path / "lake", tmp_path / "alerts.jsonl"
    write_lines(landing / "seed.jsonl", [make_event(created_at=f"2024-03-0{d}T10:00:00Z", item_id=str(d))
                                         for d in range(1, 4)])
    with Receiver() as hec:
        config = tmp_path / "activitylog.yaml"
        config.write_text(f"""\
streams:
  splunk:
    filter: {{scopes: [FeatureFlag]}}
    sink: {{type: splunk_hec, url: {{env: HEC_URL}}, token: {{env: HEC_TOKEN}}, max_attempts: 1}}
    failing_after: 0
notifications:
  max_event_age: none
  destinations:
    operator: {{type: file, path: {alerts_file}}}
  subscriptions:
    - name: stream health
      filter: {{scopes: [ActivityLog], activities: [stream_failing, stream_recovered]}}
      destinations: [operator]
""")
        for name, value in {"ACTIVITYLOG_CONFIG": config, "ACTIVITYLOG_LAKE": lake_dir, "ACTIVITYLOG_LANDING": landing,
                            "HEC_URL": hec.url("/hec"), "HEC_TOKEN": "t"}.items():
            monkeypatch.setenv(name, str(value))
        settings = Settings.from_env()
        lake = Lake.at(lake_dir)
        run_ingest(settings, log_level="WARNING", dagster_instance=instance)

        hec.respond("/hec", (503, {}, "down"), (503, {}, "down"))  # one refused request per run
        for _ in range(2):  # down for a while: failing at the first failure (failing_after 0), said once
            with pytest.raises(Exception, match="paused streams: splunk"):
                run_stream(settings, dagster_instance=instance, log_level="WARNING")
        assert [e["activity"] for e in _spooled(landing)] == ["stream_failing"]
        resources = build_definitions(settings).resources
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            retry = stream_sensor(context)
        assert isinstance(retry, dg.RunRequest) and "-retry" in retry.run_key  # tried again without new activity

        run_ingest(settings, log_level="WARNING", dagster_instance=instance)  # the landing sensor's work
        run_notify(settings, log_level="WARNING", dagster_instance=instance)
        hec.respond("/hec", *[(200, {}, '{"text":"Success","code":0}')] * 10)
        refused = len(hec.requests("/hec"))
        result, _ = run_stream(settings, dagster_instance=instance, log_level="WARNING")
        assert result["streams"][0]["sent"] == 3
        assert [e["activity"] for e in _spooled(landing)] == ["stream_failing", "stream_recovered"]
        run_ingest(settings, log_level="WARNING", dagster_instance=instance)
        run_notify(settings, log_level="WARNING", dagster_instance=instance)
        run_notify(settings, log_level="WARNING", dagster_instance=instance)  # again: nothing twice
        delivered = [json.loads(line) for r in hec.requests("/hec")[refused:] for line in r.body.decode().splitlines()]

    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert [(a["event"]["activity"], a["event"]["item_id"]) for a in alerts] == [
        ("stream_failing", "splunk"), ("stream_recovered", "splunk")]
    assert "503" in alerts[0]["event"]["detail"]["context"]["last_error"]
    flags = lake.scan(ACTIVITY_LOG).filter(pl.col("scope") == "FeatureFlag").collect()["id"].to_list()
    assert sorted(e["event"]["id"] for e in delivered) == sorted(flags)  # each exactly once
    assert sorted(lake.scan(STREAM_LEDGER).collect()["event_id"].to_list()) == sorted(flags)


def test_a_paused_stream_sends_nothing_and_catches_up_when_resumed(tmp_path, monkeypatch, instance, lake, landing):
    from destinations.siem import run_streams
    from pipelines.config import load_config
    from pipelines.definitions import build_definitions
    from transforms.settings import Settings
    from pipelines.streams import stream_sensor
    from transforms.streams import PAUSED, status_rows, stream_health

    build_lake(lake, landing, [make_event(created_at=f"2024-03-0{d}T10:00:00Z", item_id=str(d)) for d in (1, 2)],
               name="a.jsonl", days="changed")
    archive = tmp_path / "archive"
    config = tmp_path / "activitylog.yaml"
    config.write_text(f"streams:\n  archive: {{sink: {{type: s3, uri: {archive}}}, paused: true}}\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    streams = load_config(config).streams
    assert status_rows(lake, streams)[0]["state"] == PAUSED  # paused before it ever ran
    settings = Settings.from_env(lake=lake.root)
    with dg.build_sensor_context(instance=instance, resources=build_definitions(settings).resources) as context:
        skipped = stream_sensor(context)
    assert isinstance(skipped, dg.SkipReason) and "paused" in skipped.skip_message
    report = run_streams(lake, streams, log=lambda _: None)
    assert report.as_rows() == [{"stream": "archive", "days": 0, "sent": 0, "batches": 0,
                                 "status": "paused by the configuration"}]
    assert stream_health(lake)["archive"]["state"] == PAUSED and not archive.exists()
    row = status_rows(lake, streams)[0]
    assert row["days"] == 2 and row["events"] == 2  # still due
    config.write_text(f"streams:\n  archive: {{sink: {{type: s3, uri: {archive}}}}}\n")
    resumed = run_streams(lake, load_config(config).streams, log=lambda _: None)
    assert resumed.streams["archive"]["sent"] == 2 and stream_health(lake)["archive"]["state"] == "ok"
    assert resumed.alerts == []  # paused → ok is not an incident
