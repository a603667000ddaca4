"""The input rules exactly as the README states them: one test per rule, reason and accounting."""

import json

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW


def _ingest_one(lake, landing, settings, line):
    write_lines(landing / "events.jsonl", [make_event(id="control"), line])
    report = ingest(lake, str(landing), settings)
    assert report.balanced and report.lines == 2
    return report


def _reason(lake):
    return lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].item()


def _event_line(**fields) -> str:
    """An event line with fields written as raw JSON texts (``team_id="1.0"`` writes the number 1.0)."""
    event = make_event()
    for name in fields:
        event.pop(name, None)
    text = json.dumps(event)[:-1]
    return text + "".join(f', "{name}": {value}' for name, value in fields.items()) + "}"


@pytest.mark.parametrize("value", ['"5"', "1.0", "1e2", "true", "[1]", "-1.5"])
def test_team_id_must_be_an_integer(lake, landing, settings, value):
    report = _ingest_one(lake, landing, settings, _event_line(team_id=value))
    assert (report.accepted, report.quarantined) == (1, 1)
    assert _reason(lake) == "team_id must be an integer"


def test_team_id_beyond_64_bits_is_refused(lake, landing, settings):
    report = _ingest_one(lake, landing, settings, _event_line(team_id=str(2**63)))
    assert report.quarantined == 1
    assert _reason(lake) == "team_id is out of range (a 64-bit integer)"


@pytest.mark.parametrize("value", ["true", "1.5", "1e3", "null", "{}", "[]"])
def test_id_must_be_a_string_or_an_integer(lake, landing, settings, value):
    report = _ingest_one(lake, landing, settings, _event_line(id=value))
    assert report.quarantined == 1
    expected = "missing required field: id" if value == "null" else "id must be a string or an integer"
    assert _reason(lake) == expected


def test_an_integer_id_is_stored_as_its_text(lake, landing, settings):
    report = _ingest_one(lake, landing, settings, _event_line(id="12345678901234567890123"))
    assert report.accepted == 2
    assert "12345678901234567890123" in lake.scan(ACTIVITY_RAW).collect()["id"].to_list()


@pytest.mark.parametrize("name", ["activity", "scope", "created_at", "organization_id"])
def test_text_fields_must_be_strings(lake, landing, settings, name):
    report = _ingest_one(lake, landing, settings, _event_line(**{name: "42"}))
    assert report.quarantined == 1
    assert _reason(lake) == f"{name} must be a string"


@pytest.mark.parametrize("value,item_id", [('"a"', "a"), ("123", "123"), ("1.5", "1.5"), ("1e3", "1e3")])
def test_item_id_numbers_are_coerced_to_their_text(lake, landing, settings, value, item_id):
    report = _ingest_one(lake, landing, settings, _event_line(id='"x"', item_id=value))
    assert report.accepted == 2
    raw = lake.scan(ACTIVITY_RAW).filter(pl.col("id") == "x").collect()
    assert raw["item_id"].item() == item_id


@pytest.mark.parametrize("created_at,expected", [
    ("2026-11-20T10:00Z", "2026-11-20 10:00:00"),
    ("2026-11-20T10:00:00Z", "2026-11-20 10:00:00"),
    ("2026-11-20T10:00:00.123456789123Z", "2026-11-20 10:00:00.123456"),
    ("2026-11-20T10:00:00.1Z", "2026-11-20 10:00:00.100000"),
    ("2026-11-20T15:30:00+0530", "2026-11-20 10:00:00"),
    ("2026-11-20T15:30:00+05:30", "2026-11-20 10:00:00"),
    ("2026-11-20T15:00:00+05", "2026-11-20 10:00:00"),
    ("2026-11-20T10:00:00,5z", "2026-11-20 10:00:00.500000"),
    ("2026-11-20 10:00:00Z", "2026-11-20 10:00:00"),
    ("20261120T100000Z", "2026-11-20 10:00:00"),
    ("2026-11-20T09:59:00-00:01", "2026-11-20 10:00:00"),
])
def test_every_iso_8601_form_with_a_zone_is_accepted(lake, landing, settings, created_at, expected):
    from datetime import datetime, timezone

    now = datetime(2026, 11, 21, tzinfo=timezone.utc)
    settings = type(settings)(start_date=settings.start_date, now=now)
    report = _ingest_one(lake, landing, settings, json.dumps(make_event(id="t", created_at=created_at)))
    assert report.accepted == 2, lake.scan(ACTIVITY_QUARANTINE).collect() if report.quarantined else None
    stored = lake.scan(ACTIVITY_RAW).filter(pl.col("id") == "t").collect()["created_at"].item()
    assert stored.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if "." in expected else "")) == expected


@pytest.mark.parametrize("created_at", ["2026-11-20", "2026-11-20T25:00:00Z", "2026-13-01T00:00:00Z",
                                        "2026-11-20T10:00:00+2500", "2026-11-20T10Z"])
def test_what_is_not_an_iso_8601_timestamp_is_refused(lake, landing, settings, created_at):
    report = _ingest_one(lake, landing, settings, json.dumps(make_event(created_at=created_at)))
    assert report.quarantined == 1
    assert _reason(lake).startswith(("created_at is not an ISO-8601 timestamp", "created_at has no timezone"))


def test_booleans_must_be_json_booleans(lake, landing, settings):
    report = _ingest_one(lake, landing, settings, _event_line(is_system='"true"'))
    assert report.quarantined == 1
    assert _reason(lake) == "is_system must be a boolean"
