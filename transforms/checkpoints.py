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

The signing key comes from the environment: ``{env: NAME}`` in the configuration
(:func:`pipelines.config.resolve_secret`), :data:`CHECKPOINT_KEY_ENV` by default. Its key name is the
log's origin unless the ``PRIVATE+KEY+`` form names it.

``merkle_checkpoints`` (this module its only writer) holds one row per signed checkpoint: ``tree_size``
(Int64), ``root_hash`` (Binary), ``origin`` (String), ``note`` (String, the whole signed note),
``signed_at`` (Datetime UTC). Rows are only ever appended, and a new checkpoint is stored only when the
tree proves consistent with the last stored one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import polars as pl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from transforms.lake import Lake
from transforms.merkle import HASH_SIZE, MerkleError, verify_consistency

MERKLE_CHECKPOINTS = "merkle_checkpoints"
CHECKPOINT_KEY_ENV = "ACTIVITYLOG_CHECKPOINT_KEY"
ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
CHECKPOINTS_SCHEMA = {
    "tree_size": pl.Int64, "root_hash": pl.Binary, "origin": pl.String, "note": pl.String,
    "signed_at": pl.Datetime("us", "UTC"),
}


class CheckpointError(Exception):
    """A malformed note or checkpoint, a signature that does not verify, or checkpoints that disagree."""


# ------------------------------------------------------------------------------------------------- keys

def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise CheckpointError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key ID of an Ed25519 key: ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    name: str
    public_key: bytes  #: 32 raw bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key: ``<name>+<hex key ID>+<base64(0x01 ‖ public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> "Verifier":
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("a verifier key is <name>+<hex key ID>+<base64 key>")
        name, hex_id, encoded = parts
        _check_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise CheckpointError("malformed verifier key") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519 or len(hex_id) != 8:
            raise CheckpointError("not an Ed25519 verifier key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted:
            raise CheckpointError("verifier key ID does not match its name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, _raw_public(self.private_key.public_key()))

    @property
    def skey(self) -> str:
        """The private key in the Go ``note`` format (a secret: keep it in the environment only)."""
        seed = self.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+"
                f"{base64.b64encode(bytes([ALG_ED25519]) + seed).decode()}")

    @classmethod
    def generate(cls, name: str) -> "Signer":
        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str, name: str | None = None) -> "Signer":
        """A signer from ``PRIVATE+KEY+…`` (its own name) or a PEM Ed25519 private key (``name``)."""
        text = text.strip()
        if text.startswith("PRIVATE+KEY+"):
            parts = text.split("+", 4)
            if len(parts) != 5:
                raise CheckpointError("a signer key is PRIVATE+KEY+<name>+<hex key ID>+<base64 key>")
            _, _, key_name, hex_id, encoded = parts
            _check_name(key_name)
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise CheckpointError("malformed signer key") from None
            if len(raw) != 33 or raw[0] != ALG_ED25519:
                raise CheckpointError("not an Ed25519 signer key")
            signer = cls(key_name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
            if signer.verifier.key_id.hex() != hex_id.lower():
                raise CheckpointError("signer key ID does not match its name and key")
            return signer
        if name is None:
            raise CheckpointError("a PEM key needs a key name")
        _check_name(name)
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise CheckpointError("the checkpoint key is neither PRIVATE+KEY+… nor a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError("the checkpoint key must be an Ed25519 key")
        return cls(name, key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def signer_from_secret(secret: Any, origin: str, where: str = "checkpoints.signing_key") -> Signer:
    """The signer configured as ``{env: NAME}`` (a mapping or a :class:`pipelines.config.SecretRef`)."""
    from pipelines.config import resolve_secret

    return Signer.from_text(resolve_secret(secret, where), name=origin)


def signer_from_env(origin: str, env: str = CHECKPOINT_KEY_ENV) -> Signer | None:
    """The signer from the environment variable ``env``, or None when it is not set."""
    value = os.environ.get(env)
    return Signer.from_text(value, name=origin) if value else None


# ---------------------------------------------------------------------------------------- signed notes

@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("a note's text must end with a newline")
    if "\n\n" in text:
        raise CheckpointError("a note's text must not contain a blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("a note's text must not contain control characters")


def sign_note(text: str, signers: Sequence[Signer], existing: Sequence[NoteSignature] = ()) -> str:
    """The signed note: ``text``, a blank line, the existing signatures and one per signer."""
    _check_text(text)
    sigs = list(existing) + [NoteSignature(s.name, s.verifier.key_id, s.sign(text.encode())) for s in signers]
    if not sigs:
        raise CheckpointError("a signed note needs a signature")
    return text + "\n" + "".join(sig.line() for sig in sigs)


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text and the signatures of a signed note (syntax only; nothing verified)."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("malformed note: no signature block")
    text, block = note[:split + 1], note[split + 2:]
    _check_text(text)
    sigs = []
    for line in block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("malformed signature line")
        parts = line[len(SIGNATURE_PREFIX):].split(" ")
        if len(parts) != 2:
            raise CheckpointError("malformed signature line")
        name, encoded = parts
        _check_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError("malformed signature line") from None
        if len(raw) < 5:
            raise CheckpointError("malformed signature line")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    if not sigs:
        raise CheckpointError("malformed note: no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise CheckpointError("too many signatures")
    return text, sigs


def open_note(note: str, verifiers: Iterable[Verifier]) -> tuple[str, list[Verifier]]:
    """The text of a note and the known verifiers that signed it. Signatures by unknown keys are
    ignored; a signature by a known key that does not verify rejects the note, and so does a note that
    no known key signed."""
    text, sigs = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    signed: list[Verifier] = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None or verifier in signed:
            continue
        if not verifier.verify(text.encode(), sig.signature):
            raise CheckpointError(f"invalid signature by {sig.name}")
        signed.append(verifier)
    if not signed:
        raise CheckpointError("note not signed by a known key")
    return text, signed


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


def create_key_file(path, name: str) -> None:
    """Write a fresh signer's key to ``path`` (mode 0600, fsync'd) unless the file exists: created
    exclusively, so when two processes race the first one's key is the one kept."""
    import os

    signer = Signer.generate(name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return
    try:
        os.write(fd, (signer.skey + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
