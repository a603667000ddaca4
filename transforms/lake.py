"""The lake: one root URI (local path or ``s3://``) holding every Delta table of the pipeline."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterable

import polars as pl
import deltalake
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

# Table names are part of the public contract: transforms/tables.py lists every table (README "Tables").
# A commit that loses to a concurrent writer is made again on the new version, this many times at most.
COMMIT_ATTEMPTS = 8

ACTIVITY_RAW = "activity_raw"
ACTIVITY_QUARANTINE = "activity_quarantine"
INGEST_LEDGER = "ingest_ledger"
ACTIVITY_EVENTS = "activity_events"
ACTIVITY_CHANGES = "activity_changes"
ACTIVITY_LOG = "activity_log"


_OPEN_TABLES: dict[str, DeltaTable] = {}


# ----------------------------------------------------------------------------------------------
# The commit hook: every Delta commit of the process goes through the functions below
# ----------------------------------------------------------------------------------------------
#
# Whatever writes a table — this module's methods, Polars' ``write_delta`` (which calls
# ``deltalake.write_deltalake``), a ``DeltaTable``'s delete / merge / update / optimize / vacuum /
# alter — passes through :func:`committed` once it succeeded. That is the one place fault injection
# hooks into (tests/helpers/faults.py):
#
# * ``ACTIVITYLOG_FAULT_KILL_AFTER_COMMIT=N`` kills the process (SIGKILL, no cleanup, like a power cut)
#   right after its N-th successful commit;
# * ``ACTIVITYLOG_FAULT_COMMIT_LOG=PATH`` appends one line per commit (``pid <TAB> n <TAB> operation
#   <TAB> table``) to PATH, so a test learns how many commits a command makes, and which.
#
# Both are for tests only; without them the hook costs one dictionary lookup per commit.

KILL_AFTER_ENV = "ACTIVITYLOG_FAULT_KILL_AFTER_COMMIT"
COMMIT_LOG_ENV = "ACTIVITYLOG_FAULT_COMMIT_LOG"
_COMMITS = {"count": 0}
_HOOK_STATE = threading.local()
_HOOK_LOCK = threading.Lock()


def committed(operation: str, table: object = None) -> None:
    """Count one successful commit of this process; kill or log it when the fault variables say so."""
    kill_after = os.environ.get(KILL_AFTER_ENV)
    log_path = os.environ.get(COMMIT_LOG_ENV)
    if not kill_after and not log_path:
        return
    with _HOOK_LOCK:
        _COMMITS["count"] += 1
        count = _COMMITS["count"]
        if log_path:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()}\t{count}\t{operation}\t{_table_name(table)}\n")
        if kill_after and count >= int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)


def commits_made() -> int:
    """Commits this process made so far (counted only while a fault variable is set)."""
    return _COMMITS["count"]


def _table_name(table: object) -> str:
    if isinstance(table, DeltaTable):
        table = table.table_uri
    elif hasattr(table, "table") or hasattr(table, "_table"):  # TableOptimizer, TableAlterer, TableMerger
        inner = getattr(table, "table", None) or getattr(table, "_table", None)
        table = getattr(inner, "table_uri", inner)
    text = str(table or "?").rstrip("/")
    return text.rsplit("/", 1)[-1]


def _committing(function, operation: str, *, table_arg: int | None = 0):
    """``function`` wrapped so that a successful call counts as one commit (nested calls count once)."""
    if getattr(function, "_activitylog_commit_hook", False):
        return function

    def wrapper(*args, **kwargs):
        depth = getattr(_HOOK_STATE, "depth", 0)
        _HOOK_STATE.depth = depth + 1
        try:
            result = function(*args, **kwargs)
        finally:
            _HOOK_STATE.depth = depth
        if depth == 0:
            target = args[table_arg] if table_arg is not None and len(args) > table_arg else kwargs.get("table_or_uri")
            committed(operation, target)
        return result

    wrapper._activitylog_commit_hook = True  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(function, "__name__", operation)
    wrapper.__doc__ = getattr(function, "__doc__", None)
    return wrapper


def _install_commit_hook() -> None:
    from deltalake import table as table_module
    from deltalake import writer as writer_module

    write = _committing(deltalake.write_deltalake, "write", table_arg=0)
    deltalake.write_deltalake = write
    if getattr(writer_module, "write_deltalake", None) is not None:
        writer_module.write_deltalake = write
    for name in ("delete", "update", "restore", "vacuum", "repair", "create_write_transaction"):
        if hasattr(DeltaTable, name):
            setattr(DeltaTable, name, _committing(getattr(DeltaTable, name), name))
    DeltaTable.create = classmethod(_committing(DeltaTable.create.__func__, "create", table_arg=1))
    for cls_name, methods in (("TableOptimizer", ("compact", "z_order")),
                              ("TableAlterer", ("add_columns", "add_constraint", "drop_constraint",
                                                "add_feature", "set_table_properties", "set_table_description",
                                                "set_column_metadata")),
                              ("TableMerger", ("execute",))):
        cls = getattr(table_module, cls_name, None)
        for name in methods:
            if cls is not None and hasattr(cls, name):
                setattr(cls, name, _committing(getattr(cls, name), f"{cls_name}.{name}"))


_install_commit_hook()
write_deltalake = deltalake.write_deltalake


def s3_storage_options() -> dict[str, str]:
    """delta-rs / object_store options from the standard AWS environment variables."""
    mapping = {
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN": "AWS_SESSION_TOKEN",
        "AWS_REGION": "AWS_REGION",
        "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP": "AWS_ALLOW_HTTP",
    }
    options = {key: os.environ[env] for env, key in mapping.items() if os.environ.get(env)}
    if "AWS_REGION" not in options and os.environ.get("AWS_DEFAULT_REGION"):
        options["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
    return options


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


@dataclass(frozen=True)
class Lake:
    """Locates the pipeline's Delta tables under one root and reads/writes them."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)
    #: Tables read at a fixed version (e.g. an export reads one snapshot): table name → version.
    versions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def at(cls, root: str | Path) -> "Lake":
        root = str(root).rstrip("/")
        if is_remote(root):
            return cls(root, s3_storage_options())
        return cls(str(Path(root).expanduser().resolve()))

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def table(self, name: str) -> DeltaTable | None:
        """The Delta table at its latest version, or None when it has not been written yet.

        Opened tables are kept per process and brought up to date with ``update_incremental`` (reads
        only the commits since), so repeated reads (a server, a notebook) skip re-reading the log.
        """
        uri = self.uri(name)
        if name in self.versions:
            try:
                return DeltaTable(uri, version=self.versions[name], storage_options=self.storage_options or None)
            except TableNotFoundError:
                return None
        cached = _OPEN_TABLES.get(uri)
        if cached is not None:
            try:
                cached.update_incremental()
                return cached
            except Exception:  # gone or rewritten underneath us: open it afresh
                _OPEN_TABLES.pop(uri, None)
        try:
            table = DeltaTable(uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None
        _OPEN_TABLES[uri] = table
        return table

    def forget(self, name: str) -> None:
        """Drop the process's open handle of a table: the next read re-reads its whole log (``verify``
        does, so that nothing cached can hide a change made behind this process's back)."""
        _OPEN_TABLES.pop(self.uri(name), None)

    def exists(self, name: str) -> bool:
        return self.table(name) is not None

    def version(self, name: str) -> int | None:
        table = self.table(name)
        return None if table is None else table.version()

    def scan(self, name: str) -> pl.LazyFrame | None:
        """A lazy scan of the table (partition filters on ``day`` prune files), or None if absent."""
        table = self.table(name)
        if table is None:
            return None
        return pl.scan_delta(table)

    def read_days(self, name: str, days: Iterable[date], columns: list[str] | None = None) -> pl.DataFrame | None:
        """The rows of the given day partitions only (other days' files are never opened)."""
        table = self.table(name)
        day_list = sorted(set(days))
        if table is None or not day_list:
            return None
        frame = pl.scan_delta(table)
        frame = frame.filter(pl.col("day") == day_list[0]) if len(day_list) == 1 else frame.filter(
            pl.col("day").is_in(day_list))
        return (frame.select(columns) if columns else frame).collect()

    def append(self, name: str, frame: pl.DataFrame, *, partition_by: list[str] | None = None) -> None:
        if frame.height == 0:
            return
        # Polars' Delta writer partitions and encodes faster than handing Arrow to delta-rs
        # (measured 0.4 s vs 1.0 s for 200k events); the commit is delta-rs' either way. delta-rs
        # refuses an append that commits after a concurrent delete (retention) as a conflict; the
        # failed commit left nothing behind, so the append is simply made again on the new version.
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                frame.write_delta(
                    self.uri(name),
                    mode="append",
                    storage_options=self.storage_options or None,
                    delta_write_options={"partition_by": partition_by} if partition_by else None,
                )
                return
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def replace_days(self, name: str, days: list[date], frame: pl.DataFrame) -> None:
        """Atomically replace the given day partitions with ``frame`` (one commit; a retry writes the
        same result). Days without rows in ``frame`` end up empty (metadata-only delete)."""
        day_list = sorted(set(days))
        if not day_list:
            return
        predicate = "day IN (" + ", ".join(f"'{d.isoformat()}'" for d in day_list) + ")"
        table = self.table(name)
        if frame.height == 0:
            if table is not None:
                table.delete(predicate)
            elif frame.width:  # create the (empty) table so readers find its schema
                self.create_if_missing(name, frame, ["day"])
            return
        self.create_if_missing(name, frame, ["day"])
        # Polars' writer: faster than handing Arrow to delta-rs (see append); same atomic commit. A
        # concurrent writer on the same days makes the commit fail; the replacement is then redone
        # on the new version (it is idempotent: the same days get the same rows).
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                frame.write_delta(
                    self.uri(name), mode="overwrite", storage_options=self.storage_options or None,
                    delta_write_options={"partition_by": ["day"], "predicate": predicate},
                )
                return
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def create_if_missing(self, name: str, frame: pl.DataFrame, partition_by: list[str]) -> DeltaTable:
        """The table, created empty with ``frame``'s schema if it does not exist yet.

        Writers that find no table must not each append their rows: two first writers (a parallel
        backfill) would both add theirs and nothing would replace the other's. Creating version 0 is
        one atomic put-if-absent, so exactly one creation wins and every writer then replaces its
        partitions with a predicate, as on any existing table."""
        table = self.table(name)
        if table is not None:
            return table
        try:
            write_deltalake(self.uri(name), frame.clear().to_arrow(), mode="error", partition_by=partition_by,
                            storage_options=self.storage_options or None)
        except (DeltaError, CommitFailedError):
            if self.table(name) is None:  # not a lost creation race: a real failure
                raise
        return self.table(name)

    def replace_day(self, name: str, day: date, frame: pl.DataFrame) -> None:
        self.replace_days(name, [day], frame)

    def add_actions(self, name: str) -> pl.DataFrame:
        """The table's live files as rows (path, size, modification_time, num_records, partition.*);
        empty when the table does not exist."""
        table = self.table(name)
        if table is None:
            return pl.DataFrame()
        actions = pl.from_arrow(table.get_add_actions(flatten=True))
        return actions.struct.unnest() if isinstance(actions, pl.Series) else actions

    def days_written_after(self, name: str, checked: pl.DataFrame | None) -> list[date]:
        """Day partitions whose newest file is younger than their ``checked_at`` in ``checked``
        (``day, checked_at``), or that ``checked`` does not list: the days with something new."""
        actions = self.add_actions(name)
        if actions.height == 0 or "partition.day" not in actions.columns:
            return []
        written = actions.group_by(pl.col("partition.day").alias("day")).agg(
            pl.col("modification_time").max().cast(pl.Datetime("ms", "UTC")).alias("written_at"))
        if checked is not None and checked.height:
            last = checked.group_by("day").agg(pl.col("checked_at").max())
            written = written.join(last, on="day", how="left").filter(
                pl.col("checked_at").is_null() | (pl.col("written_at") > pl.col("checked_at")))
        return sorted(written["day"].to_list())

    def day_row_counts(self, name: str) -> dict[date, int]:
        """Rows per day partition, from the Delta log's file statistics (no data read)."""
        actions = self.add_actions(name)
        if actions.height == 0 or "partition.day" not in actions.columns:
            return {}
        counts = actions.group_by("partition.day").agg(pl.col("num_records").sum())
        return {day: int(rows or 0) for day, rows in counts.iter_rows()}

    def days(self, name: str) -> list[date]:
        """The day partitions the table holds (from the Delta log, no data read)."""
        table = self.table(name)
        if table is None:
            return []
        values = {
            part.get("day")
            for part in table.partitions()
        }
        return sorted(date.fromisoformat(v) for v in values if v)
