"""An append-only Merkle tree over the accepted events (RFC 6962 / RFC 9162 §2.1), kept beside the lake.

Hashing is RFC 6962's: a leaf hash is ``SHA-256(0x00 ‖ leaf)``, an interior node ``SHA-256(0x01 ‖ left
‖ right)``, and the tree head of ``n`` leaves is the RFC's MTH, which splits at the largest power of
two below ``n`` (so any size, not only powers of two, has one well-defined root).

Storage (two Delta tables under the lake root; this module is their only writer):

* ``merkle_leaves``: one row per leaf in append order: ``index`` (Int64, from 0), ``leaf_hash``
  (Binary, 32 bytes), ``event_id`` (String), ``day`` (Date), ``appended_at`` (Datetime UTC).
* ``merkle_nodes``: the hash of every *complete* subtree, partitioned by ``level``: ``level`` (Int32),
  ``index`` (Int64), ``hash`` (Binary). Node ``(level, index)`` is the MTH of leaves
  ``[index·2^level, (index+1)·2^level)``; level 0 holds the leaf hashes. Complete subtrees never change
  once written, so the table only grows. The tree's size is the number of level-0 rows.

The hash of any range that the RFC's recursion uses (``[start, end)`` with ``start`` aligned to a power
of two at least ``end - start``) is the fold of at most ``log2 n`` complete subtrees (the binary digits
of its width). A tree head, an inclusion proof or a consistency proof therefore needs O(log n) node
hashes, read in one filtered scan (partition pruning on ``level``, file statistics on ``index``).

An append reads the right edge of the tree (one complete subtree per set bit of the old size) and
hashes the new leaves level by level; it writes the leaves first and the nodes second, so a crash in
between leaves only leaf rows past the tree's size, which the next append removes before writing.
Appends must not run concurrently (two appends to Delta tables do not conflict, so two writers would
both take the same indexes): the caller runs one at a time.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows RFC 9162 §2.1.3.2 and
§2.1.4.2 step by step and needs nothing but the hashes.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable, Protocol, Sequence

import polars as pl

from transforms.lake import Lake

MERKLE_LEAVES = "merkle_leaves"
MERKLE_NODES = "merkle_nodes"
HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

LEAVES_SCHEMA = {
    "index": pl.Int64, "leaf_hash": pl.Binary, "event_id": pl.String, "day": pl.Date,
    "appended_at": pl.Datetime("us", "UTC"),
}
NODES_SCHEMA = {"level": pl.Int32, "index": pl.Int64, "hash": pl.Binary}

_sha256 = hashlib.sha256


class MerkleError(Exception):
    """A proof that does not verify, a size out of range, or a tree whose stored nodes are missing."""


# --------------------------------------------------------------------------------------------- hashing

def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 ‖ leaf)``."""
    return _sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return _sha256(NODE_PREFIX + left + right).digest()


