"""A witness: a second party that cosigns the log's checkpoints only while the log stays append-only.

The witness has its own Ed25519 key and its own state, in a directory of its own (outside the lake; by
default ``$DAGSTER_HOME/activitylog/witness``, ``ACTIVITYLOG_WITNESS_DIR`` to move it, e.g. onto a volume
that the lake's writers cannot change). For every log (origin) it remembers the last checkpoint it
cosigned and the log's verifier key (the first key it saw for that origin). It cosigns a new checkpoint
only when

* the checkpoint is signed by that key, for that origin;
* it is not smaller than the last one cosigned; and
* a consistency proof (RFC 9162 §2.1.4, supplied by the log) shows the last one is a prefix of it.

Otherwise it refuses, naming the reason, and its state is left as it was: a truncated or forked log can
no longer get a cosignature, and the state keeps the evidence (``verify`` compares the lake's tree with
the last cosigned checkpoint).

Cosignatures follow C2SP tlog-cosignature (``cosignature/v1``): a signed-note signature line by the
witness's key name, its key ID ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``, and a
``timestamped_signature`` (8-byte big-endian POSIX time ‖ Ed25519 signature) over::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint body>

Files in the witness directory: ``witness.key`` (the private key, ``PRIVATE+KEY+…``, mode 0600),
``witness.vkey`` (its verifier key, with signature type 0x04, to give to whoever checks cosignatures),
``state.json`` (per origin: the last cosigned note, its size and root, the log's verifier key, the lake
URI it was asked for), replaced atomically, and ``lock`` (one cosigning at a time).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from transforms.checkpoints import (
    create_key_file,
    SIGNATURE_PREFIX, Checkpoint, CheckpointError, NoteSignature, Signer, Verifier, parse_note, verify_checkpoint,
)
from transforms.checkpoints.notes import parse_vkey
from transforms.merkle import MerkleError, verify_consistency

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_HEADER = "cosignature/v1\n"
KEY_FILE, VKEY_FILE, STATE_FILE, LOCK_FILE = "witness.key", "witness.vkey", "state.json", "lock"


class WitnessError(Exception):
    """A checkpoint the witness refuses to cosign (the message says why), or a damaged witness state."""


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class CosignerKey:
    """A witness's public key: ``<name>+<hex key ID>+<base64(0x04 ‖ public key)>`` as text."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        raw = bytes([ALG_COSIGNATURE_V1]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> "CosignerKey":
        name, wanted, public = parse_vkey(vkey, ALG_COSIGNATURE_V1, what="witness",
                                          kind="Ed25519 cosignature/v1", error=WitnessError)
        key = cls(name, public)
        if key.key_id != wanted:
            raise WitnessError("witness key ID does not match its name and key")
        return key

    def cosignature_time(self, note: str) -> int:
        """The time of this witness's valid cosignature on ``note``; raises :class:`WitnessError` when
        the note carries none (or a bad one)."""
        text, signatures = parse_note(note)
        for sig in signatures:
            if sig.name != self.name or sig.key_id != self.key_id:
                continue
            if len(sig.signature) != 8 + 64:
                raise WitnessError(f"malformed cosignature by {self.name}")
            timestamp = struct.unpack(">Q", sig.signature[:8])[0]
            try:
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                    sig.signature[8:], cosigned_message(text, timestamp))
            except InvalidSignature:
                raise WitnessError(f"invalid cosignature by {self.name}") from None
            return timestamp
        raise WitnessError(f"no cosignature by witness {self.name}")


@dataclass
class Witnessed:
    """What the witness last cosigned for one log."""

    origin: str
    size: int
    root: bytes
    note: str  #: the checkpoint with the log's signature and the witness's cosignature
    log_vkey: str
    lake: str | None


