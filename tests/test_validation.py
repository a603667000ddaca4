"""Every rejection kind: the exact reason, the verbatim text, and accounting that balances."""

import gzip
import json
from datetime import date, timedelta

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW
from transforms.validate import ValidationSettings


def _without(field):
    event = make_event()
    del event[field]
    return json.dumps(event)


REJECTIONS = [
    ('{"id": "a", "activity": broken}', "invalid JSON at column 25: Expecting value"),
    ('{"id": "a", "scope": "X"', "invalid JSON at column 25: Expecting ',' delimiter"),
    ("[1, 2, 3]", "not a JSON object (found an array)"),
    ('"just a string"', "not a JSON object (found a string)"),
    ("42", "not a JSON object (found a number)"),
    (_without("id"), "missing required field: id"),
    (_without("activity"), "missing required field: activity"),
    (_without("scope"), "missing required field: scope"),
    (_without("created_at"), "missing required field: created_at"),
    (json.dumps(make_event(id="")), "id is empty"),
    (json.dumps(make_event(id={"nested": 1})), "id must be a string"),
    (json.dumps(make_event(activity="")), "activity is empty"),
    (json.dumps(make_event(scope="S" * 80)), "scope longer than 79 characters"),
    (json.dumps(make_event(activity="a" * 80)), "activity longer than 79 characters"),
    (json.dumps(make_event(created_at="2024-01-15T10:30:00")), "created_at has no timezone"),
    (json.dumps(make_event(created_at="yesterday Z")), "created_at is not an ISO-8601 timestamp: yesterday Z"),
    (json.dumps(make_event(created_at="2999-01-01T00:00:00Z")), "created_at 2999-01-01 is more than 1 day in the future"),
    (json.dumps(make_event(created_at="2019-12-31T23:59:59Z")),
     "created_at 2019-12-31 is before ACTIVITYLOG_START_DATE (2020-01-01)"),
    (json.dumps(make_event(item_id="x" * 73)), "item_id longer than 72 characters"),
    (json.dumps(make_event(item_id={"id": 1})), "item_id must be a string or a number"),
    (json.dumps(make_event(detail=["not", "an", "object"])), "detail must be an object or null"),
    (json.dumps(make_event(detail="a string")), "detail must be an object or null"),
    (json.dumps(make_event(user="jane")), "user must be an object or null"),
    (json.dumps(make_event(is_system="yes")), "is_system must be a boolean"),
    (json.dumps(make_event(was_impersonated=1)), "was_impersonated must be a boolean"),
    (json.dumps(make_event(team_id="abc")), "team_id must be an integer"),
    (json.dumps(make_event(team_id=None, organization_id=None)),
     "no team_id or organization_id, and ACTIVITYLOG_DEFAULT_TEAM_ID is not set"),
]


@pytest.mark.parametrize("line,reason", REJECTIONS, ids=[r for _, r in REJECTIONS])
def test_each_rejection_names_its_reason_and_keeps_the_line(landing, lake, settings, line, reason):
    good = make_event()
    write_lines(landing / "events.jsonl", [good, line, ""])

    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (2, 1, 0, 1)
    assert report.balanced
    quarantine = lake.scan(ACTIVITY_QUARANTINE).collect()
    assert quarantine.height == 1
    row = quarantine.row(0, named=True)
    assert row["quarantine_reason"].startswith(reason), row["quarantine_reason"]
    assert row["raw_text"] == line  # verbatim
    assert row["line"] == 2
    assert row["source"] == str(landing / "events.jsonl")
    assert lake.scan(ACTIVITY_RAW).collect()["id"].to_list() == [good["id"]]


def test_strings_that_look_like_containers_are_accepted(landing, lake, settings):
    """Polars only suspects '{'/'[' prefixes; a string value like "[draft]" is valid."""
    events = [make_event(item_id="[draft]"), make_event(organization_id="{org}"), make_event(id="[id]")]
    write_lines(landing / "events.jsonl", events)

    report = ingest(lake, str(landing), settings)

    assert (report.accepted, report.quarantined) == (3, 0)


def test_a_suspect_row_that_also_breaks_a_later_type_rule_is_still_rejected(landing, lake, settings):
    line = json.dumps(make_event(item_id="[draft]", user="not-an-object"))
    write_lines(landing / "events.jsonl", [line])

    report = ingest(lake, str(landing), settings)

    assert report.quarantined == 1
    assert lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].item() == "user must be an object or null"