EMPTY_ROOT = _sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n`` ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC's MTH, straight from its recursive definition, over leaf *hashes* (a reference for tests
    and small trees; the stored tree never uses it)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` that make up ``[start, end)``, left to right. ``start``
    must be aligned to a power of two ≥ ``end - start`` (every range of the RFC's recursion is)."""
    out = []
    width = end - start
    position = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append((level, position >> level))
            position += 1 << level
    return out


def _fold(hashes: list[bytes]) -> bytes:
    """MTH of a range from its pieces (left to right): the right-most pieces combine first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# ------------------------------------------------------------------------------ proof shapes (RFC 9162)

def _inclusion_ranges(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """PATH(m, D[start:end]) of RFC 9162 §2.1.3.1 as the ranges whose hashes form it, leaf to root."""
    out: list[tuple[int, int]] = []
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1 as ranges, in proof order."""
    out: list[tuple[int, int]] = []
    start, end, b = 0, n, True
    while True:
        width = end - start
        if m == width:
            if not b:
                out.append((start, end))
            break
        k = _split(width)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            b = False
    out.reverse()
    return out


# ------------------------------------------------------------------------------------------ verification

def _lsb(x: int) -> int:
    return x & 1


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives for leaf hash ``leaf`` at ``index`` in a tree of ``size`` (RFC 9162
    §2.1.3.2, steps 1–5 without the final comparison); raises :class:`MerkleError` on a malformed proof."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise MerkleError("hashes must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise MerkleError("inclusion proof too long")
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("inclusion proof too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check an inclusion proof of leaf hash ``leaf`` at ``index`` against ``root`` of a tree of ``size``
    (RFC 9162 §2.1.3.2). Raises :class:`MerkleError` when it does not verify."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise MerkleError(f"inclusion proof of leaf {index} does not match the root of tree size {size}")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``size1`` with ``root1`` is a prefix of the tree of ``size2`` with ``root2``
    (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal roots; size 0 is a prefix of every
    tree (empty proof). Raises :class:`MerkleError` when it does not verify."""
    if not 0 <= size1 <= size2:
        raise MerkleError(f"tree size {size1} is not at most {size2}")
    if any(len(p) != HASH_SIZE for p in proof) or len(root1) != HASH_SIZE or len(root2) != HASH_SIZE:
        raise MerkleError("hashes must be 32 bytes")
    if size1 == size2:
        if proof:
            raise MerkleError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise MerkleError(f"two different roots for tree size {size1}")
        return
    if size1 == 0:
        if proof:
            raise MerkleError("a consistency proof from the empty tree must be empty")
        return
    # 1. An empty path fails.
    if not proof:
        raise MerkleError("empty consistency proof")
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3.
    fn, sn = size1 - 1, size2 - 1
    # 4.
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            raise MerkleError("consistency proof too long")
        if _lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise MerkleError("consistency proof too short")
    if fr != root1:
        raise MerkleError(f"consistency proof does not match the root of tree size {size1}")
    if sr != root2:
        raise MerkleError(f"consistency proof does not match the root of tree size {size2}")


# ------------------------------------------------------------------------------------- trees and storage

class NodeSource(Protocol):
    size: int

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of the given complete subtrees ``(level, index)``."""


def _hash_level(blob: bytes) -> bytes:
    """The parents of a level given as concatenated 32-byte hashes (an even count)."""
    sha, prefix = _sha256, NODE_PREFIX
    return b"".join([sha(prefix + blob[i:i + 64]).digest() for i in range(0, len(blob), 64)])


def hash_leaves(leaves: Iterable[bytes]) -> bytes:
    """The RFC 6962 leaf hashes of ``leaves``, concatenated."""
    sha, prefix = _sha256, LEAF_PREFIX
    return b"".join([sha(prefix + leaf).digest() for leaf in leaves])


def _new_nodes(size: int, edge: dict[tuple[int, int], bytes], hashes: bytes) -> list[tuple[int, int, bytes]]:
    """The complete subtrees that appending the leaf hashes ``hashes`` (concatenated) to a tree of
    ``size`` leaves creates, per level: ``(level, first index, concatenated hashes)``. ``edge`` holds the
    old tree's right-edge subtrees (:func:`_edge_keys`)."""
    out = []
    level, first, blob = 0, size, hashes
    while blob:
        out.append((level, first, blob))
        if first & 1:  # the first new node is a right child: its left sibling is old
            blob = edge[(level, first - 1)] + blob
            first -= 1
        if len(blob) % 64:
            blob = blob[:-32]  # the last node has no right sibling yet
        blob = _hash_level(blob)
        level, first = level + 1, first >> 1
    return out


def _edge_keys(size: int) -> list[tuple[int, int]]:
    """The right-edge complete subtrees of a tree of ``size`` leaves (one per set bit)."""
    return _pieces(0, size)


class _Proofs:
    """Tree heads and proofs over any :class:`NodeSource` (one batch of node reads per call)."""

    size: int

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:  # pragma: no cover
        raise NotImplementedError

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise MerkleError(f"tree size {size} is outside 0…{self.size}")

    def _range_hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        pieces = [_pieces(a, b) for a, b in ranges]
        found = self.nodes({key for group in pieces for key in group})
        try:
            return [_fold([found[key] for key in group]) for group in pieces]
        except KeyError as missing:
            raise MerkleError(f"node {missing.args[0]} is missing from the stored tree") from None

    def root(self, size: int | None = None) -> bytes:
        """The tree head (MTH) at ``size`` (default: the current size)."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._range_hashes([(0, size)])[0]

    def leaf_hash_at(self, index: int) -> bytes:
        self._check_size(index + 1)
        return self._range_hashes([(index, index + 1)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise MerkleError(f"leaf index {index} is outside a tree of size {size}")
        return self._range_hashes(_inclusion_ranges(index, 0, size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof between tree sizes ``size1`` ≤ ``size2`` (RFC 9162 §2.1.4.1; empty when
        they are equal or ``size1`` is 0)."""
        size2 = self.size if size2 is None else size2
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise MerkleError(f"tree size {size1} is not at most {size2}")
        if size1 == 0 or size1 == size2:
            return []
        return self._range_hashes(_consistency_ranges(size1, size2))


class MemoryTree(_Proofs):
    """The tree in memory: one ``bytes`` per level (concatenated hashes of its complete subtrees)."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()):
        self.levels: list[bytearray] = []
        self.size = 0
        hashes = b"".join(leaf_hashes)
        if hashes:
            self.append_hashes(hashes)

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> "MemoryTree":
        tree = cls()
        tree.append_hashes(hash_leaves(leaves))
        return tree

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        for level, index in keys:
            if level < len(self.levels) and (index + 1) * 32 <= len(self.levels[level]):
                out[(level, index)] = bytes(self.levels[level][index * 32:(index + 1) * 32])
        return out

    def append_hashes(self, hashes: bytes) -> list[tuple[int, int, bytes]]:
        """Append leaf hashes (concatenated 32-byte values); returns the new nodes per level."""
        if len(hashes) % HASH_SIZE:
            raise MerkleError("leaf hashes must be 32 bytes each")
        new = _new_nodes(self.size, self.nodes(_edge_keys(self.size)), hashes)
        for level, first, blob in new:
            while len(self.levels) <= level:
                self.levels.append(bytearray())
            assert len(self.levels[level]) == first * 32
            self.levels[level] += blob
        self.size += len(hashes) // HASH_SIZE
        return new

    def append(self, leaves: Iterable[bytes]) -> None:
        self.append_hashes(hash_leaves(leaves))


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
