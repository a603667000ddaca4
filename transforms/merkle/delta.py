"""The tree stored in the lake: ``merkle_leaves`` and ``merkle_nodes`` (see :mod:`transforms.merkle`),
read a few files at a time, appended leaves first and nodes second."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable, Sequence

import polars as pl

from transforms.lake import Lake
from transforms.merkle.hashes import (
    HASH_SIZE,
    LEAVES_SCHEMA,
    MERKLE_LEAVES,
    MERKLE_NODES,
    NODES_SCHEMA,
    MerkleError,
    _edge_keys,
    _new_nodes,
    hash_leaves,
)
from transforms.merkle.proofs import _Proofs


@dataclass
class AppendResult:
    first_index: int  #: the index of the first appended leaf
    size: int  #: the tree size after the append
    root: bytes  #: the tree head at ``size``


class DeltaTree(_Proofs):
    """The tree stored in the lake's ``merkle_leaves`` and ``merkle_nodes`` tables."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._file_cache: dict[int, list[tuple[int, int, str]]] | None = {}
        self._file_version: int | None = None
        self.size = self._stored_size()

    def refresh(self) -> int:
        self.size = self._stored_size()
        return self.size

    def _stored_size(self) -> int:
        scan = self.lake.scan(MERKLE_NODES)
        if scan is None:
            return 0
        found = scan.filter(pl.col("level") == 0).select(pl.len()).collect().item()
        return int(found)

    def _files(self) -> dict[int, list[tuple[int, int, str]]] | None:
        """level → the node table's live files ``(min index, max index, path)`` sorted, from the Delta
        log's statistics (re-read only when the table has a new version); None without statistics."""
        table = self.lake.table(MERKLE_NODES)
        if table is None:
            return {}
        version = table.version()
        if self._file_version != version:
            actions = self.lake.add_actions(MERKLE_NODES)
            files: dict[int, list[tuple[int, int, str]]] | None = {}
            if not {"min.index", "max.index", "partition.level"} <= set(actions.columns):
                files = None
            else:
                for path, level, low, high in actions.select(
                        "path", "partition.level", "min.index", "max.index").iter_rows():
                    if low is None or high is None:
                        files = None
                        break
                    files.setdefault(int(level), []).append((int(low), int(high), path))
                for entries in (files or {}).values():
                    entries.sort()
            self._file_cache, self._file_version = files, version
        return self._file_cache

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The given nodes, reading only the files whose index range holds one of them."""
        by_level: dict[int, set[int]] = {}
        for level, index in keys:
            by_level.setdefault(level, set()).add(index)
        files = self._files()
        if not by_level or files == {}:
            return {}
        if files is None:  # no file statistics: one filtered scan of the table
            condition = pl.any_horizontal([(pl.col("level") == level) & pl.col("index").is_in(sorted(indexes))
                                           for level, indexes in by_level.items()])
            rows = self.lake.scan(MERKLE_NODES).filter(condition).select("level", "index", "hash").collect()
            return {(level, index): h for level, index, h in rows.iter_rows()}
        wanted: dict[str, tuple[int, set[int]]] = {}
        for level, indexes in by_level.items():
            entries = files.get(level, [])
            lows = [entry[0] for entry in entries]
            for index in indexes:
                at = bisect.bisect_right(lows, index) - 1
                while at >= 0:  # files of one level do not overlap; the loop only guards odd layouts
                    low, high, path = entries[at]
                    if low <= index <= high:
                        wanted.setdefault(path, (level, set()))[1].add(index)
                        break
                    at -= 1
        root = self.lake.uri(MERKLE_NODES)
        out: dict[tuple[int, int], bytes] = {}
        for path, (level, indexes) in wanted.items():  # one small read per file: O(log n) files
            frame = pl.scan_parquet(f"{root}/{path}", storage_options=self.lake.storage_options or None,
                                    hive_partitioning=False).select("index", "hash").filter(
                pl.col("index").is_in(sorted(indexes))).collect()
            out.update({(level, index): h for index, h in frame.iter_rows()})
        return out

    def leaves(self, start: int = 0, end: int | None = None) -> pl.DataFrame:
        """The stored leaf rows ``[start, end)`` of the current tree, in index order."""
        end = self.size if end is None else min(end, self.size)
        scan = self.lake.scan(MERKLE_LEAVES)
        if scan is None:
            return pl.DataFrame(schema=LEAVES_SCHEMA)
        return scan.filter((pl.col("index") >= start) & (pl.col("index") < end)).sort("index").collect()

    def index_of(self, event_id: str) -> int | None:
        """The leaf index of an event (its first leaf, should it have been appended twice)."""
        scan = self.lake.scan(MERKLE_LEAVES)
        if scan is None:
            return None
        found = scan.filter((pl.col("event_id") == event_id) & (pl.col("index") < self.size)).select(
            pl.col("index").min()).collect().item()
        return None if found is None else int(found)

    def append(self, leaves: Sequence[bytes], event_ids: Sequence[str] | pl.Series,
               days: Sequence[date] | pl.Series) -> AppendResult:
        """Append one batch of leaves (the leaf *bytes*, hashed here), in the given order; ids and days
        may be Polars series."""
        if not len(leaves) == len(event_ids) == len(days):
            raise MerkleError("leaves, event ids and days must have the same length")
        return self.append_hashes(hash_leaves(leaves), event_ids, days)

    def append_hashes(self, hashes: bytes, event_ids: Sequence[str] | pl.Series,
                      days: Sequence[date] | pl.Series) -> AppendResult:
        """Append one batch of leaf hashes (concatenated 32-byte values) with their events' ids and days:
        one commit to ``merkle_leaves``, then one to ``merkle_nodes``."""
        count = len(hashes) // HASH_SIZE
        if len(hashes) % HASH_SIZE or count != len(event_ids) or count != len(days):
            raise MerkleError("one 32-byte leaf hash per event id and day")
        size = self.refresh()
        if count == 0:
            return AppendResult(size, size, self.root())
        self._drop_orphan_leaves(size)
        new = _new_nodes(size, self.nodes(_edge_keys(size)), hashes)
        now = datetime.now(timezone.utc)
        self.lake.append(MERKLE_LEAVES, pl.DataFrame({
            "index": pl.int_range(size, size + count, dtype=pl.Int64, eager=True),
            "leaf_hash": _hash_series(hashes),
            "event_id": _series(event_ids, pl.String),
            "day": _series(days, pl.Date),
            "appended_at": pl.Series([now], dtype=LEAVES_SCHEMA["appended_at"]).new_from_index(0, count),
        }, schema=LEAVES_SCHEMA))
        frames = [pl.DataFrame({
            "level": pl.Series([level], dtype=pl.Int32).new_from_index(0, len(blob) // 32),
            "index": pl.int_range(first, first + len(blob) // 32, dtype=pl.Int64, eager=True),
            "hash": _hash_series(blob),
        }, schema=NODES_SCHEMA) for level, first, blob in new]
        self.lake.append(MERKLE_NODES, pl.concat(frames), partition_by=["level"])
        self.size = size + count
        return AppendResult(size, self.size, self.root())

    def _drop_orphan_leaves(self, size: int) -> None:
        """Leaf rows past the tree's size are what an append that crashed between its two commits left."""
        table = self.lake.table(MERKLE_LEAVES)
        if table is None:
            return
        orphans = pl.scan_delta(table).filter(pl.col("index") >= size).select(pl.len()).collect().item()
        if orphans:
            table.delete(f"index >= {size}")


def _series(values, dtype) -> pl.Series:
    return values.cast(dtype) if isinstance(values, pl.Series) else pl.Series(list(values), dtype=dtype)


def _hash_series(blob: bytes) -> pl.Series:
    """Concatenated 32-byte hashes as a Binary series (no per-value Python objects on the Arrow side)."""
    import pyarrow as pa

    count = len(blob) // HASH_SIZE
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(HASH_SIZE), count, [None, pa.py_buffer(blob)])
    return pl.Series(fixed.cast(pa.binary()), dtype=pl.Binary)
