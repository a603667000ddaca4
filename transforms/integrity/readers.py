"""verify's readers of data files: the live files of a table, the days of ``activity_raw`` in batches,
and the files that are missing, of another size than their log entry, or do not decode, each a
named problem."""

from __future__ import annotations

import os
from datetime import date

import polars as pl

from transforms.integrity.deltalog import _filesystem, _first_line, _guarded, _log_problem
from transforms.integrity.problems import Problem
from transforms.lake import ACTIVITY_RAW, Lake

_NO_FILES = pl.DataFrame(schema={"path": pl.String, "size": pl.Int64, "rows": pl.Int64, "day": pl.Date})


def _live_files(lake: Lake, name: str) -> tuple[pl.DataFrame | None, Problem | None]:
    """The table's live data files from its Delta log (``path, size, rows, day``; ``day`` null when the
    table is not partitioned), or None when the table does not exist, or the problem with its log."""
    exists, problem = _log_problem(lake, name)
    if problem is not None or not exists:
        return None, problem

    def list_files() -> pl.DataFrame | None:
        table = lake.table(name)
        if table is None:
            return None
        actions = pl.from_arrow(table.get_add_actions(flatten=True))
        actions = actions.struct.unnest() if isinstance(actions, pl.Series) else actions
        if actions.height == 0:
            return _NO_FILES
        return actions.select(
            pl.col("path"), pl.col("size_bytes").cast(pl.Int64).alias("size"),
            pl.col("num_records").cast(pl.Int64).fill_null(0).alias("rows"),
            (pl.col("partition.day").cast(pl.Date) if "partition.day" in actions.columns
             else pl.lit(None, pl.Date)).alias("day"),
        ).sort("day", "path")

    files, error = _guarded(list_files)
    if error:
        return None, Problem(None, "Delta log damaged", f"delta-rs cannot read it ({error})", table=name)
    return files, None


def _day_batches(files: pl.DataFrame, days: list[date]) -> list[list[date]]:
    """Consecutive groups of days holding at most MAX_BATCH_ROWS rows (one day at least)."""
    from transforms.refresh import MAX_BATCH_ROWS

    counts = dict(files.group_by("day").agg(pl.col("rows").sum()).iter_rows())
    batches: list[list[date]] = []
    rows = 0
    for day in days:
        if batches and rows + counts.get(day, 0) <= MAX_BATCH_ROWS:
            batches[-1].append(day)
            rows += counts.get(day, 0)
        else:
            batches.append([day])
            rows = counts.get(day, 0)
    return batches


def _stored_sizes(lake: Lake, name: str) -> dict[str, int] | None:
    """Path (relative to the table, as in its log) → size of every file on storage: one listing."""
    import pyarrow.fs as pafs

    fs, root = _filesystem(lake)
    base = f"{root}/{name}/"
    infos, _ = _guarded(lambda: fs.get_file_info(pafs.FileSelector(base, recursive=True)))
    if infos is None:
        return None
    return {info.path[len(base):]: info.size for info in infos if info.is_file and info.path.startswith(base)}


def _read_days(lake: Lake, files: pl.DataFrame, sizes: dict[str, int] | None,
               ) -> tuple[pl.DataFrame | None, list[Problem]]:
    """``day, id, payload`` of ``activity_raw`` for the days of ``files`` (its live files of those
    days), and one problem per day whose files cannot be read.

    Files missing from storage or of another size than their log entry are found from the listing
    (such a file makes the Rust Parquet reader panic); the other days are read with Polars, as every
    reader of the lake does. Should that fail, the files are read one by one with pyarrow to name the
    broken ones."""
    from urllib.parse import unquote

    problems = []
    if sizes is not None:
        actual = files.with_columns(pl.col("path").map_elements(lambda p: sizes.get(unquote(p)), pl.Int64)
                                    .alias("stored"))
        wrong = actual.filter(pl.col("stored").is_null() | (pl.col("stored") != pl.col("size")))
        for (day,), rows in wrong.sort("day", "path").group_by("day", maintain_order=True):
            path, size, stored = rows.row(0)[0], rows["size"][0], rows["stored"][0]
            reason = "is missing" if stored is None else f"has {stored:,} bytes, its Delta log entry {size:,}"
            more = f" (and {rows.height - 1} more files)" if rows.height > 1 else ""
            problems.append(Problem(day, "data file unreadable", f"{path.rsplit('/', 1)[-1]} {reason}{more}",
                                    table=ACTIVITY_RAW))
    bad = {p.day for p in problems}
    readable = files.filter(~pl.col("day").is_in(list(bad)))
    days = sorted(set(readable["day"].to_list()))
    if not days:
        return None, problems
    raw, error = _guarded(lambda: lake.read_days(ACTIVITY_RAW, days, columns=["day", "id", "payload"]))
    if error is None:
        return raw, problems
    frames, broken = _read_files(lake, ACTIVITY_RAW, readable, ["id", "payload"])
    return (pl.concat(frames, how="vertical_relaxed") if frames else None), problems + broken


def _read_files(lake: Lake, name: str, files: pl.DataFrame, columns: list[str],
                ) -> tuple[list[pl.DataFrame], list[Problem]]:
    """Read ``columns`` of each listed data file (threads, pyarrow), with the partition column ``day``
    added. Returns the frames of the readable days and one problem per day (or per unpartitioned
    table) whose files are missing, differ in size from their log entry, or do not decode."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    fs, root = _filesystem(lake)
    partitioned = files["day"].null_count() < files.height
    wanted = [c for c in columns if not (partitioned and c == "day")]

    def read(item: tuple[str, int, date | None]) -> pl.DataFrame | str:
        path, size, day = item
        location = f"{root}/{name}/{unquote(path)}"
        try:
            with fs.open_input_file(location) as handle:
                if handle.size() != size:
                    return f"has {handle.size():,} bytes, its Delta log entry {size:,}"
                table = pq.read_table(handle, columns=wanted)
        except Exception as exc:  # noqa: BLE001 - a broken file is evidence
            info, _ = _guarded(lambda: fs.get_file_info(location))
            if isinstance(exc, FileNotFoundError) or (info is not None and not info.is_file):
                return "is missing"
            return f"cannot be read ({_first_line(exc).replace(location, path.rsplit('/', 1)[-1])})"
        frame = pl.from_arrow(table)
        return frame.with_columns(pl.lit(day, pl.Date).alias("day")) if partitioned else frame

    items = list(files.select("path", "size", "day").iter_rows())
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = list(pool.map(read, items))
    frames: dict[date | None, list[pl.DataFrame]] = {}
    bad: dict[date | None, list[tuple[str, str]]] = {}
    for (path, _, day), result in zip(items, results):
        if isinstance(result, str):
            bad.setdefault(day, []).append((path.rsplit("/", 1)[-1], result))
        else:
            frames.setdefault(day, []).append(result)
    problems = []
    for day, failures in sorted(bad.items(), key=lambda item: item[0] or date.min):
        file_name, reason = failures[0]
        more = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
        problems.append(Problem(day, "data file unreadable", f"{file_name} {reason}{more}", table=name))
    return [frame for day, day_frames in frames.items() if day not in bad for frame in day_frames], problems
