"""Landing files still being written and files that grow: read to their last complete line, then their tail;
a last line without newline once the file is quiet; appended lines with line numbers continuing; a file
whose earlier bytes changed reported, not reread; a crash before the ledger row retried; ledgers and
quarantines written before these columns. Real files, the real ingest."""

import gzip
import json
import time
from datetime import timedelta

import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.faults import appends_fail
from tests.helpers.landing import HOUR, NOW, age, balanced, ledger, ndjson, quarantine, raw
from transforms.ingest import LEDGER_SCHEMA, QUARANTINE_SCHEMA, ingest, pending_files
from transforms.lake import ACTIVITY_QUARANTINE, INGEST_LEDGER
from transforms.landing import LandingLimits, read_file, scan_landing


# ------------------------------------------------------------------------------------------------
# Files still being written


def test_a_file_being_written_is_read_to_its_last_complete_line_and_then_its_tail(landing, lake, settings):
    events = [make_event() for _ in range(6)]
    path = landing / "export.jsonl"
    whole = ndjson(events)
    three = len(ndjson(events[:3]))
    path.write_bytes(whole[: three + 20])  # three whole lines and part of the fourth

    first = ingest(lake, str(landing), settings, limits=HOUR)

    assert (first.lines, first.accepted) == (3, 3) and balanced(first)
    assert first.files_waiting == [str(path)]
    entry = ledger(lake).row(0, named=True)
    assert (entry["start_offset"], entry["consumed_bytes"], entry["consumed_lines"]) == (0, three, 3)
    assert [f.uri for f in pending_files(lake, str(landing))] == [str(path)]  # its end is still to come
    again = ingest(lake, str(landing), settings, limits=HOUR)  # nothing new is complete
    assert (again.lines, again.files_waiting, again.files_changed) == (0, [str(path)], [])

    path.write_bytes(whole)  # the writer finishes
    second = ingest(lake, str(landing), settings, limits=HOUR)

    assert (second.lines, second.accepted, second.files_changed, second.files_waiting) == (3, 3, [], [])
    assert raw(lake)["id"].to_list() == [e["id"] for e in events]
    assert raw(lake)["line"].to_list() == [1, 2, 3, 4, 5, 6]
    assert ledger(lake).select("start_offset", "consumed_lines", "lines").rows() == [(0, 3, 3), (entry["consumed_bytes"], 6, 3)]
    assert ledger(lake)["consumed_bytes"].to_list()[-1] == len(whole)


def test_a_last_line_without_newline_is_consumed_once_the_file_is_quiet(landing, lake, settings):
    path = landing / "a.jsonl"
    first_event, last_event = make_event(), make_event()
    path.write_bytes(ndjson([first_event]) + json.dumps(last_event).encode())

    fresh = ingest(lake, str(landing), settings, limits=HOUR)
    assert (fresh.lines, fresh.files_waiting) == (1, [str(path)])

    age(path)
    assert [f.uri for f in pending_files(lake, str(landing))] == [str(path)]
    quiet = ingest(lake, str(landing), settings, limits=HOUR)
    assert (quiet.lines, quiet.accepted, quiet.files_waiting) == (1, 1, [])
    assert raw(lake)["id"].to_list() == [first_event["id"], last_event["id"]]
    assert ledger(lake)["consumed_bytes"].to_list()[-1] == path.stat().st_size
    assert ingest(lake, str(landing), settings, limits=HOUR).files_skipped == 1


def test_a_run_waits_for_an_end_that_is_about_to_become_quiet(landing, lake, settings):
    path = landing / "a.jsonl"
    events = [make_event(), make_event()]
    path.write_bytes(ndjson(events).rstrip(b"\n"))
    messages: list[str] = []
    started = time.monotonic()

    report = ingest(lake, str(landing), settings, limits=LandingLimits(quiet_period=timedelta(seconds=1)),
                    progress=messages.append)

    assert 0.5 < time.monotonic() - started < 10
    assert (report.lines, report.accepted, report.files_waiting) == (2, 2, [])
    assert len(report.files_ingested) == 1
    assert any(m.startswith("waiting ") and "for 1 file(s) still being written" in m for m in messages)
    assert ledger(lake).select("consumed_lines", "lines").rows() == [(1, 1), (2, 1)]
    assert ledger(lake)["consumed_bytes"].to_list()[-1] == path.stat().st_size


def test_a_partial_line_is_held_back_while_the_file_changes_under_the_reader(landing):
    path = landing / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    file = scan_landing(str(landing)).files[0]

    quiet = read_file(file, NOW, stable=True)
    held = read_file(file, NOW, stable=False)

    assert (quiet.data, quiet.consumed, quiet.held_back) == (path.read_bytes(), file.size, None)
    assert (held.data, held.consumed, held.held_back) == (b'{"a": 1}\n{"b": 2}\n', 18, "its last line has no newline yet")
    assert held.digest == __import__("hashlib").sha256(path.read_bytes()[:18]).hexdigest()
    with path.open("ab") as out:  # grows after it was listed: still read as listed, end held back
        out.write(b': 3}\n')
    grown = read_file(file, NOW, stable=True)
    assert (grown.consumed, grown.held_back) == (18, "its last line has no newline yet")


def test_an_incomplete_json_document_waits_and_a_broken_one_does_not(landing, lake, settings):
    events = [make_event(), make_event()]
    text = json.dumps({"results": events, "next": None})
    (landing / "page.json").write_text(text[: len(text) - 30])
    (landing / "broken.json").write_text('[{"id": "a"}, oops]')

    first = ingest(lake, str(landing), settings, limits=HOUR)

    assert first.files_waiting == [str(landing / "page.json")]
    assert (first.lines, first.quarantined) == (1, 1) and balanced(first)
    assert quarantine(lake)["quarantine_reason"].item().startswith("invalid JSON document at line 1 column 15")

    (landing / "page.json").write_text(text)
    second = ingest(lake, str(landing), settings, limits=HOUR)
    assert (second.lines, second.accepted, second.files_waiting) == (2, 2, [])


