"""Bounded, safe landing input: gzip caps, long lines, symbolic links, files still being written,
growing files, and the exact bytes of lines that are not UTF-8. Real files, the real ingest."""

import gzip
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ROOT
from tests.helpers.events import make_event, write_lines
from transforms.ingest import LEDGER_SCHEMA, QUARANTINE_SCHEMA, ingest, pending_files
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, INGEST_LEDGER, Lake
from transforms.landing import LandingLimits, LandingSettingsError, read_file, scan_landing

NOW = LandingLimits(quiet_period=timedelta(0))  # every file counts as complete
HOUR = LandingLimits(quiet_period=timedelta(hours=1))  # a file modified just now is still being written


def balanced(report) -> bool:
    return report.accepted + report.duplicates + report.quarantined == report.lines


def quarantine(lake: Lake) -> pl.DataFrame:
    frame = lake.scan(ACTIVITY_QUARANTINE)
    return pl.DataFrame(schema=QUARANTINE_SCHEMA) if frame is None else frame.collect().sort("source", "line")


def ledger(lake: Lake) -> pl.DataFrame:
    return lake.scan(INGEST_LEDGER).collect().sort("ingested_at", "consumed_bytes")


def raw(lake: Lake) -> pl.DataFrame:
    return lake.scan(ACTIVITY_RAW).collect().sort("source", "line")


