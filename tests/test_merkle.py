"""The Merkle tree: RFC 6962 test vectors, proofs at every index and size, tampering, Delta storage."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from transforms.lake import Lake
from transforms.merkle import (
    EMPTY_ROOT, MERKLE_LEAVES, MERKLE_NODES, DeltaTree, MemoryTree, MerkleError, _inclusion_ranges,
    leaf_hash, mth, node_hash, verify_consistency, verify_inclusion,
)

# The inputs of the RFC 6962 reference implementation's tests (certificate-transparency, also used by
# certificate-transparency-go and transparency-dev/merkle).
LEAVES = [bytes.fromhex(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path)
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# (size1, size2, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tree(n: int) -> MemoryTree:
    return MemoryTree.from_leaves(i.to_bytes(4, "big") for i in range(n))


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ------------------------------------------------------------------------------------- RFC test vectors

def test_empty_tree_root_is_the_hash_of_nothing():
    assert MemoryTree().root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert mth([]) == EMPTY_ROOT


def test_roots_of_the_reference_inputs_at_every_size():
    tree = MemoryTree()
    for n, leaf in enumerate(LEAVES, start=1):
        tree.append([leaf])
        assert tree.root().hex() == ROOTS[n - 1]
    # …and at every earlier size from the final tree, and from the RFC's recursive definition.
    for n in range(1, 9):
        assert tree.root(n).hex() == ROOTS[n - 1]
        assert mth([leaf_hash(x) for x in LEAVES[:n]]).hex() == ROOTS[n - 1]


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_inclusion_vectors(index, size, path):
    tree = MemoryTree.from_leaves(LEAVES)
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == path
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize("size1,size2,path", CONSISTENCY)
def test_consistency_vectors(size1, size2, path):
    tree = MemoryTree.from_leaves(LEAVES)
    proof = tree.consistency_proof(size1, size2)
    assert [p.hex() for p in proof] == path
    verify_consistency(size1, size2, bytes.fromhex(ROOTS[size1 - 1]), bytes.fromhex(ROOTS[size2 - 1]), proof)


def test_hash_domain_separation():
    assert leaf_hash(b"").hex() == ROOTS[0]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == ROOTS[1]
    # A leaf whose bytes are two concatenated hashes is not mistaken for their parent.
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)


# --------------------------------------------------------------------------------------- proofs, exhaustive

def test_every_proof_of_every_index_and_size_up_to_40():
    tree = _tree(40)
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(40)]
    for n in range(1, 41):
        root = tree.root(n)
        assert root == mth(hashes[:n])
        for i in range(n):
            verify_inclusion(i, n, hashes[i], tree.inclusion_proof(i, n), root)
        for m in range(0, n + 1):
            verify_consistency(m, n, tree.root(m), root, tree.consistency_proof(m, n))


@PROPERTY
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_batch_appends_build_the_same_tree(batches):
    whole = _tree(sum(batches))
    built, start = MemoryTree(), 0
    for count in batches:
        built.append(i.to_bytes(4, "big") for i in range(start, start + count))
        start += count
        assert built.root() == whole.root(start)
    assert built.levels == whole.levels


@PROPERTY
@given(st.integers(1, 300), st.data())
def test_inclusion_proofs_verify(n, data):
    tree = _tree(n)
    index = data.draw(st.integers(0, n - 1))
    size = data.draw(st.integers(index + 1, n))
    verify_inclusion(index, size, leaf_hash(index.to_bytes(4, "big")), tree.inclusion_proof(index, size), tree.root(size))


@PROPERTY
@given(st.integers(0, 300), st.data())
def test_consistency_proofs_verify(n, data):
    tree = _tree(n)
    m = data.draw(st.integers(0, n))
    verify_consistency(m, n, tree.root(m), tree.root(n), tree.consistency_proof(m, n))


def _shape(index: int, size: int) -> list[bool]:
    """Which side each sibling of the audit path is on: all that verification uses of the size."""
    return [start > index for start, _ in _inclusion_ranges(index, 0, size)]


@PROPERTY
@given(st.integers(2, 300), st.data())
def test_any_single_bit_change_of_an_inclusion_proof_fails(n, data):
    tree = _tree(n)
    index = data.draw(st.integers(0, n - 1))
    leaf, proof, root = leaf_hash(index.to_bytes(4, "big")), tree.inclusion_proof(index, n), tree.root()
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(MerkleError):
        verify_inclusion(index, n, _flip(leaf, bit), proof, root)
    with pytest.raises(MerkleError):
        verify_inclusion(index, n, leaf, proof, _flip(root, bit))
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(MerkleError):
            verify_inclusion(index, n, leaf, proof[:k] + [_flip(proof[k], bit)] + proof[k + 1:], root)
        with pytest.raises(MerkleError):
            verify_inclusion(index, n, leaf, proof[:-1], root)
    with pytest.raises(MerkleError):
        verify_inclusion(index, n, leaf, proof + [root], root)
    for b in range(n.bit_length() + 1):
        other = index ^ (1 << b)
        if other != index:
            with pytest.raises(MerkleError):
                verify_inclusion(other, n, leaf, proof, root)
        # The algorithm binds the size only through the path's shape (the checkpoint signs the size
        # with its root): a changed size verifies only if it gives this leaf the very same path shape.
        size = n ^ (1 << b)
        try:
            verify_inclusion(index, size, leaf, proof, root)
        except MerkleError:
            continue
        assert _shape(index, size) == _shape(index, n)


@PROPERTY
@given(st.integers(2, 300), st.data())
def test_any_single_bit_change_of_a_consistency_proof_fails(n, data):
    tree = _tree(n)
    m = data.draw(st.integers(1, n - 1))
    proof, root1, root2 = tree.consistency_proof(m, n), tree.root(m), tree.root(n)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(MerkleError):
        verify_consistency(m, n, _flip(root1, bit), root2, proof)
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root1, _flip(root2, bit), proof)
    k = data.draw(st.integers(0, len(proof) - 1))
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root1, root2, proof[:k] + [_flip(proof[k], bit)] + proof[k + 1:])
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root1, root2, proof[:-1])
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root1, root2, proof + [root2])
    # Changing the old size (with the old root kept) or both roots' order always fails.
    for b in range(n.bit_length() + 1):
        other = m ^ (1 << b)
        if 0 < other <= n and other != m:
            try:
                verify_consistency(other, n, root1, root2, proof)
            except MerkleError:
                continue
            # Only a size with the same proof shape can pass, and then it has the same tree head.
            assert len(tree.consistency_proof(other, n)) == len(proof) if other < n else True
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root2, root1, proof)


def test_fork_two_roots_for_one_size_fails():
    a, b = _tree(10), MemoryTree.from_leaves([b"x"] * 10)
    with pytest.raises(MerkleError, match="two different roots"):
        verify_consistency(10, 10, a.root(), b.root(), [])
    with pytest.raises(MerkleError):
        verify_consistency(6, 10, b.root(6), a.root(), a.consistency_proof(6, 10))


def test_bad_arguments():
    tree = _tree(5)
    with pytest.raises(MerkleError):
        tree.inclusion_proof(5, 5)
    with pytest.raises(MerkleError):
        tree.root(6)
    with pytest.raises(MerkleError):
        tree.consistency_proof(4, 3)
    with pytest.raises(MerkleError):
        verify_inclusion(0, 0, tree.root(), [], tree.root())
    with pytest.raises(MerkleError):
        verify_consistency(3, 2, tree.root(3), tree.root(2), [])
    with pytest.raises(MerkleError):
        verify_consistency(2, 5, tree.root(2), tree.root(5), [])


# --------------------------------------------------------------------------------------- Delta storage

def _append(tree: DeltaTree, start: int, count: int):
    return tree.append([i.to_bytes(4, "big") for i in range(start, start + count)],
                       [f"evt-{i}" for i in range(start, start + count)], [date(2024, 1, 1 + i % 28) for i in range(start, start + count)])


def test_delta_tree_matches_the_memory_tree(tmp_path):
    lake = Lake.at(tmp_path)
    tree = DeltaTree(lake)
    assert tree.size == 0 and tree.root() == EMPTY_ROOT
    start = 0
    for count in (1, 6, 1, 100, 37):
        result = _append(tree, start, count)
        assert result.first_index == start
        start += count
        assert result.size == start and result.root == _tree(start).root()
    reopened = DeltaTree(Lake.at(tmp_path))
    memory = _tree(start)
    assert reopened.size == start
    for n in (1, 7, 8, 64, 100, 145):
        assert reopened.root(n) == memory.root(n)
        for i in (0, n // 2, n - 1):
            assert reopened.inclusion_proof(i, n) == memory.inclusion_proof(i, n)
        assert reopened.consistency_proof(n // 3, n) == memory.consistency_proof(n // 3, n)
    assert reopened.index_of("evt-100") == 100 and reopened.index_of("nope") is None
    leaves = reopened.leaves(99, 102)
    assert leaves["index"].to_list() == [99, 100, 101]
    assert leaves["leaf_hash"].to_list() == [leaf_hash(i.to_bytes(4, "big")) for i in (99, 100, 101)]
    # Every complete subtree is stored exactly once.
    nodes = pl.read_delta(lake.uri(MERKLE_NODES))
    assert nodes.height == nodes.select("level", "index").n_unique()
    assert nodes.filter(pl.col("level") == 0).height == start


def test_a_proof_reads_only_log_n_nodes(tmp_path):
    tree = DeltaTree(Lake.at(tmp_path))
    _append(tree, 0, 1000)
    asked = []
    original = tree.nodes
    tree.nodes = lambda keys: (asked.append(set(keys)), original(keys))[1]
    tree.inclusion_proof(517)
    tree.consistency_proof(333)
    assert all(len(keys) <= 2 * 10 for keys in asked)


def test_a_proof_opens_only_log_n_node_files(tmp_path, monkeypatch):
    import transforms.merkle as merkle

    tree = DeltaTree(Lake.at(tmp_path))
    for batch in range(16):
        _append(tree, batch * 64, 64)
    memory = _tree(1024)
    opened = []
    real = merkle.pl.scan_parquet
    monkeypatch.setattr(merkle.pl, "scan_parquet", lambda path, **kw: (opened.append(path), real(path, **kw))[1])
    assert tree.inclusion_proof(700) == memory.inclusion_proof(700)
    assert len(opened) <= 10  # one file per level of the path
    opened.clear()
    assert tree.consistency_proof(333, 1000) == memory.consistency_proof(333, 1000)
    assert len(opened) <= 20
    # Without file statistics the same nodes come from one filtered scan of the table.
    monkeypatch.setattr(tree, "_files", lambda: None)
    assert tree.inclusion_proof(700) == memory.inclusion_proof(700)
    assert tree.root(1000) == memory.root(1000)


def test_ids_and_days_may_be_series(tmp_path):
    tree = DeltaTree(Lake.at(tmp_path))
    tree.append([b"a", b"b"], pl.Series(["e1", "e2"]), pl.Series([date(2024, 1, 1)] * 2))
    assert tree.leaves()["event_id"].to_list() == ["e1", "e2"]
    assert tree.root() == MemoryTree.from_leaves([b"a", b"b"]).root()


def test_an_append_interrupted_between_its_commits_is_redone(tmp_path):
    lake = Lake.at(tmp_path)
    tree = DeltaTree(lake)
    _append(tree, 0, 10)
    # A crash after the leaves' commit and before the nodes': leaf rows past the tree's size.
    stray = pl.read_delta(lake.uri(MERKLE_LEAVES)).filter(pl.col("index") < 3).with_columns(pl.col("index") + 10)
    lake.append(MERKLE_LEAVES, stray)
    tree = DeltaTree(lake)
    assert tree.size == 10
    _append(tree, 10, 5)
    leaves = pl.read_delta(lake.uri(MERKLE_LEAVES)).sort("index")
    assert leaves["index"].to_list() == list(range(15))
    assert tree.root() == _tree(15).root()


def test_appends_check_their_arguments(tmp_path):
    tree = DeltaTree(Lake.at(tmp_path))
    with pytest.raises(MerkleError):
        tree.append([b"a"], ["e1", "e2"], [date(2024, 1, 1)])
    with pytest.raises(MerkleError):
        tree.append_hashes(b"x" * 31, ["e"], [date(2024, 1, 1)])
    assert tree.append([], [], []).size == 0


@pytest.mark.slow
def test_one_million_leaves_build_in_seconds(tmp_path):
    import time

    count = 1_000_000
    leaves = [os.urandom(16) for _ in range(count)]
    tree = DeltaTree(Lake.at(tmp_path))
    started = time.perf_counter()
    tree.append(leaves, [str(i) for i in range(count)], [date(2024, 1, 1)] * count)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, elapsed
    verify_inclusion(123_456, count, leaf_hash(leaves[123_456]), tree.inclusion_proof(123_456), tree.root())


def test_the_size_is_bound_by_the_path_shape_and_the_signed_head():
    # RFC 9162's verification uses the size only for the path's shape: leaf 0's path in a tree of 3
    # also verifies as a path in a tree of 4 against the same root. A root only means something with
    # its size, which the signed checkpoint binds together (tests/test_checkpoints.py).
    tree = _tree(4)
    proof = tree.inclusion_proof(0, 3)
    verify_inclusion(0, 4, leaf_hash((0).to_bytes(4, "big")), proof, tree.root(3))
    assert _shape(0, 3) == _shape(0, 4)
    with pytest.raises(MerkleError):
        verify_inclusion(0, 4, leaf_hash((0).to_bytes(4, "big")), proof, tree.root(4))
