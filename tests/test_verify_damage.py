"""`activitylog verify` on a damaged lake: every kind of damage is one named line and exit 1, never a
traceback or a Rust panic. The lake is built by the real ingest, damaged on disk, and checked by the
real command in a subprocess (its own process: a panic there could not hide behind pytest)."""

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.helpers.events import make_event, write_lines
from transforms.ingest import ingest
from transforms.integrity import ACTIVITY_DIGESTS, update_digests
from transforms.lake import ACTIVITY_RAW, Lake
from transforms.validate import ValidationSettings

pytestmark = pytest.mark.local_lake

DAYS = [date(2024, 1, 10), date(2024, 1, 11), date(2024, 1, 12)]
ACTIVITYLOG = Path(sys.executable).with_name("activitylog")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A lake of three ingest runs, one day each: three commits in activity_raw and activity_digests."""
    root = tmp_path_factory.mktemp("pristine")
    lake = Lake.at(root / "lake")
    for number, day in enumerate(DAYS):
        write_lines(root / "landing" / f"{number}.jsonl",
                    [make_event(id=f"{day.day}-{i}", created_at=f"{day.isoformat()}T1{i}:00:00Z") for i in range(3)])
        report = ingest(lake, str(root / "landing"), ValidationSettings(start_date=date(2020, 1, 1)))
        update_digests(lake, report.days_changed)
    return root / "lake"


@pytest.fixture
def lake_dir(pristine, tmp_path) -> Path:
    shutil.copytree(pristine, tmp_path / "lake")
    return tmp_path / "lake"


def run_verify(lake: Path) -> tuple[int, list[str], list[str]]:
    done = subprocess.run([str(ACTIVITYLOG), "verify", "--lake", str(lake)], capture_output=True, text=True,
                          env={**os.environ, "RUST_BACKTRACE": "1"}, timeout=120)
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream and "panicked" not in stream, stream
    return done.returncode, done.stdout.splitlines(), done.stderr.splitlines()


def data_file(lake: Path, table: str) -> Path:
    """activity_raw: the file of the middle day; activity_digests: the file of the middle commit."""
    if table == ACTIVITY_RAW:
        (path,) = (lake / table / f"day={DAYS[1].isoformat()}").glob("*.parquet")
        return path
    commit = [json.loads(line) for line in (lake / table / "_delta_log" / f"{1:020d}.json").read_text().splitlines()]
    (add,) = [action["add"] for action in commit if "add" in action]
    return lake / table / add["path"]


def commit(lake: Path, table: str, version: int) -> Path:
    return lake / table / "_delta_log" / f"{version:020d}.json"


def fix_size_in_log(lake: Path, table: str, path: Path) -> None:
    """What a careful attacker does after rewriting a file: record its new size in the log."""
    relative = str(path.relative_to(lake / table))
    for entry in (lake / table / "_delta_log").glob("*.json"):
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        for action in actions:
            if "add" in action and action["add"]["path"] == relative:
                action["add"]["size"] = path.stat().st_size
        entry.write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def checkpoint(lake: Path, table: str) -> Path:
    DeltaTable(str(lake / table)).create_checkpoint()
    (path,) = (lake / table / "_delta_log").glob("*.checkpoint.parquet")
    return path


# (name, damage, what the one line says after "TAMPERED <table>[ <day>]: ")
DAMAGE = {
    "truncated data file": (lambda lake, t: truncate(data_file(lake, t), 100),
                            "data file unreadable: part-", "has 100 bytes, its Delta log entry"),
    "truncated data file, size fixed in the log": (
        lambda lake, t: (truncate(data_file(lake, t), 1000), fix_size_in_log(lake, t, data_file(lake, t))),
        "data file unreadable: part-", "cannot be read ("),
    "data file deleted": (lambda lake, t: data_file(lake, t).unlink(), "data file unreadable: part-", "is missing"),
    "data file replaced by garbage of the same size": (
        lambda lake, t: data_file(lake, t).write_bytes(os.urandom(data_file(lake, t).stat().st_size)),
        "data file unreadable: part-", "cannot be read ("),
    "commit 0 deleted": (lambda lake, t: commit(lake, t, 0).unlink(),
                         "Delta log damaged: commit 0 missing", "00000000000000000000.json"),
    "a later commit deleted": (lambda lake, t: commit(lake, t, 1).unlink(),
                               "Delta log damaged: commit 1 missing", "the newest is 2"),
    "a commit truncated": (lambda lake, t: truncate(commit(lake, t, 1), 40),
                           "Delta log damaged: commit 1 is not valid JSON", "line 1"),
    "a commit that is not JSON": (lambda lake, t: commit(lake, t, 2).write_text("this is not json\n"),
                                  "Delta log damaged: commit 2 is not valid JSON", "line 1"),
    "a commit emptied": (lambda lake, t: commit(lake, t, 1).write_bytes(b""),
                         "Delta log damaged: commit 1 is empty", "00000000000000000001.json"),
    "_last_checkpoint names a missing checkpoint": (
        lambda lake, t: (lake / t / "_delta_log" / "_last_checkpoint").write_text('{"version": 1, "size": 4}\n'),
        "Delta log damaged: _last_checkpoint names the checkpoint of version 1, which is missing", ""),
    "a checkpoint truncated": (lambda lake, t: truncate(checkpoint(lake, t), 200),
                               "Delta log damaged: checkpoint 2 cannot be read", "checkpoint.parquet"),
    "the checkpoint deleted": (lambda lake, t: checkpoint(lake, t).unlink(),
                               "Delta log damaged: _last_checkpoint names the checkpoint of version 2", "missing"),
    "_delta_log gone": (lambda lake, t: shutil.rmtree(lake / t / "_delta_log"),
                        "Delta log damaged: _delta_log is missing", "files without a log"),
}
FILE_DAMAGE = {name for name, (_, kind, _) in DAMAGE.items() if kind.startswith("data file")}


@pytest.mark.parametrize("table", [ACTIVITY_RAW, ACTIVITY_DIGESTS])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_one_named_line(lake_dir, table, damage):
    do, kind, detail = DAMAGE[damage]
    do(lake_dir, table)
    code, out, err = run_verify(lake_dir)
    # activity_raw is partitioned by day: a broken data file names its day; a log or the digests do not.
    where = f"{table} {DAYS[1].isoformat()}" if table == ACTIVITY_RAW and damage in FILE_DAMAGE else table
    assert code == 1
    assert len(out) == 1 and out[0].startswith(f"TAMPERED {where}: {kind}") and detail in out[0], out
    assert err == [f"activitylog verify: integrity chain broken: {where}: {kind.split(':')[0]}"]


@pytest.mark.parametrize("table", [ACTIVITY_RAW, ACTIVITY_DIGESTS])
def test_a_checkpointed_lake_verifies(lake_dir, table):
    checkpoint(lake_dir, table)
    code, out, err = run_verify(lake_dir)
    assert (code, err) == (0, []) and out[0].startswith("OK: 3 days, 9 events and 3 digest rows verify"), out


def test_the_newest_commit_deleted(lake_dir):
    """Without its newest commit a table is its previous version, a valid one: the log cannot tell, the
    chain does (the day that commit wrote is gone from activity_raw / from activity_digests)."""
    commit(lake_dir, ACTIVITY_RAW, 2).unlink()
    code, out, err = run_verify(lake_dir)
    # The chain and the verifiable log both name it (the day's digest; the leaves of its events).
    assert code == 1 and out == ["TAMPERED 2024-01-12: day removed: activity_raw has no rows for it; "
                                 "its digest covers 3",
                                 "TAMPERED activity_raw 2024-01-12: event deleted: leaf 6 commits to event 12-0, "
                                 "which activity_raw no longer holds (3 such leaves)"] and len(err) == 1


def test_the_newest_digest_commit_deleted(lake_dir):
    commit(lake_dir, ACTIVITY_DIGESTS, 2).unlink()
    code, out, err = run_verify(lake_dir)
    assert code == 1 and out == ["TAMPERED 2024-01-12: day inserted: activity_raw holds a day that has no digest "
                                 "in activity_digests"] and len(err) == 1


def test_activity_raw_gone(lake_dir):
    shutil.rmtree(lake_dir / ACTIVITY_RAW)
    code, out, err = run_verify(lake_dir)
    assert code == 1 and out == ["TAMPERED activity_raw: table missing: there is no activity_raw table; the "
                                 "digests cover 9 events over 3 days"]
    assert err == ["activitylog verify: integrity chain broken: activity_raw: table missing"]


def test_activity_digests_gone(lake_dir):
    shutil.rmtree(lake_dir / ACTIVITY_DIGESTS)
    code, out, err = run_verify(lake_dir)
    assert (code, out) == (1, []) and err == [
        f"activitylog verify: no activity_digests table in {lake_dir}: run `activitylog ingest` first"]


def test_a_lake_that_does_not_exist(tmp_path):
    code, out, err = run_verify(tmp_path / "nowhere")
    assert (code, out) == (2, []) and err == [
        f"activitylog verify: no lake at {tmp_path / 'nowhere'}: the directory does not exist"]


def test_damage_in_both_tables_names_both(lake_dir):
    """With the chain unreadable the days are not compared to it, but activity_raw's files are still read."""
    data_file(lake_dir, ACTIVITY_RAW).unlink()
    commit(lake_dir, ACTIVITY_DIGESTS, 0).unlink()
    code, out, err = run_verify(lake_dir)
    assert code == 1 and [line.split(":")[0] for line in out] == [
        "TAMPERED activity_digests", "TAMPERED activity_raw 2024-01-11"]
    assert err == ["activitylog verify: integrity chain broken: activity_digests: Delta log damaged"]