def age(path: Path, seconds: float = 7200) -> None:
    """Make a file look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def ndjson(events) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def zeros_bomb(path: Path, mib: int) -> Path:
    """A valid single-member gzip of ``mib`` MiB of zeros (about 1 KB per MiB), written without
    compressing them all: full-flush blocks of zeros are identical, so one is repeated."""
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first)
        for _ in range(mib - 1):
            out.write(again)
        out.write(compressor.flush(zlib.Z_FINISH) + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF))
    return path


# ------------------------------------------------------------------------------------------------
# gzip: streamed, capped


def test_gzip_over_the_inflated_cap_is_one_quarantine_row_and_the_rest_is_kept(landing, lake, settings):
    events = [make_event() for _ in range(3)]
    big = ndjson(events) + b" " * (3 << 20)  # 3 MiB of lines, blank padding compresses well
    (landing / "big.jsonl.gz").write_bytes(gzip.compress(big))
    write_lines(landing / "good.jsonl", [make_event(), make_event()])
    limits = LandingLimits(max_inflated_bytes=2 << 20, max_inflate_ratio=1e9, quiet_period=timedelta(0))

    report = ingest(lake, str(landing), settings, limits=limits)

    reason = "gzip file inflates to more than 2 MiB (ACTIVITYLOG_MAX_INFLATED_BYTES): not read"
    assert (report.lines, report.accepted, report.duplicates, report.quarantined) == (3, 2, 0, 1)
    assert balanced(report)
    rows = quarantine(lake)
    assert rows.select("source", "line", "quarantine_reason", "raw_text").rows() == [
        (str(landing / "big.jsonl.gz"), 0, reason, "")]
    assert dict(report.quarantine_reasons) == {reason: 1}
    entry = ledger(lake).filter(pl.col("source").str.ends_with("big.jsonl.gz")).row(0, named=True)
    assert (entry["lines"], entry["quarantined"]) == (1, 1)
    assert entry["source_sha256"] == __import__("hashlib").sha256((landing / "big.jsonl.gz").read_bytes()).hexdigest()
    # Recorded: the next run skips it; touched, it is recognised by its digest and skipped again.
    assert ingest(lake, str(landing), settings, limits=limits).files_skipped == 2
    age(landing / "big.jsonl.gz", 60)
    touched = ingest(lake, str(landing), settings, limits=limits)
    assert (touched.files_skipped, touched.files_changed, touched.lines) == (2, [], 0)


def test_gzip_over_the_inflate_ratio_is_refused_early(landing, lake, settings):
    zeros_bomb(landing / "bomb.jsonl.gz", 64)  # 64 MiB from ~66 KB: about 1000×
    write_lines(landing / "good.jsonl", [make_event()])

    report = ingest(lake, str(landing), settings, limits=NOW)

    reason = "gzip file inflates more than 200× its compressed size (ACTIVITYLOG_MAX_INFLATE_RATIO): not read"
    assert (report.lines, report.accepted, report.quarantined) == (2, 1, 1)
    assert balanced(report)
    assert quarantine(lake).select("line", "quarantine_reason").rows() == [(0, reason)]
    assert ledger(lake).height == 2


def test_multi_member_gzip_is_read_whole(landing, lake, settings):
    events = [make_event() for _ in range(4)]
    (landing / "members.jsonl.gz").write_bytes(gzip.compress(ndjson(events[:2])) + gzip.compress(ndjson(events[2:])))

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert (report.lines, report.accepted, report.quarantined) == (4, 4, 0)
    assert sorted(raw(lake)["id"]) == sorted(e["id"] for e in events)
    assert raw(lake)["line"].to_list() == [1, 2, 3, 4]


def test_truncated_gzip_waits_while_fresh_then_is_quarantined(landing, lake, settings):
    whole = gzip.compress(ndjson([make_event() for _ in range(50)]))
    path = landing / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])

    fresh = ingest(lake, str(landing), settings, limits=HOUR)  # may still be being written
    assert fresh.files_waiting == [str(path)]
    assert (fresh.lines, len(fresh.files_ingested)) == (0, 0)
    assert not lake.exists(INGEST_LEDGER)

    age(path)
    report = ingest(lake, str(landing), settings, limits=HOUR)
    assert (report.lines, report.quarantined) == (1, 1) and balanced(report)
    reason = quarantine(lake)["quarantine_reason"].item()
    assert reason == f"{path} is not a valid gzip file: Compressed file ended before the end-of-stream marker was reached"


def test_gzip_with_corrupt_deflate_data_is_quarantined_not_fatal(landing, lake, settings):
    data = bytearray(gzip.compress(ndjson([make_event() for _ in range(20)])))
    data[20:40] = b"\xff" * 20  # inside the deflate stream
    (landing / "corrupt.jsonl.gz").write_bytes(bytes(data))
    write_lines(landing / "good.jsonl", [make_event()])

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert (report.lines, report.accepted, report.quarantined) == (2, 1, 1) and balanced(report)
    assert "is not a valid gzip file: " in quarantine(lake)["quarantine_reason"].item()


@pytest.mark.slow
@pytest.mark.parametrize("ratio, reason", [
    (None, "gzip file inflates more than 200× its compressed size (ACTIVITYLOG_MAX_INFLATE_RATIO): not read"),
    ("1000000", "gzip file inflates to more than 4 GiB (ACTIVITYLOG_MAX_INFLATED_BYTES): not read"),
], ids=["ratio-cap", "size-cap"])
def test_a_5_gb_gzip_bomb_is_refused_in_bounded_memory_and_seconds(tmp_path, ratio, reason):
    """A real bomb (5 GB of zeros in 5 MB) through the real ingest in a fresh process, with the
    default caps and with the ratio cap out of the way: peak RSS and time, measured by that process."""
    landing = tmp_path / "landing"
    landing.mkdir()
    bomb = zeros_bomb(landing / "bomb.jsonl.gz", 5000)
    write_lines(landing / "good.jsonl", [make_event(created_at="2024-01-15T10:30:00Z")])
    script = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from datetime import date
from transforms.ingest import ingest
from transforms.lake import Lake
from transforms.validate import ValidationSettings
def high_water_kib():  # this process's own peak (ru_maxrss keeps the forking parent's peak across exec)
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1])
before = high_water_kib()
started = time.monotonic()
report = ingest(Lake.at({str(tmp_path / "lake")!r}), {str(landing)!r}, ValidationSettings(start_date=date(2020, 1, 1)))
print(json.dumps({{"seconds": time.monotonic() - started, "peak_rss_kib": high_water_kib(),
                  "rss_before_kib": before, "summary": report.summary()}}))
"""
    env = {**os.environ, "ACTIVITYLOG_LANDING_QUIET_PERIOD": "0"}
    env.pop("ACTIVITYLOG_MAX_INFLATE_RATIO", None)
    env.pop("ACTIVITYLOG_MAX_INFLATED_BYTES", None)
    if ratio:
        env["ACTIVITYLOG_MAX_INFLATE_RATIO"] = ratio
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"bomb {bomb.stat().st_size:,} bytes: ingest {measured['seconds']:.2f}s, peak RSS "
          f"{measured['peak_rss_kib'] / 1024:.0f} MiB (after imports {measured['rss_before_kib'] / 1024:.0f} MiB)")
    summary = measured["summary"]
    assert (summary["lines"], summary["accepted"], summary["quarantined"]) == (2, 1, 1)
    assert list(summary["quarantine_reasons"]) == [reason]
    assert measured["peak_rss_kib"] < 1024 * 1024  # under 1 GiB
    assert measured["seconds"] < 30


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
# Symbolic links, hidden and temporary names


