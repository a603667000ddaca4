"""Signed tree heads: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519, stored append-only.

A checkpoint body is three lines (and optional extension lines), each ending in a newline::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

A signed note is the body, a blank line, and one signature line per signer::

    — <key name> <base64(key ID ‖ Ed25519 signature over the body)>

with the key ID the first 4 bytes of ``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)``. Public keys
travel as verifier keys (``<name>+<hex key ID>+<base64(0x01 ‖ public key)>``); private keys as
``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ seed)>`` (the Go ``note`` package's formats), or as a
PEM Ed25519 private key, like the digest signing key of :mod:`transforms.integrity`.

The signing key comes from the environment: :data:`CHECKPOINT_KEY_ENV` by default, or the variable an
``{env: NAME}`` in the configuration names (resolved by the configuration,
:func:`pipelines.config.secrets.signer_from_secret`). Its key name is the log's origin unless the
``PRIVATE+KEY+`` form names it.

``merkle_checkpoints`` (this module its only writer) holds one row per signed checkpoint: ``tree_size``
(Int64), ``root_hash`` (Binary), ``origin`` (String), ``note`` (String, the whole signed note),
``signed_at`` (Datetime UTC). Rows are only ever appended, and a new checkpoint is stored only when the
tree proves consistent with the last stored one.

Keys and signed notes live in :mod:`transforms.checkpoints.notes`; checkpoint bodies, their
verification and ``merkle_checkpoints`` here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import polars as pl

from transforms.checkpoints.notes import (  # noqa: F401  (the names callers import from transforms.checkpoints)
    ALG_ED25519,
    CHECKPOINT_KEY_ENV,
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    CheckpointError,
    NoteSignature,
    Signer,
    Verifier,
    create_key_file,
    key_id,
    open_note,
    parse_note,
    sign_note,
    signer_from_env,
)
from transforms.lake import Lake
from transforms.merkle import HASH_SIZE, MerkleError, verify_consistency

MERKLE_CHECKPOINTS = "merkle_checkpoints"
CHECKPOINTS_SCHEMA = {
    "tree_size": pl.Int64, "root_hash": pl.Binary, "origin": pl.String, "note": pl.String,
    "signed_at": pl.Datetime("us", "UTC"),
}


# ---------------------------------------------------------------------------------------- checkpoints

_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("invalid origin")
        if len(self.root) != HASH_SIZE or self.size < 0:
            raise CheckpointError("invalid tree size or root")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> "Checkpoint":
        if not text.endswith("\n"):
            raise CheckpointError("malformed checkpoint: no final newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0] or not _SIZE.fullmatch(lines[1]) or any(not x for x in lines[3:]):
            raise CheckpointError("malformed checkpoint")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            raise CheckpointError("malformed checkpoint root hash") from None
        if len(root) != HASH_SIZE or base64.b64encode(root).decode() != lines[2]:
            raise CheckpointError("malformed checkpoint root hash")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.body(), [signer])


def verify_checkpoint(note: str, verifier: Verifier | str, origin: str | None = None) -> Checkpoint:
    """The checkpoint of a signed note that ``verifier`` (a :class:`Verifier` or a vkey) signed. Its
    origin must be ``origin`` when given (else the verifier's key name)."""
    verifier = Verifier.from_vkey(verifier) if isinstance(verifier, str) else verifier
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.from_body(text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not {expected!r}")
    return checkpoint


def verify_checkpoints_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` extends ``old`` (same origin, consistency proof from ``old.size``)."""
    if old.origin != new.origin:
        raise CheckpointError(f"checkpoints of different logs: {old.origin!r} and {new.origin!r}")
    if new.size < old.size:
        raise CheckpointError(f"checkpoint of size {new.size} is older than {old.size}")
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except MerkleError as error:
        raise CheckpointError(f"checkpoint {new.size} is inconsistent with checkpoint {old.size}: {error}") from None


# -------------------------------------------------------------------------------------------- storage

def read_checkpoints(lake: Lake) -> pl.DataFrame:
    """Every stored checkpoint, oldest first."""
    scan = lake.scan(MERKLE_CHECKPOINTS)
    if scan is None:
        return pl.DataFrame(schema=CHECKPOINTS_SCHEMA)
    return scan.collect().sort("signed_at", "tree_size")


def latest_checkpoint(lake: Lake) -> str | None:
    """The newest stored signed note, or None."""
    rows = read_checkpoints(lake)
    return None if rows.height == 0 else rows["note"][-1]


def checkpoint_tree(tree, signer: Signer, origin: str | None = None, *, lake: Lake | None = None) -> str:
    """Sign the tree head of ``tree`` (a :class:`transforms.merkle.DeltaTree`, or any tree with
    ``size``, ``root()`` and ``consistency_proof()``) and append it to ``merkle_checkpoints``.

    Refused when the tree is not consistent with the last stored checkpoint (a truncated or rewritten
    tree), verified against the stored checkpoint's own signature, so nothing that contradicts an
    earlier signed head gets signed."""
    lake = lake if lake is not None else tree.lake
    origin = origin or signer.name
    checkpoint = Checkpoint(origin, tree.size, tree.root())
    last = latest_checkpoint(lake)
    if last is not None:
        previous = verify_checkpoint(last, signer.verifier, origin)
        if previous.size > tree.size:
            raise CheckpointError(f"the tree (size {tree.size}) is smaller than checkpoint {previous.size}")
        verify_checkpoints_consistent(previous, checkpoint, tree.consistency_proof(previous.size, tree.size))
    note = sign_checkpoint(checkpoint, signer)
    lake.append(MERKLE_CHECKPOINTS, pl.DataFrame({
        "tree_size": [checkpoint.size], "root_hash": [checkpoint.root], "origin": [origin], "note": [note],
        "signed_at": [datetime.now(timezone.utc)],
    }, schema=CHECKPOINTS_SCHEMA))
    return note


def verify_tree_against_checkpoint(tree, note: str, verifier: Verifier | str, origin: str | None = None) -> Checkpoint:
    """Check that ``tree`` extends the signed checkpoint ``note`` (a consistency proof from the stored
    nodes). Raises :class:`CheckpointError` naming the checkpoint's size when it does not."""
    checkpoint = verify_checkpoint(note, verifier, origin)
    if tree.size < checkpoint.size:
        raise CheckpointError(f"the tree (size {tree.size}) is smaller than checkpoint {checkpoint.size}")
    current = Checkpoint(checkpoint.origin, tree.size, tree.root())
    try:
        proof = tree.consistency_proof(checkpoint.size, tree.size)
    except MerkleError as error:
        raise CheckpointError(f"inconsistent with checkpoint {checkpoint.size}: {error}") from None
    verify_checkpoints_consistent(checkpoint, current, proof)
    return checkpoint
