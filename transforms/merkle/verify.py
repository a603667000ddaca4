"""Checking proofs with nothing but the hashes: RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency), step by step."""

from __future__ import annotations

from typing import Sequence

from transforms.merkle.hashes import HASH_SIZE, MerkleError, node_hash


def _lsb(x: int) -> int:
    return x & 1


def _step(fn: int, sn: int) -> tuple[bool, int, int]:
    """One step of the RFC's walk up the path (the loop body of §2.1.3.2 step 5 and §2.1.4.2 step 6):
    whether the proof's hash is the left sibling, and the next ``fn``, ``sn``."""
    if _lsb(fn) or fn == sn:
        if not _lsb(fn):
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        return True, fn >> 1, sn >> 1
    return False, fn >> 1, sn >> 1


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
        left, fn, sn = _step(fn, sn)
        r = node_hash(p, r) if left else node_hash(r, p)
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
        left, fn, sn = _step(fn, sn)
        if left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    # 7.
    if sn != 0:
        raise MerkleError("consistency proof too short")
    if fr != root1:
        raise MerkleError(f"consistency proof does not match the root of tree size {size1}")
    if sr != root2:
        raise MerkleError(f"consistency proof does not match the root of tree size {size2}")