def test_links_outside_the_landing_area_are_reported_not_read(landing, lake, settings, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_lines(outside / "secret.jsonl", ["password=hunter2", make_event()])
    (landing / "evil.jsonl").symlink_to(secret)
    (landing / "elsewhere").symlink_to(outside, target_is_directory=True)
    (landing / "loop").symlink_to("..", target_is_directory=True)  # the landing's parent: outside
    (landing / "dangling.jsonl").symlink_to(landing / "nothing-here.jsonl")
    write_lines(landing / "good.jsonl", [make_event()])
    messages: list[str] = []

    report = ingest(lake, str(landing), settings, limits=NOW, progress=messages.append)

    assert report.files_seen == 1
    assert (report.lines, report.accepted, report.quarantined) == (1, 1, 0)
    assert quarantine(lake).height == 0  # nothing of the outside file stored
    assert ledger(lake)["source"].to_list() == [str(landing / "good.jsonl")]
    assert sorted(report.warnings) == sorted([
        f"{landing / 'dangling.jsonl'} is a broken symbolic link: not read",
        f"{landing / 'elsewhere'} is a symbolic link to {outside}, outside the landing area: not read",
        f"{landing / 'evil.jsonl'} is a symbolic link to {secret}, outside the landing area: not read",
        f"{landing / 'loop'} is a symbolic link to {tmp_path}, outside the landing area: not read",
    ])
    assert sorted(m for m in messages if m.startswith("WARNING")) == sorted(f"WARNING {w}" for w in report.warnings)
    assert report.summary()["warnings"] == report.warnings


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(landing, tmp_path):
    from transforms.landing import LandingError

    secret = write_lines(tmp_path / "secret.jsonl", [make_event()])
    path = write_lines(landing / "a.jsonl", [make_event()])
    file = scan_landing(str(landing)).files[0]
    path.unlink()
    path.symlink_to(secret)

    with pytest.raises(LandingError, match=f"^cannot read {path}: "):
        read_file(file, NOW)


def test_links_inside_the_landing_area_never_read_a_file_twice(landing, lake, settings):
    events = [make_event() for _ in range(3)]
    write_lines(landing / "a.jsonl", events[:2])
    write_lines(landing / "sub" / "b.jsonl", events[2:])
    (landing / "sub" / "loop").symlink_to("..", target_is_directory=True)  # the landing root again
    (landing / "self").symlink_to(".", target_is_directory=True)
    (landing / "alias.jsonl").symlink_to(landing / "a.jsonl")
    os.link(landing / "a.jsonl", landing / "hard-link.jsonl")

    report = ingest(lake, str(landing), settings, limits=NOW)

    assert report.warnings == []
    assert report.files_seen == 2
    assert (report.lines, report.accepted, report.duplicates) == (3, 3, 0)
    assert sorted(ledger(lake)["source"]) == [str(landing / "a.jsonl"), str(landing / "sub" / "b.jsonl")]


def test_hidden_and_temporary_names_are_never_read_and_a_rename_is(landing, lake, settings):
    event = make_event()
    write_lines(landing / "export.jsonl.tmp", [event])
    write_lines(landing / "export.jsonl.part", [event])
    write_lines(landing / ".export.jsonl", [event])
    write_lines(landing / ".staging" / "export.jsonl", [event])

    first = ingest(lake, str(landing), settings, limits=HOUR)
    assert (first.files_seen, first.lines) == (0, 0)

    (landing / "export.jsonl.tmp").rename(landing / "export.jsonl")
    second = ingest(lake, str(landing), settings, limits=HOUR)
    assert (second.files_seen, second.lines, second.accepted) == (1, 1, 1)


@pytest.mark.slow
def test_the_cli_does_not_follow_a_link_out_of_the_landing_area(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_lines(tmp_path / "outside" / "secret.jsonl", [make_event()])
    write_lines(landing / "good.jsonl", [make_event()])
    (landing / "secret.jsonl").symlink_to(tmp_path / "outside" / "secret.jsonl")
    env = {**os.environ, "ACTIVITYLOG_LANDING": str(landing), "ACTIVITYLOG_LAKE": str(lake),
           "ACTIVITYLOG_LANDING_QUIET_PERIOD": "0", "ACTIVITYLOG_DEFAULT_TEAM_ID": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "activitylog"), "ingest"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "outside the landing area: not read" in done.stdout + done.stderr
    stored = Lake.at(lake)
    assert stored.scan(INGEST_LEDGER).collect()["source"].to_list() == [str(landing / "good.jsonl")]


def test_bad_landing_limits_are_usage_errors_naming_the_variable(tmp_path):
    env = {**os.environ, "ACTIVITYLOG_LANDING": str(tmp_path), "ACTIVITYLOG_LAKE": str(tmp_path / "lake"),
           "ACTIVITYLOG_MAX_INFLATE_RATIO": "lots"}
    done = subprocess.run([str(Path(sys.executable).parent / "activitylog"), "ingest"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert "ACTIVITYLOG_MAX_INFLATE_RATIO='lots' is not a ratio of at least 1, like 200" in done.stderr


def test_landing_limits_from_the_environment():
    assert LandingLimits.from_env({}) == LandingLimits()
    assert LandingLimits() == LandingLimits(4 << 30, 200.0, 16 << 20, timedelta(seconds=5))
    limits = LandingLimits.from_env({
        "ACTIVITYLOG_MAX_INFLATED_BYTES": "512MiB", "ACTIVITYLOG_MAX_INFLATE_RATIO": "50",
        "ACTIVITYLOG_MAX_LINE_BYTES": "1000000", "ACTIVITYLOG_LANDING_QUIET_PERIOD": "500ms"})
    assert limits == LandingLimits(512 << 20, 50.0, 1_000_000, timedelta(milliseconds=500))
    assert LandingLimits.from_env({"ACTIVITYLOG_LANDING_QUIET_PERIOD": "0"}).quiet_period == timedelta(0)
    for name, value, message in [
        ("ACTIVITYLOG_MAX_INFLATED_BYTES", "4 gigs", "is not a size like 16MiB, 4GiB or 1000000"),
        ("ACTIVITYLOG_MAX_LINE_BYTES", "0", "is not a size like 16MiB, 4GiB or 1000000"),
        ("ACTIVITYLOG_MAX_INFLATE_RATIO", "0.5", "is not a ratio of at least 1, like 200"),
        ("ACTIVITYLOG_LANDING_QUIET_PERIOD", "soon", "is not a duration like 5s, 500ms or 2m"),
    ]:
        with pytest.raises(LandingSettingsError, match=f"^{name}='{value}' {message}$"):
            LandingLimits.from_env({name: value})


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
    real_append = Lake.append

    def crash_on_ledger(self, name, frame, **kwargs):
        if name == INGEST_LEDGER:
            raise RuntimeError("simulated crash")
        return real_append(self, name, frame, **kwargs)

    monkeypatch.setattr(Lake, "append", crash_on_ledger)
    with pytest.raises(RuntimeError):
        ingest(lake, str(landing), settings, limits=NOW)
    monkeypatch.setattr(Lake, "append", real_append)

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
