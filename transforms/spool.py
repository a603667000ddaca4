"""The publisher API's durable side: spool files in the landing area and idempotency records.

Events accepted over HTTP are made durable *before* the response: each request's accepted events are
one NDJSON file in the landing area, under ``publish/<day>/``. The ingest then reads them like any
landing file (nothing bypasses validation, dedupe by id, the ledger or the digests).

A spool file never appears partial. Locally it is written under a hidden staging directory of the
landing area (``.publish/staging/``, a name ``*.tmp``: the landing walk never reads either), flushed and
``fsync``'d, renamed into place in one step, and the directory is ``fsync``'d. On S3 the object is
one PUT of the whole file (an object appears when its upload completes).

Idempotency records (``.publish/idempotency/<sha256>.json``, hidden from the ingest too) remember the
exact response given to one ``Idempotency-Key`` of one API key, for a time to live. They are written
the same way, after the spool file: a crash in between leaves the events spooled and no record, so a
retry spools them again and the ingest counts the second copy as duplicates (same id, same content).

No Dagster, no FastAPI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from transforms.landing import _filesystem

SPOOL_DIR = "publish"
SYSTEM_DIR = ".publish"  # hidden: the landing walk never reads it
STAGING_DIR = f"{SYSTEM_DIR}/staging"
IDEMPOTENCY_DIR = f"{SYSTEM_DIR}/idempotency"
MAX_IDEMPOTENCY_KEY = 255


class SpoolError(OSError):
    """A spool file or an idempotency record could not be written durably."""


def _is_s3(landing: str) -> bool:
    return landing.startswith("s3://")


def _local_root(landing: str) -> Path:
    return Path(landing.removeprefix("file://")).expanduser().resolve()


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_whole(landing: str, relative: str, data: bytes) -> str:
    """Write ``data`` as the file ``relative`` (``a/b/name``) of the landing area, all or nothing, and
    durably: returns its URI (an absolute path, or ``s3://…``)."""
    if _is_s3(landing):
        fs, base = _filesystem(landing)
        path = f"{base}/{relative}"
        try:
            with fs.open_output_stream(path) as stream:  # the object appears whole when the upload completes
                stream.write(data)
        except OSError as exc:
            raise SpoolError(f"cannot write s3://{path}: {exc}") from exc
        return f"s3://{path}"
    root = _local_root(landing)
    target = root / relative
    staging = root / STAGING_DIR
    temporary = staging / f"{uuid.uuid4().hex}.tmp"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except OSError as exc:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # the staging area itself is unusable: nothing was written there
        raise SpoolError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return str(target)


def spool_name(now: datetime | None = None) -> str:
    """``publish/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.ffffff>Z-<random>.ndjson``: sorted by time of arrival."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{SPOOL_DIR}/{now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S.%f}Z-{uuid.uuid4().hex[:16]}.ndjson"


def write_spool(landing: str, lines: Sequence[str], *, now: datetime | None = None) -> str:
    """Spool events (one JSON text each, without newlines) as a new NDJSON file of the landing area,
    durably; returns its URI. Every line ends with a newline, so the ingest never waits for an end."""
    if not lines:
        raise ValueError("nothing to spool")
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError("a spooled event is one line of JSON")
    return write_whole(landing, spool_name(now), "".join(f"{line}\n" for line in lines).encode())


# ------------------------------------------------------------------------------------------------
# Idempotency records


@dataclass(frozen=True)
class IdempotencyRecord:
    request_sha256: str  # what was asked: method, path, query and body
    status: int
    body: bytes          # the response, byte for byte
    created_at: float    # seconds since the epoch

    def to_bytes(self) -> bytes:
        return json.dumps({"request_sha256": self.request_sha256, "status": self.status,
                           "body": self.body.decode(), "created_at": self.created_at}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "IdempotencyRecord":
        fields = json.loads(data)
        return cls(fields["request_sha256"], int(fields["status"]), fields["body"].encode(),
                   float(fields["created_at"]))


class IdempotencyStore:
    """Responses remembered per (API key, ``Idempotency-Key``) for ``ttl_seconds`` (None: forever).

    :meth:`claim` serializes requests with the same key: in one process by a lock, across the
    processes of one local landing area by ``flock`` on a lock file beside the record."""

    def __init__(self, landing: str, ttl_seconds: float | None) -> None:
        self.landing, self.ttl = landing, ttl_seconds
        self._locks = [threading.Lock() for _ in range(64)]

    @staticmethod
    def record_name(key_id: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(f"{key_id}\0{idempotency_key}".encode()).hexdigest()
        return f"{IDEMPOTENCY_DIR}/{digest[:2]}/{digest}.json"

    @contextmanager
    def claim(self, key_id: str, idempotency_key: str) -> Iterator[None]:
        name = self.record_name(key_id, idempotency_key)
        lock = self._locks[int(name.rsplit("/", 1)[-1][:8], 16) % len(self._locks)]
        with lock:
            if _is_s3(self.landing):
                yield
                return
            path = _local_root(self.landing) / f"{name}.lock"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path, "a+b")
            except OSError as exc:
                raise SpoolError(f"cannot lock idempotency record {name}: {exc.strerror or exc}") from exc
            with handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _expired(self, record: IdempotencyRecord, now: float) -> bool:
        return self.ttl is not None and now - record.created_at >= self.ttl

    def get(self, key_id: str, idempotency_key: str, *, now: float | None = None) -> IdempotencyRecord | None:
        """The live record of this key, or None (none, or expired)."""
        name = self.record_name(key_id, idempotency_key)
        try:
            if _is_s3(self.landing):
                fs, base = _filesystem(self.landing)
                with fs.open_input_stream(f"{base}/{name}") as stream:
                    data = stream.read()
            else:
                data = (_local_root(self.landing) / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise SpoolError(f"cannot read idempotency record {name}: {exc}") from exc
        record = IdempotencyRecord.from_bytes(data)
        return None if self._expired(record, time.time() if now is None else now) else record

    def put(self, key_id: str, idempotency_key: str, record: IdempotencyRecord) -> None:
        write_whole(self.landing, self.record_name(key_id, idempotency_key), record.to_bytes())

    def sweep(self, *, now: float | None = None) -> int:
        """Remove expired records of a local landing area (S3: leave it to a lifecycle rule); returns
        how many were removed."""
        if self.ttl is None or _is_s3(self.landing):
            return 0
        now = time.time() if now is None else now
        removed = 0
        for path in (_local_root(self.landing) / IDEMPOTENCY_DIR).glob("*/*.json"):
            try:
                if self._expired(IdempotencyRecord.from_bytes(path.read_bytes()), now):
                    path.unlink()  # its lock file stays: another process may hold it
                    removed += 1
            except (OSError, ValueError, KeyError):
                continue
        return removed


def request_digest(*parts: bytes | str) -> str:
    """SHA-256 over length-prefixed parts (no two different requests share it)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
