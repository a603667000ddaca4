"""Where an export goes: a local path or ``s3://`` (through :mod:`transforms.storage`), never replacing
what is there."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterator

from destinations.exports.errors import ExportError
from transforms import storage

MANIFEST_SUFFIX = ".manifest.json"


def target(out: str, name: str, extension: str) -> tuple[str, str]:
    """(file URI, manifest URI). ``out`` ending in ``/`` (or an existing directory) is a directory."""
    is_dir = out.endswith("/") or (not out.startswith("s3://") and Path(out).is_dir())
    if is_dir:
        base = out.rstrip("/") + "/" + name
        return f"{base}.{extension}", f"{base}{MANIFEST_SUFFIX}"
    stem = re.sub(rf"\.{extension}$", "", out)
    return out if out.endswith(f".{extension}") else f"{out}.{extension}", f"{stem}{MANIFEST_SUFFIX}"


def exists(uri: str) -> bool:
    """A symbolic link counts, dangling or not: an export is never written through one."""
    try:
        return storage.exists(uri)
    except storage.StorageError as exc:
        raise ExportError(str(exc)) from None


def put(local: Path, uri: str) -> None:
    try:
        storage.put_file(local, uri)
    except storage.StorageError as exc:
        raise ExportError(str(exc)) from None


def read_bytes(uri: str) -> Iterator[bytes]:
    """Chunks of the object's bytes (local file or s3://)."""
    try:
        yield from storage.read_chunks(uri)
    except storage.StorageError as exc:
        raise ExportError(str(exc)) from None


def sha256_of(uri: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in read_bytes(uri):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
