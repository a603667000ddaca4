"""Property: any event ingest accepts reaches activity_log, exports and the read API with its JSON exact.

Hypothesis writes the event lines itself, character by character, so the texts hold what real
producers send and a JSON encoder in this process would never write: escapes of any character,
unpaired surrogates, NUL and control characters, U+2028/2029, numbers of any size or precision,
duplicate keys, deep nesting. The lines go through the real ingest and refresh (and, in the last
test, through `activitylog ingest`, `export` and `serve`), and come back out of the tables compared
byte for byte (detail, before, after) and as JSON values.
"""

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st

from tests.helpers.events import make_event
from tests.helpers.json_text import json_string, json_value
from tests.helpers.lakes import build_lake
from transforms.changes import DEFAULT_MASKED_FIELDS
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake

MASKED = {m.lower() for m in DEFAULT_MASKED_FIELDS} | {m.split(".")[-1].lower() for m in DEFAULT_MASKED_FIELDS}


def _field_name(text: str) -> str:
    """A generated field name, kept off the masked list (masking is tested elsewhere)."""
    return text if json.loads(text).lower() not in MASKED else '"f_"'


@st.composite
def event_line(draw, index: int) -> dict:
    changes = draw(st.lists(st.tuples(json_string().map(_field_name), json_value, json_value), max_size=3))
    change_texts = [f'{{"type": "FeatureFlag", "action": "changed", "field": {f}, "before": {b}, "after": {a}}}'
                    for f, b, a in changes]
    extra = draw(st.lists(st.tuples(json_string(), json_value), max_size=2))
    detail = ('{"name": ' + draw(json_string()) + ', "changes": [' + ", ".join(change_texts) + "]" +
              "".join(f", {k}: {v}" for k, v in extra if json.loads(k) not in ("name", "changes")) + "}")
    event = make_event(id=f"e{index}", created_at=f"2024-01-{10 + index % 3:02d}T10:00:{index % 60:02d}Z")
    del event["detail"]
    line = json.dumps(event)[:-1] + ', "detail": ' + detail + "}"
    return {"id": event["id"], "line": line, "detail": detail, "changes": changes}


events = st.integers(1, 8).flatmap(lambda n: st.tuples(*(event_line(i) for i in range(n))))


def _exact(text: str):
    """A JSON text as a comparable value: numbers as Decimals (so 1e999 and 1.50 compare exactly)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _check_tables(lake: Lake, generated) -> None:
    by_id = {e["id"]: e for e in generated}
    for table in (ACTIVITY_EVENTS, ACTIVITY_LOG):
        rows = lake.scan(table).select("id", "detail").collect()
        assert sorted(rows["id"].to_list()) == sorted(by_id), table
        for event_id, detail in rows.iter_rows():
            assert detail == by_id[event_id]["detail"], (table, event_id)
    changes = lake.scan(ACTIVITY_CHANGES).sort("id", "change_index").collect() \
        if lake.exists(ACTIVITY_CHANGES) else pl.DataFrame({"id": []})
    expected = [(e["id"], i, f, b, a) for e in sorted(generated, key=lambda e: e["id"])
                for i, (f, b, a) in enumerate(e["changes"])]
    got = [(r["id"], r["change_index"], r["field"], r["before"], r["after"]) for r in changes.iter_rows(named=True)] \
        if changes.height else []
    assert [(i, n, b, a) for i, n, _, b, a in got] == [(i, n, b, a) for i, n, _, b, a in expected]
    for (_, _, field, _, _), (_, _, expected_field, _, _) in zip(got, expected):
        assert field == "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in json.loads(expected_field))


@pytest.mark.slow
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(generated=events)
def test_any_accepted_event_reaches_every_table_exactly(tmp_path_factory, settings, generated):
    root = tmp_path_factory.mktemp("prop")
    lake = Lake.at(root / "lake")

    report = build_lake(lake, root / "landing", [e["line"] for e in generated], settings=settings)
    assert (report.accepted, report.quarantined) == (len(generated), 0)

    raw = dict(lake.scan(ACTIVITY_RAW).select("id", "payload").collect().iter_rows())
    assert raw == {e["id"]: e["line"] for e in generated}  # verbatim
    _check_tables(lake, generated)


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
@hsettings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking:
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # runs are processes
@given(generated=st.integers(20, 40).flatmap(lambda n: st.tuples(*(event_line(i) for i in range(n)))))
def test_through_the_cli_exports_and_the_read_api(tmp_path_factory, generated):
    from tests.helpers.servers import LOOPBACK, child_env, free_port, script, start_server
    from transforms.keys import create_key

    root = tmp_path_factory.mktemp("cli")
    landing = root / "landing"
    landing.mkdir()
    (landing / "events.jsonl").write_text("".join(e["line"] + "\n" for e in generated), encoding="utf-8")
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = child_env({"ACTIVITYLOG_LAKE": str(root / "lake"), "ACTIVITYLOG_LANDING": str(landing),
                     "ACTIVITYLOG_CONFIG": os.devnull, "DAGSTER_HOME": str(root / "dagster"),
                     "ACTIVITYLOG_START_DATE": "2020-01-01"})
    ingested = _run("ingest", env=env)
    assert ingested.returncode == 0, ingested.stderr
    lake = Lake.at(root / "lake")
    assert sorted(lake.scan(ACTIVITY_RAW).collect()["id"].to_list()) == sorted(e["id"] for e in generated), \
        ingested.stdout + ingested.stderr
    _check_tables(lake, generated)
    by_id = {e["id"]: e for e in generated}

    for export_format in ("csv", "jsonl"):
        done = _run("export", "--format", export_format, "--out", f"{root / 'out'}/", "--name", f"all-{export_format}",
                    env=env)
        assert done.returncode == 0, done.stderr
        data = (root / "out" / f"all-{export_format}.{export_format}").read_text(encoding="utf-8")
        if export_format == "csv":
            csv.field_size_limit(sys.maxsize)
            rows = list(csv.DictReader(io.StringIO(data, newline="")))
        else:
            rows = [json.loads(line) for line in data.split("\n") if line]  # not splitlines(): U+2028
        assert sorted(r["id"] for r in rows) == sorted(by_id)
        for row in rows:
            assert row["detail"] == by_id[row["id"]]["detail"], export_format

    key = create_key(lake, "org-1", [1])[0]
    port = free_port()
    server = start_server("activitylog-serve", [script("activitylog"), "serve", "--host", LOOPBACK, "--port",
                                                str(port)], url=f"http://{LOOPBACK}:{port}/openapi.json", env=env, timeout=60)
    try:
        response = httpx.get(f"http://{LOOPBACK}:{port}/api/projects/1/activity_log/?limit=100",
                             headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert response.status_code == 200, response.text
        results = json.loads(response.content, parse_float=Decimal, parse_int=Decimal)["results"]
        assert sorted(r["id"] for r in results) == sorted(by_id)
        for result in results:
            assert result["detail"] == _exact(by_id[result["id"]]["detail"])
    finally:
        server.stop()