# ------------------------------------------------------------------------------------------------
# Growing files


def test_appended_lines_are_ingested_with_line_numbers_continuing(landing, lake, settings):
    path = write_lines(landing / "log.jsonl", [make_event(), make_event()])
    ingest(lake, str(landing), settings, limits=NOW)
    with path.open("a") as out:
        out.write("\n" + json.dumps(make_event()) + "\nnot json\n" + json.dumps(make_event()) + "\n")
    messages: list[str] = []

    report = ingest(lake, str(landing), settings, limits=NOW, progress=messages.append)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (3, 2, 0, 1)
    assert balanced(report) and report.files_changed == []
    assert raw(lake)["line"].to_list() == [1, 2, 4, 6]
    assert quarantine(lake).height == 1
    row = quarantine(lake).row(0, named=True)
    assert (row["line"], row["raw_text"], row["quarantine_reason"]) == (5, "not json", "invalid JSON at column 1: Expecting value")
    rows = ledger(lake)
    assert rows.select("start_offset", "consumed_lines", "lines", "accepted", "quarantined").rows()[1] == (
        rows["consumed_bytes"][0], 6, 3, 2, 1)
    assert rows["consumed_bytes"][1] == path.stat().st_size
    assert "[1/1] read log.jsonl: 3 lines appended after line 2" in messages
    assert ingest(lake, str(landing), settings, limits=NOW).files_skipped == 1


def test_a_grown_file_whose_earlier_bytes_changed_is_reported_not_reread(landing, lake, settings):
    path = write_lines(landing / "log.jsonl", [make_event(), make_event()])
    ingest(lake, str(landing), settings, limits=NOW)
    write_lines(path, [make_event(), make_event(), make_event()])  # rewritten and longer

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert report.files_changed == [str(path)]
    assert (report.lines, report.accepted) == (0, 0)
    assert raw(lake).height == 2 and ledger(lake).height == 1


def test_gzip_files_do_not_grow(landing, lake, settings):
    path = landing / "log.jsonl.gz"
    path.write_bytes(gzip.compress(ndjson([make_event()])))
    ingest(lake, str(landing), settings, limits=NOW)
    with path.open("ab") as out:
        out.write(gzip.compress(ndjson([make_event()])))  # another member appended

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert (report.files_changed, report.lines) == ([str(path)], 0)


def test_retry_of_a_tail_after_a_crash_before_its_ledger_row(landing, lake, settings, monkeypatch):
    path = write_lines(landing / "log.jsonl", [make_event()])
    ingest(lake, str(landing), settings, limits=NOW)
    with path.open("a") as out:
        out.write(json.dumps(make_event()) + "\nbroken {\n")
    with appends_fail(monkeypatch, INGEST_LEDGER), pytest.raises(RuntimeError, match="simulated crash"):
        ingest(lake, str(landing), settings, limits=NOW)

    retry = ingest(lake, str(landing), settings, limits=NOW)

    # The tail's event was stored by the killed run from this very line: accepted (recovered), not a duplicate.
    assert (retry.lines, retry.accepted, retry.duplicates, retry.quarantined) == (2, 1, 0, 1)
    assert retry.recovered == 1
    assert raw(lake).height == 2
    assert quarantine(lake).select("line").rows() == [(3,)]
    assert ledger(lake).height == 2


def test_a_ledger_and_quarantine_written_before_these_columns_keep_working(landing, lake, settings):
    """Tables as the previous version wrote them (no consumed_* columns, no raw_bytes): read as
    whole-file rows, and given the new columns by schema evolution on the next append."""
    path = write_lines(landing / "log.jsonl", [make_event(), "not json"])
    ingest(lake, str(landing), settings, limits=NOW)
    old_ledger = ledger(lake).drop("start_offset", "consumed_bytes", "consumed_lines")
    old_quarantine = quarantine(lake).drop("raw_bytes")
    for name, frame in [(INGEST_LEDGER, old_ledger), (ACTIVITY_QUARANTINE, old_quarantine)]:
        frame.write_delta(lake.uri(name), mode="overwrite", delta_write_options={"schema_mode": "overwrite"})
    assert "consumed_bytes" not in lake.scan(INGEST_LEDGER).collect_schema()
    assert "raw_bytes" not in lake.scan(ACTIVITY_QUARANTINE).collect_schema()
    assert ingest(lake, str(landing), settings, limits=NOW).files_skipped == 1  # old rows: whole file

    with path.open("ab") as out:
        out.write(json.dumps(make_event()).encode() + b"\n" + b'{"bad": "\xc3\x28"}\n')
    report = ingest(lake, str(landing), settings, limits=NOW)

    assert (report.lines, report.accepted, report.quarantined) == (2, 1, 1) and balanced(report)
    assert list(lake.scan(INGEST_LEDGER).collect_schema()) == list(LEDGER_SCHEMA)
    assert list(lake.scan(ACTIVITY_QUARANTINE).collect_schema()) == list(QUARANTINE_SCHEMA)
    rows = quarantine(lake)
    assert rows.select("line", "raw_bytes").rows() == [(2, None), (4, b'{"bad": "\xc3\x28"}')]
    assert ledger(lake).select("start_offset", "consumed_lines").rows() == [(None, None), (old_ledger["size"][0], 4)]
    third = ingest(lake, str(landing), settings, limits=NOW)
    assert third.files_skipped == 1 and third.lines == 0
