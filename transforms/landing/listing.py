"""Listing the landing area: the supported files under a local directory (walked without following
symbolic links out of it, or in circles) or an ``s3://`` prefix."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:  # imported when a landing area is read: settings parse the limits without them
    import pyarrow.fs as pafs

NDJSON_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
JSON_SUFFIXES = (".json", ".json.gz")
SUPPORTED_SUFFIXES = NDJSON_SUFFIXES + JSON_SUFFIXES
# Names a writer uses while a file is incomplete (write, then rename into place): never read.
TEMPORARY_SUFFIXES = (".tmp", ".part")


class LandingError(Exception):
    """The landing area cannot be read (missing directory, bad URI, unreachable bucket)."""


@dataclass(frozen=True)
class LandingFile:
    uri: str  # what the ledger and quarantine call the file (absolute path or s3://bucket/key)
    size: int
    modified: datetime | None
    mtime_ns: int | None = field(default=None, compare=False)  # local files: to notice a change while reading

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def is_json_document(self) -> bool:
        return self.name.lower().endswith(JSON_SUFFIXES)

    @property
    def is_gzip(self) -> bool:
        return self.name.lower().endswith(".gz")

    @property
    def is_local(self) -> bool:
        return not self.uri.startswith("s3://")

    def quiet_for(self, period: timedelta, now: datetime | None = None) -> bool:
        """Unchanged for ``period``: its modification time is at least that old. S3 objects appear
        whole when their upload completes, so they always are."""
        if not self.is_local or self.modified is None or period <= timedelta(0):
            return True
        return (now or datetime.now(timezone.utc)) - self.modified >= period


@dataclass
class LandingScan:
    files: list[LandingFile]
    warnings: list[str] = field(default_factory=list)  # symbolic links refused, directories unreadable


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")  # as transforms.lake.is_remote


def _s3_filesystem() -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

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
    import pyarrow.fs as pafs

    if uri.startswith("s3://"):
        return _s3_filesystem(), uri[len("s3://"):].rstrip("/")
    if is_remote(uri):
        raise LandingError(f"unsupported landing URI {uri!r}: use a local directory or s3://bucket/prefix")
    return pafs.LocalFileSystem(), str(Path(uri.removeprefix("file://")).expanduser().resolve())


def _as_uri(uri: str, path: str) -> str:
    return f"s3://{path}" if uri.startswith("s3://") else path


def _readable_name(name: str) -> bool:
    lowered = name.lower()
    return (lowered.endswith(SUPPORTED_SUFFIXES) and not name.startswith(".")
            and not lowered.endswith(TEMPORARY_SUFFIXES))


def list_landing(uri: str) -> list[LandingFile]:
    """Every supported file under the landing URI, sorted by name (so daily files go in order)."""
    return scan_landing(uri).files


def scan_landing(uri: str) -> LandingScan:
    """The files to read under the landing URI, and warnings about what was left out and why.

    Names starting with ``.`` (files and directories) and ending in ``.tmp``/``.part`` are never
    read. Locally, symbolic links are not followed: one that resolves outside the landing root is
    reported; one that resolves inside it is left to the real path, so each file is read once (hard
    links to the same file too).
    """
    fs, base = _filesystem(uri)
    if uri.startswith("s3://"):
        return LandingScan(_list_s3(fs, base, uri))
    if not os.path.isdir(base):
        raise LandingError(f"landing directory {uri} does not exist")
    return _walk_local(fs, base)


def _list_s3(fs: pafs.FileSystem, base: str, uri: str) -> list[LandingFile]:
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise LandingError(f"cannot list landing area {uri}: {exc}") from exc
    files = [
        LandingFile(uri=_as_uri(uri, i.path), size=i.size or 0,
                    modified=i.mtime.astimezone(timezone.utc) if i.mtime else None)
        for i in infos
        if i.type == pafs.FileType.File and _readable_name(i.base_name)
        and not any(part.startswith(".") for part in i.path[len(base):].split("/")[:-1])
    ]
    return sorted(files, key=lambda f: f.uri)


def _walk_local(fs: pafs.FileSystem, root: str) -> LandingScan:
    import pyarrow.fs as pafs

    found: list[tuple[str, os.stat_result]] = []
    warnings: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            if directory == root:
                raise LandingError(f"cannot list landing area {root}: {exc}") from exc
            warnings.append(f"{directory} cannot be listed ({exc.strerror or exc}); its files are not read")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: a writer's staging area or temporary file
            try:
                if entry.is_symlink():
                    warning = _link_warning(root, entry.path)
                    if warning:
                        warnings.append(warning)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not (entry.is_file(follow_symlinks=False) and _readable_name(entry.name)):
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed while listing
            found.append((entry.path, info))
    found.sort(key=lambda item: item[0])
    unique = []
    for path, info in found:  # a hard link to a file already listed is left out
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            unique.append((path, info))
    found = unique
    # Sizes and times as pyarrow reports them, the form the ledger has always stored.
    infos = fs.get_file_info([path for path, _ in found]) if found else []
    files = [
        LandingFile(uri=path, size=info.st_size,
                    modified=arrow.mtime.astimezone(timezone.utc) if arrow.mtime else None,
                    mtime_ns=info.st_mtime_ns)
        for (path, info), arrow in zip(found, infos)
        if arrow.type == pafs.FileType.File
    ]
    return LandingScan(files, sorted(warnings))


def _link_warning(root: str, path: str) -> str | None:
    target = os.path.realpath(path)
    if not (target == root or target.startswith(root.rstrip(os.sep) + os.sep)):
        return f"{path} is a symbolic link to {target}, outside the landing area: not read"
    if not os.path.exists(target):
        return f"{path} is a broken symbolic link: not read"
    return None  # inside the landing area: the real file is read under its own path
