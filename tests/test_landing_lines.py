"""Bounded landing input, lines: a line or a JSON document over the length limit is quarantined with a
bounded prefix, and lines that are not UTF-8 keep their exact bytes. Real files, the real ingest."""

import json
from datetime import timedelta
from pathlib import Path

import polars as pl

from tests.helpers.events import make_event, write_lines
from tests.helpers.landing import NOW, balanced, quarantine, raw
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_QUARANTINE
from transforms.landing import LandingLimits


# ------------------------------------------------------------------------------------------------
# Long lines


def test_line_over_the_length_limit_is_quarantined_with_a_bounded_prefix(landing, lake, settings):
    long_event = make_event(padding="x" * 5000)
    long_line = json.dumps(long_event)
    write_lines(landing / "a.jsonl", [make_event(), long_line, "", make_event()])
    limits = LandingLimits(max_line_bytes=1024, quiet_period=timedelta(0))

    report = ingest(lake, str(landing), settings, limits=limits)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (3, 2, 0, 1)
    assert balanced(report) and quarantine(lake).height == 1
    row = quarantine(lake).row(0, named=True)
    assert row["line"] == 2
    assert row["quarantine_reason"] == (
        f"line is longer than ACTIVITYLOG_MAX_LINE_BYTES (1 KiB): {len(long_line)} bytes; "
        "raw_text keeps its first 1,024 characters")
    assert row["raw_text"] == long_line[:1024]
    assert row["raw_bytes"] is None
    assert dict(report.quarantine_reasons) == {"line is longer than ACTIVITYLOG_MAX_LINE_BYTES (1 KiB)": 1}
    assert raw(lake)["line"].to_list() == [1, 4]


def test_long_line_in_a_file_with_invalid_utf8_and_a_long_json_element(landing, lake, settings):
    long_line = json.dumps(make_event(padding="y" * 3000)).encode()
    (landing / "mixed.jsonl").write_bytes(json.dumps(make_event()).encode() + b"\n" + b'{"x": "\xff"}\n' + long_line + b"\n")
    long_element = make_event(padding="z" * 3000)
    (landing / "page.json").write_text(json.dumps({"results": [make_event(), long_element]}))
    limits = LandingLimits(max_line_bytes=2000, quiet_period=timedelta(0))

    report = ingest(lake, str(landing), settings, limits=limits)

    assert (report.lines, report.accepted, report.quarantined) == (5, 2, 3) and balanced(report)
    reasons = quarantine(lake).select("source", "line", "quarantine_reason").rows()
    too_long = "line is longer than ACTIVITYLOG_MAX_LINE_BYTES (2,000 bytes): {} bytes; raw_text keeps its first 2,000 characters"
    element = json.dumps(long_element)  # the element's own text in the document
    assert [(Path(s).name, n, r) for s, n, r in reasons] == [
        ("mixed.jsonl", 2, "line is not valid UTF-8 (byte 8)"),
        ("mixed.jsonl", 3, too_long.format(len(long_line))),
        ("page.json", 2, too_long.format(len(element.encode()))),
    ]


def test_a_broken_json_document_over_the_line_limit_keeps_only_its_beginning(landing, lake, settings):
    text = json.dumps([make_event() for _ in range(20)])[:-1] + ", oops]"
    (landing / "export.json").write_text(text)
    limits = LandingLimits(max_line_bytes=1000, quiet_period=timedelta(0))

    report = ingest(lake, str(landing), settings, limits=limits)

    assert (report.lines, report.accepted, report.quarantined) == (1, 0, 1) and balanced(report)
    row = quarantine(lake).row(0, named=True)
    assert quarantine(lake).height == 1
    assert row["raw_text"] == text[:1000]
    assert row["quarantine_reason"].startswith("invalid JSON document at line 1 column ")
    assert row["quarantine_reason"].endswith(" (raw_text keeps the first 1,000 characters of the document)")
    assert dict(report.quarantine_reasons) == {"invalid JSON document": 1}


# ------------------------------------------------------------------------------------------------
# Exact bytes of lines that are not UTF-8


def test_invalid_utf8_lines_keep_their_exact_bytes(landing, lake, settings):
    bad_lines = [b'{"id": "\xff\xfe", "note": "caf\xe9"}', b"\x80\x81 latin-1 \xe9t\xe9\r", b"\xef\xbb\xbf\xc3"]
    good = json.dumps(make_event()).encode()
    (landing / "bytes.jsonl").write_bytes(b"\n".join([good, *bad_lines, good]) + b"\n")  # the last: a duplicate

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (5, 1, 1, 3)
    assert balanced(report)
    rows = quarantine(lake)
    assert rows["line"].to_list() == [2, 3, 4]
    assert rows["raw_bytes"].to_list() == [bad_lines[0], bad_lines[1].rstrip(b"\r"), bad_lines[2]]
    assert rows["raw_text"].to_list() == [b.rstrip(b"\r").decode("utf-8", errors="replace") for b in bad_lines]
    assert rows["quarantine_reason"].to_list() == [
        "line is not valid UTF-8 (byte 9)", "line is not valid UTF-8 (byte 1)", "line is not valid UTF-8 (byte 4)"]
    # Read back from the Delta files, byte for byte, by a reader of its own.
    from deltalake import DeltaTable

    stored = pl.from_arrow(DeltaTable(lake.uri(ACTIVITY_QUARANTINE)).to_pyarrow_table()).sort("line")
    assert stored["raw_bytes"].to_list() == rows["raw_bytes"].to_list()
    write_lines(landing / "valid.jsonl", ["not json"])
    ingest(lake, str(landing), settings, limits=NOW)
    assert quarantine(lake).filter(pl.col("source").str.ends_with("valid.jsonl"))["raw_bytes"].to_list() == [None]
