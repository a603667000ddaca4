"""Signed checkpoints: the signed-note format, keys from the environment, append-only storage, and
truncation or rewriting of the tree caught by a saved checkpoint."""

from __future__ import annotations

import base64
from datetime import date

import polars as pl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipelines.config import ConfigError
from pipelines.config.secrets import signer_from_secret
from transforms.checkpoints import (
    CHECKPOINT_KEY_ENV, MERKLE_CHECKPOINTS, Checkpoint, CheckpointError, Signer, Verifier, checkpoint_tree,
    latest_checkpoint, open_note, parse_note, read_checkpoints, sign_checkpoint, sign_note, signer_from_env,
    verify_checkpoint, verify_checkpoints_consistent, verify_tree_against_checkpoint,
)
from transforms.lake import Lake
from transforms.merkle import MERKLE_LEAVES, MERKLE_NODES, DeltaTree, MemoryTree

ORIGIN = "example.com/activitylog"

# The example of the Go signed-note implementation (golang.org/x/mod/sumdb/note).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
                     "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def _tree(n: int) -> MemoryTree:
    return MemoryTree.from_leaves(i.to_bytes(4, "big") for i in range(n))


# ------------------------------------------------------------------------------------------ signed notes

def test_the_go_note_example():
    signer = Signer.from_text(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert signer.skey == GO_SKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    text, signed = open_note(GO_NOTE, [Verifier.from_vkey(GO_VKEY)])
    assert text == GO_TEXT and [v.name for v in signed] == ["PeterNeumann"]


def test_checkpoint_round_trip():
    signer = Signer.generate(ORIGIN)
    tree = _tree(13)
    note = sign_checkpoint(Checkpoint(ORIGIN, 13, tree.root()), signer)
    body = note.split("\n\n")[0] + "\n"
    assert body == f"{ORIGIN}\n13\n{base64.b64encode(tree.root()).decode()}\n"
    assert note.splitlines()[-1].startswith(f"\u2014 {ORIGIN} ")
    checkpoint = verify_checkpoint(note, signer.verifier.vkey)
    assert checkpoint == Checkpoint(ORIGIN, 13, tree.root())
    # Extension lines round trip too.
    extended = Checkpoint(ORIGIN, 13, tree.root(), ("ext one",))
    assert verify_checkpoint(sign_checkpoint(extended, signer), signer.verifier) == extended


def test_wrong_key_and_altered_notes_are_rejected():
    signer, other = Signer.generate(ORIGIN), Signer.generate(ORIGIN)
    tree = _tree(13)
    note = sign_checkpoint(Checkpoint(ORIGIN, 13, tree.root()), signer)
    with pytest.raises(CheckpointError, match="not signed by a known key"):
        verify_checkpoint(note, other.verifier)
    altered_size = note.replace(f"{ORIGIN}\n13\n", f"{ORIGIN}\n12\n")
    altered_root = note.replace(base64.b64encode(tree.root()).decode(), base64.b64encode(tree.root(12)).decode())
    altered_origin = note.replace(ORIGIN + "\n", "example.org/other\n", 1)
    for bad in (altered_size, altered_root):
        with pytest.raises(CheckpointError, match="invalid signature"):
            verify_checkpoint(bad, signer.verifier)
    with pytest.raises(CheckpointError):
        verify_checkpoint(altered_origin, signer.verifier)
    # A flipped bit anywhere in the signature.
    text, (sig,) = parse_note(note)
    for bit in (0, 100, 511):
        raw = bytearray(sig.signature)
        raw[bit // 8] ^= 1 << (bit % 8)
        forged = text + "\n" + sig.__class__(sig.name, sig.key_id, bytes(raw)).line()
        with pytest.raises(CheckpointError):
            verify_checkpoint(forged, signer.verifier)
    # The same key under another name does not verify.
    renamed = Verifier("example.com/other", signer.verifier.public_key)
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, renamed)
    # Another origin than expected.
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(note, signer.verifier, origin="example.com/else")


def test_unknown_signatures_are_ignored_and_cosignatures_kept():
    signer, witness = Signer.generate(ORIGIN), Signer.generate("witness.example")
    note = sign_note(Checkpoint(ORIGIN, 1, _tree(1).root()).body(), [witness, signer])
    _, signed = open_note(note, [signer.verifier, witness.verifier])
    assert {v.name for v in signed} == {ORIGIN, "witness.example"}
    assert verify_checkpoint(note, signer.verifier).size == 1


@pytest.mark.parametrize("note", [
    "no signatures\n",
    "text\n\n",
    "text\n\n- name c2ln\n",
    f"text\n\n\u2014 bad+name {base64.b64encode(bytes(68)).decode()}\n",
    "text\n\n\u2014 name !!!\n",
    "text\n\n\u2014 name AAAA\n",
])
def test_malformed_notes(note):
    with pytest.raises(CheckpointError):
        open_note(note, [Signer.generate("name").verifier])


@pytest.mark.parametrize("body", [
    "origin\n13\n", "origin\n013\n" + base64.b64encode(bytes(32)).decode() + "\n",
    "origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
    "origin\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
    "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
    "origin\n1\n" + base64.b64encode(bytes(32)).decode(),
])
def test_malformed_checkpoint_bodies(body):
    with pytest.raises(CheckpointError):
        Checkpoint.from_body(body)


def test_keys():
    with pytest.raises(CheckpointError):
        Signer.generate("has space")
    with pytest.raises(CheckpointError):
        Verifier.from_vkey(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(CheckpointError):
        Verifier.from_vkey("name+c74f20a3")
    with pytest.raises(CheckpointError):
        Signer.from_text(GO_SKEY.replace("c74f20a3", "00000000"))
    with pytest.raises(CheckpointError):
        Signer.from_text("not a key", name=ORIGIN)


# ---------------------------------------------------------------------------------------- the key's source

def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_signer_from_env_reference(monkeypatch):
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("LOG_KEY", _pem(key))
    signer = signer_from_secret({"env": "LOG_KEY"}, ORIGIN)
    assert signer.name == ORIGIN
    assert signer.verifier.public_key == Signer(ORIGIN, key).verifier.public_key
    monkeypatch.setenv("LOG_KEY", GO_SKEY)
    assert signer_from_secret({"env": "LOG_KEY"}, ORIGIN).name == "PeterNeumann"
    with pytest.raises(ConfigError, match="not a literal"):
        signer_from_secret(GO_SKEY, ORIGIN)
    monkeypatch.delenv("LOG_KEY")
    with pytest.raises(ConfigError, match="LOG_KEY"):
        signer_from_secret({"env": "LOG_KEY"}, ORIGIN)
    monkeypatch.delenv(CHECKPOINT_KEY_ENV, raising=False)
    assert signer_from_env(ORIGIN) is None
    monkeypatch.setenv(CHECKPOINT_KEY_ENV, _pem(key))
    assert signer_from_env(ORIGIN).verifier.public_key == signer.verifier.public_key


# ------------------------------------------------------------------------------- consistency and storage

def test_consistency_between_two_checkpoints():
    signer = Signer.generate(ORIGIN)
    tree = _tree(20)
    old = verify_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 7, tree.root(7)), signer), signer.verifier)
    new = verify_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 20, tree.root()), signer), signer.verifier)
    verify_checkpoints_consistent(old, new, tree.consistency_proof(7, 20))
    with pytest.raises(CheckpointError, match="inconsistent with checkpoint 7"):
        verify_checkpoints_consistent(old, new, tree.consistency_proof(6, 20))
    forked = Checkpoint(ORIGIN, 20, MemoryTree.from_leaves([b"x"] * 20).root())
    with pytest.raises(CheckpointError):
        verify_checkpoints_consistent(old, forked, tree.consistency_proof(7, 20))
    with pytest.raises(CheckpointError, match="different roots"):
        verify_checkpoints_consistent(new, forked, [])
    with pytest.raises(CheckpointError, match="older"):
        verify_checkpoints_consistent(new, old, [])
    with pytest.raises(CheckpointError, match="different logs"):
        verify_checkpoints_consistent(old, Checkpoint("other", 20, tree.root()), tree.consistency_proof(7, 20))


