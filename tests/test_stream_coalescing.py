"""Stream work for many days is one Dagster run: a month of new days starts one stream run, not thirty."""

import gzip
import json

import dagster as dg

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake

DAYS = 12


def test_many_new_days_start_one_stream_run_that_delivers_them_all(lake, landing, tmp_path, monkeypatch, instance):
    from pipelines.definitions import build_definitions
    from pipelines.runner import run_stream
    from transforms.settings import Settings
    from pipelines.streams import stream_sensor

    events = [make_event(created_at=f"2024-02-{day:02d}T10:00:{i:02d}Z", item_id=f"{day}-{i}")
              for day in range(1, DAYS + 1) for i in range(3)]
    report = build_lake(lake, landing, events, name="month.jsonl", days="changed")
    assert len(report.days_changed) == DAYS
    archive = tmp_path / "archive"
    config = tmp_path / "activitylog.yaml"
    config.write_text(f"streams:\n  archive: {{sink: {{type: s3, uri: {archive}}}}}\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    settings = Settings.from_env(lake=lake.root)
    resources = build_definitions(settings).resources
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        request = stream_sensor(context)
    assert isinstance(request, dg.RunRequest), request  # one request for all twelve days
    result, _ = run_stream(settings, dagster_instance=instance, log_level="WARNING")
    assert result["streams"][0]["sent"] == DAYS * 3
    files = sorted(archive.rglob("*.json.gz"))
    assert len(files) == DAYS  # every day delivered by that one run
    delivered = [json.loads(line) for f in files
                 for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    assert sorted(r["id"] for r in delivered) == sorted({r["id"] for r in delivered}) and len(delivered) == DAYS * 3
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        after = stream_sensor(context)
    assert isinstance(after, dg.SkipReason) and "up to date" in after.skip_message
