"""The tree math of RFC 6962 / RFC 9162: leaf and node hashes, the MTH, the complete subtrees a range
is made of, the ranges a proof is made of, and the nodes an append creates."""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import polars as pl

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


# ------------------------------------------------------------------------------------------ appending

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