def _append(tree: DeltaTree, start: int, count: int, tag: bytes = b""):
    tree.append([tag + i.to_bytes(4, "big") for i in range(start, start + count)],
                [f"evt-{i}" for i in range(start, start + count)], [date(2024, 1, 1)] * count)


def test_checkpoints_are_stored_append_only(tmp_path):
    lake = Lake.at(tmp_path)
    signer = Signer.generate(ORIGIN)
    tree = DeltaTree(lake)
    _append(tree, 0, 10)
    first = checkpoint_tree(tree, signer)
    _append(tree, 10, 5)
    second = checkpoint_tree(tree, signer)
    rows = read_checkpoints(lake)
    assert rows["tree_size"].to_list() == [10, 15] and rows["note"].to_list() == [first, second]
    assert latest_checkpoint(lake) == second
    assert rows["root_hash"][1] == tree.root()
    verify_tree_against_checkpoint(tree, first, signer.verifier)
    verify_tree_against_checkpoint(DeltaTree(Lake.at(tmp_path)), second, signer.verifier.vkey)
    # Nothing but appends in the table's history.
    history = lake.table(MERKLE_CHECKPOINTS).history()
    assert {h["operation"] for h in history} <= {"WRITE", "CREATE TABLE"}


def _truncate(lake: Lake, size: int) -> None:
    """What an operator with write access could do: delete the newest leaves and their nodes."""
    lake.table(MERKLE_LEAVES).delete(f"index >= {size}")
    nodes = lake.table(MERKLE_NODES)
    for level in range(0, 8):
        nodes.delete(f"level = {level} AND index >= {size >> level}")
    lake.forget(MERKLE_LEAVES)
    lake.forget(MERKLE_NODES)


