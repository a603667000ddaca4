"""Tree heads and proofs over any source of complete-subtree hashes, and the tree in memory."""

from __future__ import annotations

from typing import Iterable, Protocol

from transforms.merkle.hashes import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleError,
    _consistency_ranges,
    _edge_keys,
    _fold,
    _inclusion_ranges,
    _new_nodes,
    _pieces,
    hash_leaves,
)


class NodeSource(Protocol):
    size: int

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of the given complete subtrees ``(level, index)``."""


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
