"""Ed25519 keys in the Go ``note`` package's formats, and C2SP signed notes: signing, parsing and
opening a note against known verifier keys (see :mod:`transforms.checkpoints`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_KEY_ENV = "ACTIVITYLOG_CHECKPOINT_KEY"
ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100


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


def parse_vkey(vkey: str, algorithm: int, *, what: str, kind: str, error: type[Exception],
               check_name: Callable[[str], None] | None = None) -> tuple[str, bytes, bytes]:
    """(name, key ID, public key) of a key as text, ``<name>+<hex key ID>+<base64(algorithm ‖ key)>``
    (a verifier key, a witness key); ``error`` says what is wrong. The caller checks the key ID."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise error(f"a {what} key is <name>+<hex key ID>+<base64 key>")
    name, hex_id, encoded = parts
    if check_name is not None:
        check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise error(f"malformed {what} key") from None
    if len(raw) != 33 or raw[0] != algorithm or len(hex_id) != 8:
        raise error(f"not an {kind} key")
    return name, wanted, raw[1:]


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
        name, wanted, public = parse_vkey(vkey, ALG_ED25519, what="verifier", kind="Ed25519 verifier",
                                          error=CheckpointError, check_name=_check_name)
        verifier = cls(name, public)
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