class Witness:
    """A witness kept in ``directory`` (created with a fresh key on first use)."""

    def __init__(self, directory: str | Path, name: str = "activitylog-witness"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.signer = _load_or_create_key(self.directory / KEY_FILE, name)
        self.key = CosignerKey(self.signer.name, self.signer.verifier.public_key)
        vkey = self.directory / VKEY_FILE
        if not vkey.exists() or vkey.read_text().strip() != self.key.vkey:
            _write_atomic(vkey, self.key.vkey + "\n", 0o644)

    # ---------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Witnessed]:
        return read_state(self.directory)

    def last(self, origin: str) -> Witnessed | None:
        return self.state().get(origin)

    # ------------------------------------------------------------------------------- cosigning
    def cosign(self, note: str, log_verifier: Verifier, proof: Sequence[bytes] = (), *,
               lake: str | None = None, now: int | None = None) -> str:
        """Cosign the signed checkpoint ``note`` if it extends the last one cosigned for its origin
        (``proof``: the consistency proof from that size). Returns the note with the cosignature added.
        Raises :class:`WitnessError` naming why it refuses."""
        with self._locked():
            text, signatures = parse_note(note)
            origin = Checkpoint.from_body(text).origin
            state = self.state()
            last = state.get(origin)
            if last is not None and last.log_vkey != log_verifier.vkey:
                raise WitnessError(f"checkpoint of {origin} is not signed by the key the witness knows for it")
            try:
                checkpoint = verify_checkpoint(note, log_verifier, origin)
            except CheckpointError as error:
                raise WitnessError(f"checkpoint refused: {error}") from None
            if last is not None:
                if checkpoint.size < last.size:
                    raise WitnessError(f"checkpoint {checkpoint.size} is smaller than witnessed checkpoint {last.size}")
                try:
                    verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
                except MerkleError as error:
                    raise WitnessError(f"checkpoint {checkpoint.size} is inconsistent with witnessed checkpoint "
                                       f"{last.size}: {error}") from None
            timestamp = int(time.time() if now is None else now)
            signature = self.signer.sign(cosigned_message(text, timestamp))
            mine = NoteSignature(self.key.name, self.key.key_id, struct.pack(">Q", timestamp) + signature)
            others = [s for s in signatures if (s.name, s.key_id) != (mine.name, mine.key_id)]
            cosigned = text + "\n" + "".join(s.line() for s in [*others, mine])
            state[origin] = Witnessed(origin, checkpoint.size, checkpoint.root, cosigned, log_verifier.vkey,
                                      lake if lake is not None else (last.lake if last else None))
            _write_state(self.directory, state)
            return cosigned

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(directory: str | Path) -> dict[str, Witnessed]:
    """origin → what the witness in ``directory`` last cosigned (empty when it has cosigned nothing).
    Each entry's cosignature is checked against the witness's own key."""
    directory = Path(directory)
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        key = CosignerKey.from_vkey((directory / VKEY_FILE).read_text())
        out = {}
        for origin, entry in doc["logs"].items():
            witnessed = Witnessed(origin, int(entry["size"]), base64.b64decode(entry["root"], validate=True),
                                  entry["note"], entry["log_vkey"], entry.get("lake"))
            key.cosignature_time(witnessed.note)
            checkpoint = Checkpoint.from_body(parse_note(witnessed.note)[0])
            if (checkpoint.origin, checkpoint.size, checkpoint.root) != (origin, witnessed.size, witnessed.root):
                raise WitnessError("an entry does not match its cosigned checkpoint")
            out[origin] = witnessed
        return out
    except (OSError, ValueError, KeyError, TypeError, binascii.Error, CheckpointError) as error:
        raise WitnessError(f"the witness state in {directory} is damaged: {error}") from None


def _write_state(directory: Path, state: dict[str, Witnessed]) -> None:
    doc = {"logs": {origin: {"size": w.size, "root": base64.b64encode(w.root).decode(), "note": w.note,
                             "log_vkey": w.log_vkey, "lake": w.lake} for origin, w in sorted(state.items())}}
    _write_atomic(directory / STATE_FILE, json.dumps(doc, indent=1) + "\n", 0o600)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write a file whole or not at all: a temporary file beside it, synced, renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _load_or_create_key(path: Path, name: str) -> Signer:
    """The signer kept in ``path`` (``PRIVATE+KEY+…``), created once with mode 0600."""
    if not path.exists():
        create_key_file(path, name)
    text = path.read_text()
    if not text.strip():
        raise WitnessError(f"the key file {path} is empty")
    try:
        return Signer.from_text(text)
    except CheckpointError as error:
        raise WitnessError(f"the key file {path}: {error}") from None


__all__ = ["CosignerKey", "SIGNATURE_PREFIX", "Witness", "WitnessError", "Witnessed", "cosigned_message",
           "read_state"]
