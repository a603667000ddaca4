"""The landing area: a local directory or an ``s3://`` prefix of change-event files.

Supported files: ``.jsonl`` / ``.ndjson`` (optionally ``.gz``), and ``.json`` holding either an array
of events or a PostHog API page (``{"results": [...], "next": ...}``).

Reading is bounded: gzip files are inflated as a stream under a cap on the inflated size and on the
inflate ratio; a local landing area is walked without following symbolic links out of it (or in
circles); a file is read up to the size it had when listed, and an end that may still be being
written (a last line without its newline, a truncated gzip stream) is left for a later run until the
file has been quiet for ``LandingLimits.quiet_period``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Mapping
from urllib.parse import urlparse

# zlib-ng: the same gzip format and API as the standard library's, inflating several times faster
# (a gzip bomb reaches the inflated-size cap in a fraction of the time).
from zlib_ng import gzip_ng, zlib_ng

if TYPE_CHECKING:  # imported when a landing area is read: settings parse the limits without them
    import pyarrow.fs as pafs

NDJSON_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
JSON_SUFFIXES = (".json", ".json.gz")
SUPPORTED_SUFFIXES = NDJSON_SUFFIXES + JSON_SUFFIXES
# Names a writer uses while a file is incomplete (write, then rename into place): never read.
TEMPORARY_SUFFIXES = (".tmp", ".part")

KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3
DEFAULT_MAX_INFLATED_BYTES = 4 * GIB
DEFAULT_MAX_INFLATE_RATIO = 200.0
DEFAULT_MAX_LINE_BYTES = 16 * MIB
DEFAULT_QUIET_PERIOD = timedelta(seconds=5)
# The inflate ratio is only judged once this much has been inflated (tiny files compress oddly).
RATIO_CHECK_FROM = 1 * MIB
READ_CHUNK = 1 * MIB
# Inflated gzip content kept in memory on the first pass (see _inflate).
INFLATE_IN_MEMORY = 256 * MIB


class LandingError(Exception):
    """The landing area cannot be read (missing directory, bad URI, unreachable bucket)."""


class LandingSettingsError(ValueError):
    """A landing limit in the environment has a value that cannot be used; the message names it."""


def describe_bytes(count: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count:,} bytes"


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib|tib|kb|mb|gb|tb|k|m|g|t)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": KIB, "mib": MIB, "gib": GIB, "tib": 1024 * GIB, "k": KIB, "m": MIB, "g": GIB,
               "t": 1024 * GIB, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$", re.IGNORECASE)


def parse_size(text: str, variable: str) -> int:
    match = _SIZE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise LandingSettingsError(f"{variable}={text!r} is not a size like 16MiB, 4GiB or 1000000")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def parse_seconds(text: str, variable: str) -> timedelta:
    match = _SECONDS.match(text)
    if not match:
        raise LandingSettingsError(f"{variable}={text!r} is not a duration like 5s, 500ms or 2m")
    amount, unit = float(match.group(1)), (match.group(2) or "s").lower()
    return timedelta(seconds=amount * {"ms": 0.001, "s": 1, "m": 60}[unit])


@dataclass(frozen=True)
class LandingLimits:
    """How much a landing file may make the ingest read, and when a file is considered complete.

    Environment: ``ACTIVITYLOG_MAX_INFLATED_BYTES``, ``ACTIVITYLOG_MAX_INFLATE_RATIO``,
    ``ACTIVITYLOG_MAX_LINE_BYTES``, ``ACTIVITYLOG_LANDING_QUIET_PERIOD``.
    """

    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES
    max_inflate_ratio: float = DEFAULT_MAX_INFLATE_RATIO
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    quiet_period: timedelta = DEFAULT_QUIET_PERIOD

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LandingLimits":
        env = os.environ if env is None else env
        limits = cls()
        inflated = env.get("ACTIVITYLOG_MAX_INFLATED_BYTES", "").strip()
        ratio_text = env.get("ACTIVITYLOG_MAX_INFLATE_RATIO", "").strip()
        line = env.get("ACTIVITYLOG_MAX_LINE_BYTES", "").strip()
        quiet = env.get("ACTIVITYLOG_LANDING_QUIET_PERIOD", "").strip()
        ratio = limits.max_inflate_ratio
        if ratio_text:
            try:
                ratio = float(ratio_text.rstrip("xX×"))
            except ValueError:
                ratio = 0.0
            if not ratio >= 1:
                raise LandingSettingsError(
                    f"ACTIVITYLOG_MAX_INFLATE_RATIO={ratio_text!r} is not a ratio of at least 1, like 200")
        return cls(
            max_inflated_bytes=parse_size(inflated, "ACTIVITYLOG_MAX_INFLATED_BYTES") if inflated
            else limits.max_inflated_bytes,
            max_inflate_ratio=ratio,
            max_line_bytes=parse_size(line, "ACTIVITYLOG_MAX_LINE_BYTES") if line else limits.max_line_bytes,
            quiet_period=parse_seconds(quiet, "ACTIVITYLOG_LANDING_QUIET_PERIOD") if quiet else limits.quiet_period,
        )


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


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass
class FileContent:
    """What one read of a landing file found.

    ``data`` is the content from ``start`` to ``consumed`` (inflated for gzip). ``digest`` is the
    SHA-256 of the stored bytes ``[0, consumed)`` (the whole stored file for gzip and refused files).
    """

    data: bytes = b""
    digest: str = ""
    start: int = 0
    consumed: int = 0
    prefix_lines: int = 0  # newlines in the stored bytes before ``start``: the next line's number - 1
    stable: bool = True  # the end read is final: quiet for the quiet period, unchanged while read
    # (judged when the end is ambiguous: a JSON document, a gzip stream, a last line without newline)
    held_back: str | None = None  # why the end of the file is left for a later run
    refused: str | None = None  # why the content is not read at all: the file's one quarantine reason
    prefix_matches: bool = True  # the bytes before ``start`` are the ones ingested before
    vanished: bool = False  # removed or truncated since it was listed: not read this run


class _Stored:
    """The stored bytes of a file as a stream: hashed and counted as they are read, at most ``limit``."""

    def __init__(self, handle: BinaryIO, limit: int | None) -> None:
        self.handle = handle
        self.remaining = limit
        self.count = 0
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if self.remaining is not None:
            size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.handle.read(size) if size is not None and size >= 0 else self.handle.read()
        self.count += len(data)
        if self.remaining is not None:
            self.remaining -= len(data)
        self.sha.update(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass


def _open(file: LandingFile) -> tuple[BinaryIO, os.stat_result | None]:
    try:
        if not file.is_local:
            fs, key = _filesystem(file.uri)
            # compression=None: the stored bytes (pyarrow would otherwise inflate .gz by itself).
            return fs.open_input_stream(key, compression=None), None  # type: ignore[return-value]
        # The path as listed (absolute, real): not resolved again, so a link put in its place is
        # not followed.
        path = file.uri.removeprefix("file://")
        # O_NOFOLLOW: a file swapped for a symbolic link since listing is not followed; O_NONBLOCK:
        # a FIFO put in its place cannot block the run (it is refused as not a regular file).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise LandingError(f"{file.uri} is no longer a regular file")
        return os.fdopen(fd, "rb"), info
    except OSError as exc:
        raise LandingError(f"cannot read {file.uri}: {exc}") from exc


def _unchanged(file: LandingFile, info: os.stat_result | None) -> bool:
    return info is None or (info.st_size == file.size and (file.mtime_ns is None or info.st_mtime_ns == file.mtime_ns))


def read_file(
    file: LandingFile,
    limits: LandingLimits | None = None,
    *,
    start: int = 0,
    prefix_sha256: str | None = None,
    stable: bool = True,
    by_line: bool = True,
) -> FileContent:
    """Read a landing file as listed (never past its listed size), or its tail after ``start``.

    ``start``/``prefix_sha256``: the bytes already ingested and their SHA-256; they are hashed again
    and compared, and only the bytes after them are returned. ``stable``: the file has been quiet for
    the quiet period; if not (or if it changes while being read), an NDJSON file's last line without
    its newline, or a truncated gzip stream, is left for a later run (``held_back``). ``by_line``
    false (a JSON document): the whole file is returned and the caller judges its end by ``stable``.
    """
    limits = limits or LandingLimits()
    handle, info = _open(file)
    with handle:
        if info is not None and info.st_size < file.size:
            return FileContent(vanished=True)
        stable = stable and _unchanged(file, info)

        def still_stable() -> bool:  # checked when the end read is ambiguous
            return stable and (info is None or _unchanged(file, os.fstat(handle.fileno())))

        stored = _Stored(handle, file.size if file.is_local else None)
        if file.is_gzip:
            return _inflate(file, stored, limits, stable)
        return _read_plain(stored, start, prefix_sha256, still_stable, by_line)


def _read_plain(stored: _Stored, start: int, prefix_sha256: str | None, still_stable, by_line: bool) -> FileContent:
    newlines = 0
    while stored.count < start:
        chunk = stored.read(min(READ_CHUNK, start - stored.count))
        if not chunk:
            break
        newlines += chunk.count(b"\n")
    if start and (stored.count < start or stored.sha.hexdigest() != prefix_sha256):
        return FileContent(start=start, prefix_matches=False)
    sha = stored.sha
    tail = stored.handle.read(stored.remaining) if stored.remaining is not None else stored.handle.read()
    cut, held_back, stable = len(tail), None, True
    if not by_line:
        stable = still_stable()
    elif tail and not tail.endswith(b"\n"):
        stable = still_stable()
        if not stable:
            cut = tail.rfind(b"\n") + 1
            held_back = "its last line has no newline yet"
    sha.update(memoryview(tail)[:cut])
    return FileContent(data=tail if cut == len(tail) else tail[:cut], digest=sha.hexdigest(), start=start,
                       consumed=start + cut, prefix_lines=newlines, stable=stable, held_back=held_back)


def _inflate(file: LandingFile, stored: _Stored, limits: LandingLimits, stable: bool) -> FileContent:
    """Stream-inflate a gzip file (every member) under the caps.

    The inflated content is kept while it stays under ``INFLATE_IN_MEMORY``; past that, the rest is
    only counted against the caps, and a file within them is inflated again into memory. A file over
    a cap therefore never costs more than that much memory, however far it inflates.
    """
    out: io.BytesIO | None = io.BytesIO()
    inflated = 0
    refused = held_back = None
    keep = min(INFLATE_IN_MEMORY, limits.max_inflated_bytes)
    try:
        with gzip_ng.GzipFile(fileobj=stored, mode="rb") as reader:  # type: ignore[arg-type]
            while True:
                chunk = reader.read(READ_CHUNK)
                if not chunk:
                    break
                inflated += len(chunk)
                if inflated > limits.max_inflated_bytes:
                    refused = (f"gzip file inflates to more than {describe_bytes(limits.max_inflated_bytes)} "
                               f"(ACTIVITYLOG_MAX_INFLATED_BYTES): not read")
                    break
                if inflated > RATIO_CHECK_FROM and inflated > limits.max_inflate_ratio * stored.count:
                    refused = (f"gzip file inflates more than {limits.max_inflate_ratio:g}× its compressed size "
                               f"(ACTIVITYLOG_MAX_INFLATE_RATIO): not read")
                    break
                if out is not None:
                    if inflated > keep:
                        out = None  # counted from here on; inflated again below if within the caps
                    else:
                        out.write(chunk)
    except EOFError as exc:
        if stable:
            refused = f"{file.uri} is not a valid gzip file: {exc}"
        else:
            held_back = "its gzip stream is not complete yet"
    except (OSError, zlib.error, zlib_ng.error) as exc:
        refused = f"{file.uri} is not a valid gzip file: {exc}"
    out = None if refused or held_back else out  # release what was inflated
    stored.drain()  # the digest covers the whole stored file
    if held_back:
        return FileContent(stable=False, held_back=held_back)
    digest = stored.sha.hexdigest()
    if refused:
        return FileContent(digest=digest, consumed=stored.count, stable=stable, refused=refused)
    data = out.getvalue() if out is not None else _inflate_again(file, digest, inflated)
    return FileContent(data=data, digest=digest, consumed=stored.count, stable=stable)


def _inflate_again(file: LandingFile, digest: str, size: int) -> bytes:
    handle, _ = _open(file)
    with handle:
        stored = _Stored(handle, file.size if file.is_local else None)
        out = io.BytesIO()
        with gzip_ng.GzipFile(fileobj=stored, mode="rb") as reader:  # type: ignore[arg-type]
            while out.tell() <= size:
                chunk = reader.read(READ_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        stored.drain()
    if out.tell() != size or stored.sha.hexdigest() != digest:
        raise LandingError(f"{file.uri} changed while it was read")
    return out.getvalue()  # the buffer itself, not a copy


def hash_file(file: LandingFile) -> str:
    """The SHA-256 of the file's stored bytes as listed (nothing inflated)."""
    handle, _ = _open(file)
    with handle:
        stored = _Stored(handle, file.size if file.is_local else None)
        stored.drain()
    return stored.sha.hexdigest()


def read_bytes(file: LandingFile, limits: LandingLimits | None = None) -> tuple[bytes, str]:
    """The file's whole decompressed content and the SHA-256 of its stored bytes."""
    content = read_file(file, limits)
    if content.refused:
        raise LandingError(content.refused)
    return content.data, content.digest
