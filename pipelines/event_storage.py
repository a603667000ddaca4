"""The local instance's event log: Dagster's SQLite event log, writing a batch of asset events in one
transaction per database instead of one connection and one transaction per event.

A refresh run over a year of days reports about a thousand partitions per asset: one planned and one
materialization event each, each written to the run's database and mirrored in the index database.
Dagster's SQLite storage writes them one by one (a new engine, a connection and a commit per event:
about 8 ms each, half a minute per year of days). Dagster batches these events (the planned events of a
run, the materializations of a step's partitions) when ``DAGSTER_EVENT_BATCH_SIZE`` is set
(:data:`EVENT_BATCH_SIZE`, set by :mod:`pipelines.definitions` unless the environment sets it), and
hands the batch to ``store_event_batch``; its PostgreSQL storage already writes a batch at once, its
SQLite storage stores it event by event. :class:`BatchedSqliteEventLogStorage` stores the batch with the
same rows as ``store_event`` would, in one transaction per database. The instance configuration that
`make demo`, `make ui` and the CLI create (``pipelines/dagster_instance.yaml``) selects it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

import dagster as dg
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result

#: Events Dagster buffers before a batch write (it flushes earlier at a batch's end).
EVENT_BATCH_SIZE = "1000"
BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"


def enable_batching() -> None:
    """Have Dagster hand batches of asset events to the storage (``DAGSTER_EVENT_BATCH_SIZE``), unless
    the environment already says otherwise (``0`` turns it off). Called where runs are created and
    executed: :mod:`pipelines.definitions` (run workers, code servers) and the CLI's instance."""
    os.environ.setdefault(BATCH_SIZE_ENV, EVENT_BATCH_SIZE)


def default_base_dir() -> str:
    """Where Dagster's default SQLite storage keeps the event log: ``$DAGSTER_HOME/history/runs`` (an
    instance loaded from its ``dagster.yaml`` elsewhere than DAGSTER_HOME gives ``base_dir``)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise dg.DagsterInvariantViolationError("DAGSTER_HOME is not set: the event log has no directory")
    return os.path.join(home, "history", "runs")


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (same files, same rows) whose ``store_event_batch`` writes a batch of
    asset events in one transaction on the run's database and one on the index database."""

    def __init__(self, base_dir: str | None = None, inst_data=None) -> None:
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """The rows ``store_event`` writes for each event: every event in its run's database, in one
        transaction per run; asset events mirrored in the index database (row, tags, the asset's entry)
        in one transaction; asset check events (a run's planned checks) mirrored as ``store_event`` does."""
        kinds = [event.dagster_event_type if event.is_dagster_event else None for event in events]
        unbatched = [kind for kind in kinds if kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS]
        if unbatched:  # Dagster batches no run status event; store_event would also mirror them
            raise dg.DagsterInvariantViolationError(f"run status events are not written in batches: {unbatched}")
        by_run: dict[str, list[EventLogEntry]] = defaultdict(list)
        for event in events:
            by_run[event.run_id].append(event)
        for run_id, run_events in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(self.prepare_insert_event_batch(run_events))
        asset_events = [e for e, kind in zip(events, kinds) if kind in ASSET_EVENTS]
        if asset_events:
            with self.index_transaction() as conn:
                for event in asset_events:  # each row's own insert: its id keys the tags and the entry
                    with db_result(conn, self.prepare_insert_event(event)) as result:
                        event_id = result.inserted_primary_key[0]
                    if event_id is None:
                        raise dg.DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
                    self._store_asset_event_tags(conn, [event], [event_id])
                    self._store_asset_event(conn, event, event_id)
        for event in (e for e, kind in zip(events, kinds) if kind in ASSET_CHECK_EVENTS):
            with self.index_connection() as conn, db_result(conn, self.prepare_insert_event(event)) as result:
                event_id = result.inserted_primary_key[0]
            self.store_asset_check_event(event, event_id)
