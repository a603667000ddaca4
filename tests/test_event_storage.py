"""The batched SQLite event log (pipelines/event_storage.py): a partition-range run leaves the same events,
partition statuses and asset records as Dagster's own SQLite storage writing event by event, in fewer
transactions."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from pipelines.event_storage import BATCH_SIZE_ENV, BatchedSqliteEventLogStorage

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")
FIRST, LAST = "2024-01-03", "2024-02-20"  # 49 partitions


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("non_negative", asset="days")])
def days(context: dg.AssetExecutionContext):
    for key in context.partition_keys:
        context.add_asset_metadata({"rows": int(key[-2:])}, partition_key=key)
    yield dg.MaterializeResult(metadata={"run_days": len(context.partition_keys)},
                               check_results=[dg.AssetCheckResult(passed=True)])


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[days])
def fails(context: dg.AssetExecutionContext):
    raise RuntimeError("refused")


def _instance(home: Path, batched: bool) -> dg.DagsterInstance:
    home.mkdir()
    storage = ("event_log_storage:\n  module: pipelines.event_storage\n  class: BatchedSqliteEventLogStorage\n"
               f"  config:\n    base_dir: {home / 'history' / 'runs'}\n" if batched else "")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + storage)
    return dg.DagsterInstance.from_config(str(home))


def _run(instance: dg.DagsterInstance, selection: list) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[days, fails]).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, asset_selection=selection, raise_on_error=False,
                                  tags={"dagster/asset_partition_range_start": FIRST,
                                        "dagster/asset_partition_range_end": LAST})


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT dagster_event_type, asset_key, partition FROM event_logs "
                            "ORDER BY id").fetchall()


def _summary(instance: dg.DagsterInstance) -> dict:
    key = dg.AssetKey("days")
    record = instance.get_asset_records([key])[0].asset_entry
    latest = instance.get_latest_materialization_event(key)
    return {
        "materialized": sorted(instance.get_materialized_partitions(key)),
        "failed": sorted(instance.get_materialized_partitions(dg.AssetKey("fails"))),
        "last_partition": latest.dagster_event.partition,
        "last_metadata": latest.asset_materialization.metadata["rows"].value,
        "record_partition": record.last_materialization.dagster_event.partition,
        "planned": instance.get_latest_planned_materialization_info(key) is not None,
        "rows_metadata": sorted(
            (r.partition_key, r.asset_materialization.metadata["rows"].value)
            for r in instance.fetch_materializations(key, limit=1000).records),
    }


@pytest.mark.parametrize("selection", [[dg.AssetKey("days")], [dg.AssetKey("days"), dg.AssetKey("fails")]])
def test_same_events_and_statuses_as_dagsters_own_storage(tmp_path, monkeypatch, selection):
    results = {}
    for batched in (False, True):
        monkeypatch.setenv(BATCH_SIZE_ENV, "1000" if batched else "0")
        home = tmp_path / ("batched" if batched else "default")
        instance = _instance(home, batched)
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage) == batched
        run = _run(instance, selection)
        assert run.success == (len(selection) == 1)
        results[batched] = (_summary(instance), _rows(home / "history" / "runs" / f"{run.run_id}.db"),
                            _rows(home / "history" / "runs" / "index.db"))
        instance.dispose()
    summary, run_rows, index_rows = results[True]
    assert summary["materialized"][0] == FIRST and summary["materialized"][-1] == LAST
    assert len(summary["rows_metadata"]) == 49 and summary["rows_metadata"][0] == (FIRST, 3)
    assert [r for r in run_rows if r[0] == "ASSET_MATERIALIZATION_PLANNED"]  # written by the batch
    assert results[True][0] == results[False][0]
    assert sorted(map(repr, run_rows)) == sorted(map(repr, results[False][1]))
    assert sorted(map(repr, index_rows)) == sorted(map(repr, results[False][2]))


def test_the_batch_is_one_transaction_per_database(tmp_path, monkeypatch):
    """Counted from the storage's connections: a range run of 49 partitions opens a handful, not one or
    two per event."""
    monkeypatch.setenv(BATCH_SIZE_ENV, "1000")
    instance = _instance(tmp_path / "home", batched=True)
    storage = instance.event_log_storage
    opened = []
    original = type(storage)._connect

    def counting(self, shard):
        opened.append(shard)
        return original(self, shard)

    monkeypatch.setattr(type(storage), "_connect", counting)
    run = _run(instance, [dg.AssetKey("days")])
    assert run.success
    events = len(_rows(tmp_path / "home" / "history" / "runs" / f"{run.run_id}.db"))
    assert events > 100 and len(opened) < events / 3, (events, len(opened))


def test_a_base_dir_can_be_given_and_dagster_home_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert BatchedSqliteEventLogStorage().path_for_shard("x") == str(tmp_path / "home" / "history" / "runs" / "x.db")
    assert BatchedSqliteEventLogStorage(str(tmp_path / "elsewhere")).path_for_shard("x") == str(
        tmp_path / "elsewhere" / "x.db")
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(dg.DagsterInvariantViolationError, match="DAGSTER_HOME is not set"):
        BatchedSqliteEventLogStorage()
