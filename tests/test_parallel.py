"""Parallel partitions: refreshing the days in four processes at once builds exactly the lake that one
sequential refresh builds (every derived table compared row by row)."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from transforms.ingest import ingest
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.sample import write_bench_landing
from transforms.validate import ValidationSettings

REFRESH = (
    "import json, sys; from datetime import date; from transforms.lake import Lake; "
    "from transforms.refresh import refresh_all; "
    "refresh_all(Lake.at(sys.argv[1]), [date.fromisoformat(d) for d in json.loads(sys.argv[2])])"
)
TABLES = {ACTIVITY_EVENTS: ["id"], ACTIVITY_CHANGES: ["id", "change_index"], ACTIVITY_LOG: ["id"],
          "activity_item_history": ["id"]}


def refresh(lake: Lake, days: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", REFRESH, lake.root, json.dumps(days)], stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_parallel_refresh_builds_the_same_lake_as_a_sequential_one(tmp_path):
    write_bench_landing(tmp_path / "landing", events=20_000, days=16, files=2, seed=3)
    sequential, parallel = Lake.at(tmp_path / "sequential"), Lake.at(tmp_path / "parallel")
    for lake in (sequential, parallel):
        ingest(lake, str(tmp_path / "landing"), ValidationSettings(start_date=date(2020, 1, 1)))
    raw = [lake.scan(ACTIVITY_RAW).select("id", "payload").collect().sort("id") for lake in (sequential, parallel)]
    assert raw[0].equals(raw[1])
    days = [d.isoformat() for d in sequential.days(ACTIVITY_RAW)]
    one = refresh(sequential, days)
    assert one.wait() == 0, one.stderr.read()
    workers = [refresh(parallel, days[i::4]) for i in range(4)]  # four processes, interleaved days
    for worker in workers:
        assert worker.wait() == 0, worker.stderr.read()
    for table, keys in TABLES.items():
        a = sequential.scan(table).collect().sort(keys)
        b = parallel.scan(table).collect().sort(keys)
        drop = [c for c in ("ingested_at",) if c in a.columns]  # the two lakes were ingested at different times
        assert a.height == b.height > 0, table
        assert a.drop(drop).equals(b.drop(drop)), table
    from transforms.integrity import digests, update_digests

    hashes = []
    for lake in (sequential, parallel):
        update_digests(lake, lake.days(ACTIVITY_RAW))
        hashes.append(digests(lake).sort("day").select("day", "day_hash", "events", "digest"))
    assert hashes[0].equals(hashes[1])
