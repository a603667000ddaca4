"""Bounded landing input, gzip: streamed and capped (inflated size, inflate ratio), multi-member files read
whole, truncated or corrupt files quarantined, not fatal, and a real 5 GB bomb refused in bounded memory
and seconds. Real files, the real ingest."""

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ROOT
from tests.helpers.events import make_event, write_lines
from tests.helpers.landing import HOUR, NOW, age, balanced, ledger, ndjson, quarantine, raw
from transforms.ingest import ingest
from transforms.lake import INGEST_LEDGER
from transforms.landing import LandingLimits


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
