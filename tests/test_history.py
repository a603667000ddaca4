"""Resource history from activity_item_history: newest first, with changes, without reading the lake."""

import shutil

import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from transforms.changes import MaskRules
from transforms.checks import history_matches_log
from transforms.history import ACTIVITY_ITEM_HISTORY, BUCKETS, bucket_expression, bucket_of, item_history
from transforms.lake import ACTIVITY_LOG, ACTIVITY_RAW
from transforms.refresh import refresh_all


def flag_change(day: int, field: str, before, after, item_id="42", **overrides):
    return make_event(
        item_id=item_id, created_at=f"2024-01-{day:02d}T10:00:00.000000Z",
        detail={"name": "new-checkout-flow", "changes": [
            {"type": "FeatureFlag", "action": "changed", "field": field, "before": before, "after": after}]},
        **overrides)


def build(lake, landing, events, name="events.jsonl"):
    build_lake(lake, landing, events, name=name, days="changed", rules=MaskRules(("password",)))


@pytest.fixture
def history_lake(lake, landing):
    events = [flag_change(d, "rollout_percentage", d, d + 1) for d in (3, 9, 17)]
    events += [flag_change(d, "active", False, True, item_id=f"other-{d}") for d in range(1, 25)]
    events += [flag_change(5, "password", "old", "new", item_id="42", scope="User")]  # same id, other scope
    events += [flag_change(9, "active", True, False, item_id="42", team_id=2)]        # same id, other project
    build(lake, landing, events)
    return lake


def test_history_is_newest_first_with_exact_changes(history_lake):
    result = item_history(history_lake, "FeatureFlag", "42", team_id=1)
    rows = result.rows
    assert rows["created_at"].dt.day().to_list() == [17, 9, 3]
    changes = rows["changes"].to_list()
    assert [c[0]["field"] for c in changes] == ["rollout_percentage"] * 3
    assert [(c[0]["before"], c[0]["after"]) for c in changes] == [("17", "18"), ("9", "10"), ("3", "4")]
    assert rows["summary"][0] == 'Jane Doe changed feature flag "new-checkout-flow": rollout_percentage 17 → 18'


def test_history_separates_scopes_and_projects_and_masks(history_lake):
    both_projects = item_history(history_lake, "FeatureFlag", "42").rows
    assert sorted(both_projects["team_id"].to_list()) == [1, 1, 1, 2]
    user = item_history(history_lake, "User", "42").rows
    assert user.height == 1
    assert (user["changes"][0][0]["before"], user["changes"][0][0]["after"]) == ('"masked"', '"masked"')
    assert item_history(history_lake, "FeatureFlag", "nope").rows.height == 0


@pytest.mark.local_lake
def test_history_reads_one_bucket_and_no_day_of_the_log(history_lake, tmp_path):
    expected = item_history(history_lake, "FeatureFlag", "42", team_id=1).rows
    bucket = bucket_of("FeatureFlag", "42")
    root = tmp_path / "lake"
    # Delete every data file a history must not need: all of activity_log, every other bucket.
    removed = 0
    for directory in (root / ACTIVITY_LOG).glob("day=*"):
        shutil.rmtree(directory)
    for directory in (root / ACTIVITY_ITEM_HISTORY).glob("bucket=*"):
        if directory.name != f"bucket={bucket}":
            shutil.rmtree(directory)
            removed += 1
    assert removed > 0
    again = item_history(history_lake, "FeatureFlag", "42", team_id=1)
    assert again.bucket == bucket
    assert again.rows.equals(expected)


def test_late_events_and_refreshes_keep_history_exact(history_lake, landing):
    late = flag_change(1, "rollout_percentage", 0, 1)
    build(history_lake, landing, [late], name="late.jsonl")
    rows = item_history(history_lake, "FeatureFlag", "42", team_id=1).rows
    assert rows["created_at"].dt.day().to_list() == [17, 9, 3, 1]
    refresh_all(history_lake, history_lake.days(ACTIVITY_RAW))  # a second refresh of everything
    assert item_history(history_lake, "FeatureFlag", "42", team_id=1).rows.height == 4
    counts = history_matches_log(history_lake, history_lake.days(ACTIVITY_LOG))
    assert counts["missing_from_history"] == 0 and counts["not_in_log"] == 0
    assert counts["history_rows"] == counts["log_rows_with_item"] == 30


def test_history_window_and_limit(history_lake):
    from datetime import datetime, timezone

    from transforms.durations import Duration

    now = datetime(2024, 1, 20, tzinfo=timezone.utc)
    windowed = item_history(history_lake, "FeatureFlag", "42", team_id=1, read_window=Duration(days=12), now=now)
    assert windowed.rows["created_at"].dt.day().to_list() == [17, 9]
    assert item_history(history_lake, "FeatureFlag", "42", team_id=1, limit=1).rows.height == 1


def test_many_refreshes_are_compacted(lake, landing, monkeypatch):
    """A bucket of more than 8 files is rewritten ordered by resource, in small row groups."""
    import pyarrow.parquet as pq

    import transforms.history as history

    monkeypatch.setattr(history, "COMPACT_ROW_GROUP_ROWS", 4)
    for day in range(1, 12):
        build(lake, landing, [flag_change(day, "active", False, True)], name=f"day-{day}.jsonl")
    table = lake.table(ACTIVITY_ITEM_HISTORY)
    files_in_bucket = [u for u in table.file_uris() if f"bucket={bucket_of('FeatureFlag', '42')}/" in u]
    assert len(files_in_bucket) <= 8  # compacted after the eighth refresh
    if not lake.root.startswith("s3://"):
        groups = [pq.ParquetFile(u.removeprefix("file://")).metadata for u in files_in_bucket]
        assert any(m.num_row_groups > 1 for m in groups)
        assert all(m.row_group(i).num_rows <= 4 for m in groups for i in range(m.num_row_groups))
    rows = item_history(lake, "FeatureFlag", "42").rows
    assert rows.height == 11 and rows["created_at"].is_sorted(descending=True)


def test_bucket_is_the_same_in_python_and_polars():
    keys = [("FeatureFlag", "42"), ("Insight", "0188c7a2-ñ"), ("Zé", "1"), ("A", "x" * 50), ("B", "")]
    frame = pl.DataFrame(keys, schema=["scope", "item_id"], orient="row").with_columns(bucket_expression())
    assert frame["bucket"].to_list() == [bucket_of(s, i) for s, i in keys]
    spread = pl.DataFrame({"scope": ["FeatureFlag"] * 5000, "item_id": [str(i) for i in range(5000)]}).select(
        bucket_expression())["bucket"].value_counts()
    assert spread.height == BUCKETS and spread["count"].max() < 3 * 5000 / BUCKETS
