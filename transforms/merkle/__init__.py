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

The tree math lives in :mod:`transforms.merkle.hashes`, proof checking in :mod:`transforms.merkle.verify`,
tree heads and proofs over any node source (and the tree in memory) in :mod:`transforms.merkle.proofs`,
the stored tree in :mod:`transforms.merkle.delta`.
"""

from __future__ import annotations

import polars as pl  # noqa: F401  (transforms.merkle.pl: the Polars the stored tree reads with)

from transforms.merkle.delta import AppendResult, DeltaTree  # noqa: F401  (the names callers import from here)
from transforms.merkle.hashes import (  # noqa: F401
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    LEAVES_SCHEMA,
    MERKLE_LEAVES,
    MERKLE_NODES,
    NODE_PREFIX,
    NODES_SCHEMA,
    MerkleError,
    _consistency_ranges,
    _edge_keys,
    _fold,
    _inclusion_ranges,
    _new_nodes,
    _pieces,
    _split,
    hash_leaves,
    leaf_hash,
    mth,
    node_hash,
)
from transforms.merkle.proofs import MemoryTree, NodeSource, _Proofs  # noqa: F401
from transforms.merkle.verify import root_from_inclusion_proof, verify_consistency, verify_inclusion  # noqa: F401
