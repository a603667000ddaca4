"""The landing area: a local directory or an ``s3://`` prefix of change-event files.

Supported files: ``.jsonl`` / ``.ndjson`` (optionally ``.gz``), and ``.json`` holding either an array
of events or a PostHog API page (``{"results": [...], "next": ...}``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from transforms.lake import is_remote

NDJSON_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
JSON_SUFFIXES = (".json", ".json.gz")
SUPPORTED_SUFFIXES = NDJSON_SUFFIXES + JSON_SUFFIXES


class LandingError(Exception):
    """The landing area cannot be read (missing directory, bad URI, unreachable bucket)."""


@dataclass(frozen=True)
class LandingFile:
    uri: str  # what the ledger and quarantine call the file (absolute path or s3://bucket/key)
    size: int
    modified: datetime | None

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def is_json_document(self) -> bool:
        return self.name.lower().endswith(JSON_SUFFIXES)


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or endpoint
        kwargs["scheme"] = parsed.scheme or "https"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for a local path or s3:// URI."""
    if uri.startswith("s3://"):
        return _s3_filesystem(), uri[len("s3://"):].rstrip("/")
    if is_remote(uri):
        raise LandingError(f"unsupported landing URI {uri!r}: use a local directory or s3://bucket/prefix")
    return pafs.LocalFileSystem(), str(Path(uri.removeprefix("file://")).expanduser().resolve())


def _as_uri(uri: str, path: str) -> str:
    return f"s3://{path}" if uri.startswith("s3://") else path


def list_landing(uri: str) -> list[LandingFile]:
    """Every supported file under the landing URI, sorted by name (so daily files go in order)."""
    fs, base = _filesystem(uri)
    try:
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.NotFound and not uri.startswith("s3://"):
            raise LandingError(f"landing directory {uri} does not exist")
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise LandingError(f"cannot list landing area {uri}: {exc}") from exc
    files = [
        LandingFile(
            uri=_as_uri(uri, i.path),
            size=i.size or 0,
            modified=i.mtime.astimezone(timezone.utc) if i.mtime else None,
        )
        for i in infos
        if i.type == pafs.FileType.File
        and i.base_name.lower().endswith(SUPPORTED_SUFFIXES)
        and not i.base_name.startswith(".")
    ]
    return sorted(files, key=lambda f: f.uri)


def read_bytes(file: LandingFile) -> tuple[bytes, str]:
    """The file's decompressed content and the SHA-256 of its stored bytes."""
    fs, path = _filesystem(file.uri)
    try:
        with fs.open_input_file(path) as handle:  # random-access file: one read of the known size
            stored = handle.read()
    except OSError as exc:
        raise LandingError(f"cannot read {file.uri}: {exc}") from exc
    digest = hashlib.sha256(stored).hexdigest()
    if file.name.lower().endswith(".gz"):
        try:
            stored = gzip.decompress(stored)
        except (OSError, EOFError) as exc:
            raise LandingError(f"{file.uri} is not a valid gzip file: {exc}") from exc
    return stored, digest
