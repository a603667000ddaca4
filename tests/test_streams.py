"""SIEM streams against real local servers: Splunk HEC and Datadog (HTTP on 127.0.0.1), syslog (TCP)."""

import gzip
import json
import socket
import threading
import time

import dagster as dg
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from destinations.delivery import RetryPolicy
from destinations.siem import run_streams
from destinations.sinks import cef
from pipelines.config import ConfigError, load_config
from tests.helpers.receiver import Receiver
from transforms.lake import ACTIVITY_LOG
from transforms.streams import STREAM_LEDGER, ocsf_record
from transforms import jsontext
from hypothesis import given, settings as hsettings, strategies as st
from tests.helpers.json_text import json_string, json_value

FAST = RetryPolicy(max_attempts=2, backoff_base=0.01)


def add_events(lake, landing, events, name):
    build_lake(lake, landing, events, name=name, days="changed")


def streams_config(tmp_path, monkeypatch, body: str, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "activitylog.yaml"
    path.write_text(body)
    return load_config(path).streams


def events_on(day: int, count: int, **overrides):
    return [make_event(created_at=f"2024-01-{day:02d}T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                       item_id=f"{day}-{i}", **overrides) for i in range(count)]


class SyslogListener:
    """A TCP server on 127.0.0.1 that keeps every byte it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                while chunk := connection.recv(65536):
                    self.data += chunk

    def frames(self) -> list[str]:
        out, data = [], self.data
        while data:
            length, _, rest = data.partition(b" ")
            out.append(rest[: int(length)].decode())
            data = rest[int(length):]
        return out

    def close(self) -> None:
        self.sock.close()


def test_splunk_hec_batches_with_the_token(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, events_on(10, 5), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  splunk:
    filter: {scopes: [FeatureFlag]}
    schema: ocsf
    sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}, batch_size: 2, index: audit}
""", HEC_URL=server.url("/services/collector/event"), HEC_TOKEN="t0k3n")
        report = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        requests = server.requests("/services/collector/event")
    assert report.as_rows() == [{"stream": "splunk", "days": 1, "sent": 5, "batches": 3, "status": "up to date"}]
    assert len(requests) == 3 and all(r.headers["authorization"] == "Splunk t0k3n" for r in requests)
    events = [json.loads(line) for r in requests for line in r.body.decode().splitlines()]
    assert [len(r.body.decode().splitlines()) for r in requests] == [2, 2, 1]
    first = events[0]
    assert set(first) == {"time", "host", "source", "sourcetype", "index", "event"}
    assert first["sourcetype"] == "activitylog:json" and first["index"] == "audit"
    assert first["event"]["class_uid"] == 3004 and first["time"] == first["event"]["time"] / 1000
    assert "entity_result" not in first["event"]  # values only with include_values


def test_datadog_gzipped_arrays_of_at_most_1000(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, events_on(10, 1500), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  dd: {sink: {type: datadog, url: {env: DD_LOGS_URL}, api_key: {env: DD_API_KEY}}}
""", DD_LOGS_URL=server.url("/api/v2/logs"), DD_API_KEY="k3y")
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
        requests = server.requests("/api/v2/logs")
    assert [r.headers["dd-api-key"] for r in requests] == ["k3y", "k3y"]
    assert all(r.headers["content-encoding"] == "gzip" for r in requests)
    arrays = [json.loads(gzip.decompress(r.body)) for r in requests]
    assert [len(a) for a in arrays] == [1000, 500]
    entry = arrays[0][0]
    assert entry["ddsource"] == "activitylog" and entry["activity_log"]["scope"] == "FeatureFlag"
    assert entry["message"] == entry["activity_log"]["summary"]


@pytest.mark.parametrize("fmt", ["rfc5424", "cef"])
def test_syslog_octet_counted_over_tcp(lake, landing, tmp_path, monkeypatch, fmt):
    add_events(lake, landing, events_on(10, 3), "a.jsonl")
    listener = SyslogListener()
    try:
        streams = streams_config(tmp_path, monkeypatch, f"""\
streams:
  syslog: {{schema: native, sink: {{type: syslog, host: 127.0.0.1, port: {listener.port}, format: {fmt}}}}}
""")
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
        for _ in range(100):
            if len(listener.frames()) == 3:
                break
            threading.Event().wait(0.02)
        frames = listener.frames()
    finally:
        listener.close()
    assert len(frames) == 3
    header, _, body = frames[0].partition("] ")
    assert header.startswith("<110>1 2024-01-10T00:00:00Z ") and " activitylog - FeatureFlag.updated " in header
    assert '[activitylog@32473 id="' in header
    if fmt == "rfc5424":
        assert json.loads(body)["scope"] == "FeatureFlag"
    else:
        assert body.startswith("CEF:0|PostHog|activitylog|1.0|FeatureFlag.updated|Jane Doe changed feature flag")
        assert "suser=jane@example.com" in body and "cs1Label=scope cs1=FeatureFlag" in body


def test_local_archive_writes_dated_gzipped_ndjson(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, events_on(10, 3) + events_on(11, 2), "a.jsonl")
    streams = streams_config(tmp_path, monkeypatch, "streams:\n  archive: {sink: {type: s3, uri: archive}}\n")
    run_streams(lake, streams, log=lambda _: None)
    files = sorted((tmp_path / "archive").rglob("*.json.gz"))
    assert len(files) == 2  # one batch per day
    relative = files[0].relative_to(tmp_path / "archive").parts
    assert len(relative) == 5 and len(relative[0]) == 4 and relative[-1].endswith(".json.gz")  # YYYY/MM/DD/HH/x
    ids = [json.loads(line)["id"] for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert len(ids) == len(set(ids)) == 5


def test_a_failing_sink_pauses_and_resumes_without_loss_or_duplicates(lake, landing, tmp_path, monkeypatch):
    add_events(lake, landing, events_on(10, 5) + events_on(11, 3), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  splunk: {sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}, batch_size: 2}}
""", HEC_URL=server.url("/hec"), HEC_TOKEN="t")
        server.respond("/hec", (200, {}, "{}"), (503, {}, "busy"), (503, {}, "busy"))  # 2nd batch fails twice
        paused = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        assert "splunk" in paused.errors and "503" in paused.errors["splunk"]
        assert paused.streams["splunk"]["sent"] == 2
        resumed = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        assert resumed.streams["splunk"]["sent"] == 6 and not resumed.errors
        delivered = [json.loads(line)["event"]["id"] for r in server.requests("/hec") if r.body
                     for line in r.body.decode().splitlines()]
        again = run_streams(lake, streams, log=lambda _: None, policy=FAST)  # nothing new: nothing sent
        assert again.streams["splunk"]["sent"] == 0
        late = make_event(created_at="2024-01-10T23:59:00Z", item_id="late")
        add_events(lake, landing, [late], "late.jsonl")
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
        last = server.requests("/hec")[-1].body.decode().splitlines()
    accepted = set(lake.scan(ACTIVITY_LOG).collect()["id"]) - {late["id"]}
    # Every event exactly once among the accepted batches (the two failed attempts carried the same 2).
    acked = lake.scan(STREAM_LEDGER).collect()["event_id"].to_list()
    assert sorted(acked) == sorted(accepted | {late["id"]})
    assert set(delivered) == accepted and [json.loads(line)["event"]["id"] for line in last] == [late["id"]]


def test_ocsf_record_shape():
    from datetime import datetime, timezone

    detail = ('{"name": "f", "changes": [{"field": "rollout", "before": 10, "after": 1e400},'
              ' {"field": "filters", "before": {"a": [1]}}, "not a change", {"before": 1}]}')
    row = {"id": "e1", "activity": "deleted", "scope": "FeatureFlag", "item_id": "42", "detail": detail,
           "detail_name": "f", "actor_uuid": "u1", "actor_email": "jane@example.com", "actor_name": "Jane Doe",
           "is_system": False, "was_impersonated": True, "created_at": datetime(2024, 1, 10, tzinfo=timezone.utc),
           "ip_address": "203.0.113.7", "team_id": 1, "organization_id": "o1",
           "changed_fields": ["rollout", "filters"], "summary": "Jane Doe deleted feature flag"}
    record = ocsf_record(row)
    assert (record["class_uid"], record["category_uid"], record["activity_id"], record["type_uid"]) == (3004, 3, 4, 300404)
    assert record["actor"]["user"] == {"uid": "u1", "email_addr": "jane@example.com", "name": "Jane Doe"}
    assert record["actor"]["invoked_by"] == "impersonation" and record["src_endpoint"] == {"ip": "203.0.113.7"}
    assert record["entity"] == {"type": "FeatureFlag", "uid": "42", "name": "f"} and "entity_result" not in record
    assert record["time"] == 1704844800000 and record["time_dt"] == "2024-01-10T00:00:00Z"
    assert record["metadata"]["version"] == "1.5.0" and record["unmapped"]["team_id"] == 1
    assert "detail" not in jsontext.encode(record)  # no values of changed fields by default
    valued = json.loads(jsontext.encode(ocsf_record(row, include_values=True)))
    assert valued["entity"]["data"] == {"rollout": 10, "filters": {"a": [1]}}
    assert valued["entity_result"]["data"] == {"rollout": float("inf"), "filters": None}
    # every value is the stored text exactly (1e400 is not a float a decoder keeps)
    assert '"rollout":1e400' in jsontext.encode(ocsf_record(row, include_values=True))
    assert ocsf_record({**row, "activity": "created"})["activity_id"] == 1
    other = ocsf_record({**row, "activity": "merged"})
    assert other["activity_id"] == 99 and other["activity_name"] == "merged" and other["type_uid"] == 300499
    assert ocsf_record({**row, "activity": "logged_in"})["class_uid"] == 3002
    assert ocsf_record({**row, "activity": "scim_deprovisioned"})["type_uid"] == 300104
    assert ocsf_record({**row, "activity": "save_rejected_stale"})["status_id"] == 2
    assert ocsf_record({**row, "detail": "[1, 2]"}, include_values=True).get("entity_result") is None
    assert ocsf_record({**row, "detail": None, "actor_uuid": None, "actor_email": None,
                        "ip_address": None}, include_values=True).keys().isdisjoint({"actor", "src_endpoint"})
    assert cef({"scope": "A|B", "activity": "x", "summary": "a=b\nc"}).startswith("CEF:0|PostHog|activitylog|1.0|A\\|B.x|a=b c|3|")


@pytest.mark.parametrize("body, env, message", [
    ("streams:\n  x: {sink: {type: kafka}}\n", {}, "streams.x.sink: type 'kafka' is not one of s3, splunk_hec, datadog, syslog"),
    ("streams:\n  x: {sink: {type: splunk_hec, url: {env: NOPE_URL}, token: {env: NOPE_T}}}\n", {},
     "environment variable NOPE_URL is not set"),
    ("streams:\n  x: {schema: cef, sink: {type: s3, uri: out}}\n", {}, "streams.x.schema"),
    ("streams:\n  x: {sink: {type: syslog, host: h, port: 99999}}\n", {}, "streams.x.sink.syslog.port"),
    ("streams:\n  x: {filter: {colour: red}, sink: {type: s3, uri: out}}\n", {}, "streams.x.filter: unknown field 'colour'"),
])
def test_stream_configuration_errors(tmp_path, monkeypatch, body, env, message):
    monkeypatch.delenv("NOPE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        streams_config(tmp_path, monkeypatch, body, **env)
    assert message in str(info.value)


def test_stream_sensor_and_job(lake, landing, tmp_path, monkeypatch, instance):
    from pipelines.definitions import build_definitions
    from pipelines.runner import run_stream
    from transforms.settings import Settings
    from pipelines.streams import stream_sensor

    add_events(lake, landing, events_on(10, 2), "a.jsonl")
    config = tmp_path / "activitylog.yaml"
    config.write_text("streams:\n  archive: {sink: {type: s3, uri: archive}}\n")
    monkeypatch.setenv("ACTIVITYLOG_CONFIG", str(config))
    settings = Settings.from_env(lake=lake.root)
    resources = build_definitions(settings).resources
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        request = stream_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.tags["activitylog/streams"] == "archive"
    report, run_id = run_stream(settings, dagster_instance=instance, log_level="WARNING")
    assert report["streams"][0]["sent"] == 2
    outputs = [e for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.is_successful_output]
    metadata = outputs[0].dagster_event.step_output_data.metadata
    assert metadata["states"].data == {"archive": "ok"} and "| archive | ok | 1 | 2 |" in metadata["streams"].value
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert isinstance(stream_sensor(context), dg.SkipReason)
    config.write_text("streams:\n  broken: {sink: {type: syslog, host: 127.0.0.1, port: 9, max_attempts: 1}}\n")
    with pytest.raises(dg.Failure, match="paused streams: broken"):
        run_stream(settings, dagster_instance=instance, log_level="CRITICAL")


@hsettings(max_examples=150, deadline=None)
@given(changes=st.lists(st.tuples(json_string(), json_value, json_value), max_size=4), name=json_string())
def test_ocsf_values_are_the_stored_texts(changes, name):
    """Over arbitrary JSON (any escapes, unpaired surrogates, numbers beyond a float): with
    ``include_values`` each changed field's before and after are its stored text exactly; without it no
    value appears; the record always encodes."""
    from datetime import datetime, timezone

    detail = '{"name": ' + name + ', "changes": [' + ", ".join(
        f'{{"field": {f}, "before": {b}, "after": {a}}}' for f, b, a in changes) + "]}"
    row = {"id": "e", "activity": "updated", "scope": "FeatureFlag", "item_id": "1", "detail": detail,
           "created_at": datetime(2024, 1, 1, tzinfo=timezone.utc)}
    valued = ocsf_record(row, include_values=True)
    jsontext.encode(valued)
    expected_before, expected_after = {}, {}
    for f, b, a in changes:
        field = json.loads(f)
        if field and not any(0xD800 <= ord(c) <= 0xDFFF for c in field):
            expected_before[field], expected_after[field] = b, a
    got_before = {k: bytes(v).decode() for k, v in valued["entity"].get("data", {}).items()}
    got_after = {k: bytes(v).decode() for k, v in valued.get("entity_result", {}).get("data", {}).items()}
    assert (got_before, got_after) == (expected_before, expected_after)
    assert "data" not in ocsf_record(row)["entity"] and "entity_result" not in ocsf_record(row)


def test_ocsf_api_activity_schema_keeps_the_earlier_record(lake, landing, tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from transforms.ocsf import api_activity_record

    row = {"id": "e1", "activity": "deleted", "scope": "FeatureFlag", "item_id": "42", "detail": '{"name": "f"}',
           "actor_uuid": "u1", "actor_email": "jane@example.com", "actor_name": "Jane Doe", "is_system": False,
           "was_impersonated": True, "created_at": datetime(2024, 1, 10, tzinfo=timezone.utc), "ip_address": "203.0.113.7",
           "resource_name": "f", "team_id": 1, "organization_id": "o1", "summary": "Jane Doe deleted feature flag"}
    record = api_activity_record(row)
    assert (record["class_uid"], record["category_uid"], record["activity_id"], record["type_uid"]) == (6003, 6, 4, 600304)
    assert record["actor"]["user"] == {"uid": "u1", "email_addr": "jane@example.com", "name": "Jane Doe", "type": "User"}
    assert record["api"]["operation"] == "FeatureFlag.deleted" and record["resources"] == [
        {"uid": "42", "type": "FeatureFlag", "name": "f"}]
    assert bytes(record["unmapped"]["detail"]) == b'{"name": "f"}'  # the stored text, embedded as it is
    add_events(lake, landing, events_on(10, 3), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  old: {schema: ocsf_api_activity, sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}}}
""", HEC_URL=server.url("/services/collector/event"), HEC_TOKEN="t")
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
        events = [json.loads(line) for r in server.requests("/services/collector/event")
                  for line in r.body.decode().splitlines()]
    assert len(events) == 3 and {e["event"]["class_uid"] for e in events} == {6003}
    assert all(e["event"]["unmapped"]["detail"]["changes"][0]["after"] is True for e in events)


def test_stream_health_degraded_then_failing_then_ok_without_loss(lake, landing, tmp_path, monkeypatch):
    from transforms.streams import stream_health

    add_events(lake, landing, events_on(10, 3) + events_on(11, 2), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  splunk: {sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}, batch_size: 2}, failing_after: 0.2}
""", HEC_URL=server.url("/hec"), HEC_TOKEN="t")
        server.respond("/hec", *[(503, {}, "down")] * 4)
        first = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        assert first.health["splunk"]["state"] == "degraded" and "503" in first.health["splunk"]["last_error"]
        time.sleep(0.3)
        second = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        health = stream_health(lake)["splunk"]
        assert second.health["splunk"]["state"] == health["state"] == "failing"
        assert health["since"] == first.health["splunk"]["since"]  # one incident
        recovered = run_streams(lake, streams, log=lambda _: None, policy=FAST)
        assert stream_health(lake)["splunk"]["state"] == "ok" and recovered.streams["splunk"]["sent"] == 5
    acked = lake.scan(STREAM_LEDGER).collect()["event_id"].to_list()
    assert sorted(acked) == sorted(set(lake.scan(ACTIVITY_LOG).collect()["id"]))


def test_a_4xx_holds_the_stream_failing_at_once(lake, landing, tmp_path, monkeypatch):
    from transforms.streams import stream_health

    add_events(lake, landing, events_on(10, 2), "a.jsonl")
    with Receiver() as server:
        streams = streams_config(tmp_path, monkeypatch, """\
streams:
  splunk: {sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}}}
""", HEC_URL=server.url("/hec"), HEC_TOKEN="t")
        server.respond("/hec", (400, {}, "bad request"))
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
        health = stream_health(lake)["splunk"]
        assert health["state"] == "failing" and "400" in health["last_error"]
        assert lake.scan(STREAM_LEDGER) is None or lake.scan(STREAM_LEDGER).collect().height == 0
        run_streams(lake, streams, log=lambda _: None, policy=FAST)
    assert stream_health(lake)["splunk"]["state"] == "ok"
    assert lake.scan(STREAM_LEDGER).collect().height == 2