def test_future_skew_and_start_date_are_settings(landing, lake, settings):
    tomorrow_noon = (settings.now + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_lines(landing / "events.jsonl", [make_event(created_at=tomorrow_noon), make_event(created_at="2021-06-01T00:00:00Z")])
    strict = ValidationSettings(start_date=date(2022, 1, 1), max_future_skew=timedelta(hours=1), now=settings.now)

    report = ingest(lake, str(landing), strict)

    reasons = sorted(lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].to_list())
    assert report.accepted == 0
    assert reasons == [
        "created_at 2021-06-01 is before ACTIVITYLOG_START_DATE (2022-01-01)",
        f"created_at {tomorrow_noon[:10]} is more than 1 hour in the future",
    ]


def test_default_team_makes_levelless_events_project_level(landing, lake, settings):
    event = make_event(team_id=None, organization_id=None)
    del event["team_id"], event["organization_id"]
    write_lines(landing / "events.jsonl", [event])
    with_default = ValidationSettings(start_date=settings.start_date, default_team_id=7, now=settings.now)

    report = ingest(lake, str(landing), with_default)

    assert report.accepted == 1
    row = lake.scan(ACTIVITY_RAW).collect().row(0, named=True)
    assert (row["team_id"], row["organization_id"], row["level"]) == (7, None, "project")


def test_organization_level_events_keep_no_team(landing, lake, settings):
    write_lines(landing / "events.jsonl", [make_event(team_id=None, scope="OrganizationMembership")])

    ingest(lake, str(landing), settings)

    row = lake.scan(ACTIVITY_RAW).collect().row(0, named=True)
    assert (row["team_id"], row["organization_id"], row["level"]) == (None, "org-1", "organization")


def test_invalid_utf8_line_is_quarantined_and_the_rest_kept(landing, lake, settings):
    good = json.dumps(make_event()).encode()
    (landing / "events.jsonl").write_bytes(good + b"\n" + b'{"id": "\xff\xfe"}\n')

    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.accepted, report.quarantined) == (2, 1, 1)
    row = lake.scan(ACTIVITY_QUARANTINE).collect().row(0, named=True)
    assert row["quarantine_reason"] == "line is not valid UTF-8 (byte 9)"
    assert row["line"] == 2


def test_broken_json_document_is_quarantined_whole(landing, lake, settings):
    text = '[{"id": "a"}, oops]'
    (landing / "page.json").write_text(text)

    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.quarantined) == (1, 1)
    row = lake.scan(ACTIVITY_QUARANTINE).collect().row(0, named=True)
    assert row["quarantine_reason"].startswith("invalid JSON document at line 1 column 15")
    assert row["raw_text"] == text


def test_json_array_element_that_is_not_an_object(landing, lake, settings):
    good = make_event()
    (landing / "export.json").write_text(json.dumps([good, "oops", 3]))

    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.accepted, report.quarantined) == (3, 1, 2)
    rows = lake.scan(ACTIVITY_QUARANTINE).collect().sort("line")
    assert rows["line"].to_list() == [2, 3]
    assert rows["quarantine_reason"].to_list() == ["not a JSON object (found a string)", "not a JSON object (found a number)"]


def test_corrupt_gzip_file_is_quarantined_not_fatal(landing, lake, settings):
    (landing / "bad.jsonl.gz").write_bytes(b"this is not gzip")
    with gzip.open(landing / "good.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(make_event()) + "\n")

    report = ingest(lake, str(landing), settings)

    assert (report.accepted, report.quarantined) == (1, 1)
    reason = lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].item()
    assert "is not a valid gzip file" in reason


def test_quarantine_reasons_are_counted_by_kind(landing, lake, settings):
    lines = ['{"a": ', '{"b": x}', json.dumps(make_event(created_at="2999-01-01T00:00:00Z")),
             json.dumps(make_event(created_at="2998-01-01T00:00:00Z"))]
    write_lines(landing / "events.jsonl", lines)

    report = ingest(lake, str(landing), settings)

    assert dict(report.quarantine_reasons) == {
        "invalid JSON": 2,
        "created_at is more than 1 day in the future": 2,
    }
    assert pl.Series(lake.scan(ACTIVITY_QUARANTINE).collect()["line"]).sort().to_list() == [1, 2, 3, 4]
