"""Ingest: formats, deduplication, idempotence, late events, the ledger, and crash retries."""

import gzip
import json
import os
import re
from datetime import date

import polars as pl
import pytest

from tests.helpers import ROOT
from tests.helpers.events import make_event, write_lines
from tests.helpers.faults import appends_fail
from tests.helpers.lakes import build_lake
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, INGEST_LEDGER, Lake
from transforms.validate import ValidationSettings


def raw_ids(lake: Lake) -> list[str]:
    return sorted(lake.scan(ACTIVITY_RAW).collect()["id"].to_list())


def test_every_landing_format_is_read(landing, lake, settings):
    events = [make_event(created_at=f"2024-01-{d:02d}T08:00:00Z") for d in range(1, 8)]
    write_lines(landing / "a.jsonl", events[:2] + ["", "   "])
    write_lines(landing / "b.ndjson", events[2:3], newline="\r\n", bom=True)
    with gzip.open(landing / "c.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(events[3]) + "\n\n")
    (landing / "d.json").write_text(json.dumps([events[4]]))
    (landing / "e.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"results": [events[5]], "next": "https://x/?page=2"}).encode())
    with gzip.open(landing / "f.ndjson.gz", "wt") as handle:
        handle.write(json.dumps(events[6]))  # no trailing newline
    (landing / "notes.txt").write_text("ignored: not an event file")

    report = ingest(lake, str(landing), settings)

    assert report.files_seen == 6
    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (7, 7, 0, 0)
    assert raw_ids(lake) == sorted(e["id"] for e in events)
    assert sorted(report.days_changed) == [date(2024, 1, d) for d in range(1, 8)]


def test_payload_round_trips_exactly(landing, lake, settings):
    """before/after are never coerced: the stored payload is the line itself."""
    changes = [
        {"field": "a", "before": 1, "after": "1"},
        {"field": "b", "before": True, "after": None},
        {"field": "c", "before": 1.50, "after": {"nested": [1, "1", 1.0, False]}},
        {"field": "d", "before": [], "after": 12345678901234567890},
    ]
    event = make_event(detail={"name": "x", "changes": changes}, unknown_field={"kept": True})
    line = json.dumps(event, indent=None).replace("1.5,", "1.50,")
    write_lines(landing / "a.jsonl", [line])

    ingest(lake, str(landing), settings)

    payload = lake.scan(ACTIVITY_RAW).collect()["payload"].item()
    assert payload == line
    assert json.loads(payload)["detail"]["changes"] == changes
    assert json.loads(payload)["unknown_field"] == {"kept": True}


def test_posthog_documentation_example_is_ingested_exactly(landing, lake):
    """The example log entry of PostHog's activity-log docs, with a default project configured."""
    reference = (ROOT.parent / "shared" / "reference" / "posthog-activity-logs.txt")
    if reference.exists():
        text = reference.read_text()
        example = text[text.index("{", text.index("Example log entry")):]
        example = example[: example.index('"is_system": false') + len('"is_system": false') + 2].strip()
    else:  # the same entry, for a checkout without the reference folder beside it
        example = json.dumps({
            "id": "01234567-89ab-cdef-0123-456789abcdef", "activity": "updated", "scope": "FeatureFlag",
            "item_id": "12345", "detail": {"name": "new-checkout-flow", "short_id": "checkout-v2", "changes": [
                {"field": "active", "before": False, "after": True},
                {"field": "rollout_percentage", "before": 0, "after": 50}]},
            "user": {"id": 42, "uuid": "user-uuid-here", "email": "jane@example.com", "first_name": "Jane",
                     "last_name": "Doe"},
            "created_at": "2024-01-15T10:30:00.000000Z", "is_system": False})
    document = json.loads(example)
    (landing / "example.json").write_text(example)  # pretty-printed, as in the docs
    settings = ValidationSettings(default_team_id=1)

    report = ingest(lake, str(landing), settings)

    assert (report.accepted, report.quarantined) == (1, 0)
    row = lake.scan(ACTIVITY_RAW).collect().row(0, named=True)
    assert row["id"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert (row["scope"], row["activity"], row["item_id"]) == ("FeatureFlag", "updated", "12345")
    assert row["created_at"].isoformat() == "2024-01-15T10:30:00+00:00"
    assert row["day"] == date(2024, 1, 15)
    assert (row["team_id"], row["level"]) == (1, "project")
    assert json.loads(row["payload"]) == document


def test_duplicates_within_a_file_across_files_and_across_runs(landing, lake, settings):
    a, b, c = make_event(), make_event(), make_event()
    write_lines(landing / "1.jsonl", [a, b, a])
    write_lines(landing / "2.jsonl", [b, c])

    first = ingest(lake, str(landing), settings)
    assert (first.lines, first.accepted, first.duplicates) == (5, 3, 2)

    write_lines(landing / "3.jsonl", [c, a, make_event()])
    second = ingest(lake, str(landing), settings)
    assert (second.lines, second.accepted, second.duplicates, second.files_skipped) == (3, 1, 2, 2)
    assert len(raw_ids(lake)) == 4
    ledger = lake.scan(INGEST_LEDGER).collect().sort("source")
    assert ledger.select("lines", "accepted", "duplicates").rows() == [(3, 2, 1), (2, 1, 1), (3, 1, 2)]


def test_running_the_same_ingest_twice_changes_nothing(landing, lake, settings):
    write_lines(landing / "1.jsonl", [make_event(), "not json"])
    ingest(lake, str(landing), settings)
    versions = {t: lake.version(t) for t in (ACTIVITY_RAW, ACTIVITY_QUARANTINE, INGEST_LEDGER)}

    again = ingest(lake, str(landing), settings)

    assert (again.files_skipped, again.lines, again.accepted) == (1, 0, 0)
    assert {t: lake.version(t) for t in versions} == versions


def test_same_events_under_new_file_names_are_all_duplicates(landing, lake, settings):
    write_lines(landing / "1.jsonl", [make_event() for _ in range(5)])
    ingest(lake, str(landing), settings)
    raw_version = lake.version(ACTIVITY_RAW)
    (landing / "1-copy.jsonl").write_bytes((landing / "1.jsonl").read_bytes())

    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.accepted, report.duplicates) == (5, 0, 5)
    assert lake.version(ACTIVITY_RAW) == raw_version  # nothing written


def test_late_events_land_in_their_own_days(landing, lake, settings):
    write_lines(landing / "day-10.jsonl", [make_event(created_at="2024-01-10T09:00:00Z")])
    ingest(lake, str(landing), settings)
    late = [make_event(created_at=f"2024-01-{d}T23:59:59.999999+00:00") for d in ("03", "07", "08")]
    late.append(make_event(created_at="2024-01-11T01:00:00+02:00"))  # 2024-01-10 in UTC
    write_lines(landing / "day-11.jsonl", late)

    report = ingest(lake, str(landing), settings)

    assert sorted(report.days_changed) == [date(2024, 1, 3), date(2024, 1, 7), date(2024, 1, 8), date(2024, 1, 10)]
    assert report.events_per_day[date(2024, 1, 10)] == 1
    assert lake.days(ACTIVITY_RAW) == [date(2024, 1, 3), date(2024, 1, 7), date(2024, 1, 8), date(2024, 1, 10)]


def test_touched_file_is_skipped_and_changed_file_is_reported_not_reread(landing, lake, settings):
    path = write_lines(landing / "1.jsonl", [make_event()])
    ingest(lake, str(landing), settings)

    os.utime(path, (1_700_000_000, 1_700_000_000))  # same bytes, new time
    touched = ingest(lake, str(landing), settings)
    assert (touched.files_skipped, touched.files_changed, touched.lines) == (1, [], 0)

    write_lines(path, [make_event(), make_event()])  # rewritten after ingest
    changed = ingest(lake, str(landing), settings)
    assert changed.files_changed == [str(path)]
    assert (changed.lines, changed.accepted) == (0, 0)
    assert len(raw_ids(lake)) == 1


def test_retry_after_a_crash_between_data_and_ledger_is_idempotent(landing, lake, settings, monkeypatch):
    """A run that wrote activity_raw and quarantine but died before its ledger row."""
    events = [make_event() for _ in range(3)]
    write_lines(landing / "1.jsonl", events + ["broken {"])
    with appends_fail(monkeypatch, INGEST_LEDGER), pytest.raises(RuntimeError, match="simulated crash"):
        ingest(lake, str(landing), settings)

    retry = ingest(lake, str(landing), settings)

    # The stored events are this file's own lines from the interrupted read: accepted (recovered), not
    # duplicates, and their days changed (the retry's refresh and digests cover them).
    assert (retry.lines, retry.accepted, retry.duplicates, retry.quarantined) == (4, 3, 0, 1)
    assert retry.recovered == 3 and retry.days_changed
    assert len(raw_ids(lake)) == 3
    assert lake.scan(ACTIVITY_QUARANTINE).collect().height == 1  # not recorded twice
    assert lake.scan(INGEST_LEDGER).collect().height == 1


def test_batches_flush_separately_and_still_dedupe(landing, lake, settings):
    shared = make_event(created_at="2024-01-05T00:00:00Z")
    for n in range(4):
        write_lines(landing / f"{n}.jsonl", [shared] + [make_event(created_at="2024-01-05T01:00:00Z") for _ in range(10)])

    report = ingest(lake, str(landing), settings, batch_bytes=1)  # flush after every file

    assert (report.lines, report.accepted, report.duplicates) == (44, 41, 3)
    assert lake.version(ACTIVITY_RAW) == 3  # four appends: versions 0..3
    assert len(set(raw_ids(lake))) == 41


def test_progress_is_reported_per_file(landing, lake, settings):
    for n in range(3):
        write_lines(landing / f"{n}.jsonl", [make_event()])
    messages: list[str] = []

    ingest(lake, str(landing), settings, progress=messages.append)

    assert [m for m in messages if re.match(r"\[\d/3\] read", m)] == [
        "[1/3] read 0.jsonl: 1 lines", "[2/3] read 1.jsonl: 1 lines", "[3/3] read 2.jsonl: 1 lines"]


def test_missing_landing_directory_is_a_clear_error(lake, settings, tmp_path):
    from transforms.landing import LandingError
    import pytest

    with pytest.raises(LandingError, match="does not exist"):
        ingest(lake, str(tmp_path / "nope"), settings)


def test_raw_schema_uses_utc_timestamps_and_date_partitions(landing, lake, settings):
    write_lines(landing / "1.jsonl", [make_event()])
    ingest(lake, str(landing), settings)
    schema = lake.scan(ACTIVITY_RAW).collect_schema()
    assert schema["created_at"] == pl.Datetime("us", "UTC")
    assert schema["day"] == pl.Date
    assert lake.table(ACTIVITY_RAW).metadata().partition_columns == ["day"]


def test_byte_identical_copy_is_counted_as_duplicates_without_parsing(landing, lake, settings, monkeypatch):
    write_lines(landing / "1.jsonl", [make_event() for _ in range(4)])
    ingest(lake, str(landing), settings)
    (landing / "renamed.jsonl").write_bytes((landing / "1.jsonl").read_bytes())
    import transforms.ingest as ingest_module

    def must_not_parse(*args, **kwargs):
        raise AssertionError("a byte-identical copy of a clean file is not parsed again")

    monkeypatch.setattr(ingest_module, "parse_keys", must_not_parse)
    report = ingest(lake, str(landing), settings)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (4, 0, 4, 0)
    ledger = lake.scan(INGEST_LEDGER).collect().filter(pl.col("source").str.ends_with("renamed.jsonl"))
    assert ledger.select("lines", "duplicates").row(0) == (4, 4)


def test_copy_of_a_file_with_rejected_lines_is_validated_again(landing, lake, settings):
    """Settings may have changed since: a copy of a file with rejects is not short-cut."""
    levelless = make_event()
    del levelless["team_id"], levelless["organization_id"]
    write_lines(landing / "1.jsonl", [make_event(), levelless])
    first = ingest(lake, str(landing), settings)
    assert (first.accepted, first.quarantined) == (1, 1)
    (landing / "again.jsonl").write_bytes((landing / "1.jsonl").read_bytes())

    with_default = ValidationSettings(start_date=settings.start_date, default_team_id=3, now=settings.now)
    report = ingest(lake, str(landing), with_default)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (2, 1, 1, 0)


def test_refreshing_a_day_without_raw_rows_empties_it(landing, lake, settings):
    from transforms.lake import ACTIVITY_EVENTS, ACTIVITY_LOG
    from transforms.refresh import refresh_changes, refresh_events, refresh_log

    build_lake(lake, landing, [make_event(created_at="2024-01-05T00:00:00Z"),
                               make_event(created_at="2024-01-06T00:00:00Z")], name="1.jsonl", settings=settings)
    lake.table(ACTIVITY_RAW).delete("day = '2024-01-05'")  # e.g. removed by retention

    stats = refresh_events(lake, [date(2024, 1, 5)])
    refresh_changes(lake, [date(2024, 1, 5)])
    refresh_log(lake, [date(2024, 1, 5)])

    assert stats.select("raw_rows", "events").row(0) == (0, 0)
    assert lake.days(ACTIVITY_EVENTS) == [date(2024, 1, 6)]
    assert lake.days(ACTIVITY_LOG) == [date(2024, 1, 6)]