def test_truncating_the_tree_fails_against_a_saved_checkpoint(tmp_path):
    lake = Lake.at(tmp_path)
    signer = Signer.generate(ORIGIN)
    tree = DeltaTree(lake)
    _append(tree, 0, 50)
    saved = checkpoint_tree(tree, signer)
    _truncate(lake, 37)
    truncated = DeltaTree(lake)
    assert truncated.size == 37
    with pytest.raises(CheckpointError, match="smaller than checkpoint 50"):
        verify_tree_against_checkpoint(truncated, saved, signer.verifier)
    # Rewritten newest leaves and nodes, grown back past the checkpoint's size: the proof fails.
    _append(truncated, 37, 20, tag=b"forged")
    assert truncated.size == 57
    with pytest.raises(CheckpointError, match="inconsistent with checkpoint 50"):
        verify_tree_against_checkpoint(truncated, saved, signer.verifier)
    # …and the log refuses to sign the rewritten tree.
    with pytest.raises(CheckpointError, match="inconsistent with checkpoint 50"):
        checkpoint_tree(truncated, signer)
    assert read_checkpoints(lake).height == 1


def test_a_rewritten_stored_node_fails_against_a_saved_checkpoint(tmp_path):
    lake = Lake.at(tmp_path)
    signer = Signer.generate(ORIGIN)
    tree = DeltaTree(lake)
    _append(tree, 0, 40)
    saved = checkpoint_tree(tree, signer)
    _append(tree, 40, 8)
    # Replace the hash of the complete subtree of leaves 0…31 (level 5, index 0).
    nodes = pl.read_delta(lake.uri(MERKLE_NODES))
    forged = nodes.with_columns(pl.when((pl.col("level") == 5) & (pl.col("index") == 0))
                                .then(pl.lit(bytes(32))).otherwise(pl.col("hash")).alias("hash"))
    forged.write_delta(lake.uri(MERKLE_NODES), mode="overwrite", delta_write_options={"partition_by": ["level"]})
    lake.forget(MERKLE_NODES)
    with pytest.raises(CheckpointError, match="inconsistent with checkpoint 40"):
        verify_tree_against_checkpoint(DeltaTree(lake), saved, signer.verifier)


def test_a_checkpoint_signed_by_another_key_is_refused(tmp_path):
    lake = Lake.at(tmp_path)
    tree = DeltaTree(lake)
    _append(tree, 0, 5)
    checkpoint_tree(tree, Signer.generate(ORIGIN))
    with pytest.raises(CheckpointError, match="not signed by a known key"):
        checkpoint_tree(tree, Signer.generate(ORIGIN))
