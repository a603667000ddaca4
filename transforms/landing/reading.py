"""Reading a landing file, bounded: never past its listed size, gzip inflated as a stream under the
caps on size and ratio, an end that may still be being written left for a later run, and the
SHA-256 of the stored bytes computed as they are read."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from dataclasses import dataclass
from typing import BinaryIO

# zlib-ng: the same gzip format and API as the standard library's, inflating several times faster
# (a gzip bomb reaches the inflated-size cap in a fraction of the time).
from zlib_ng import gzip_ng, zlib_ng

from transforms.landing.limits import (
    INFLATE_IN_MEMORY,
    RATIO_CHECK_FROM,
    READ_CHUNK,
    LandingLimits,
    describe_bytes,
)
from transforms.landing.listing import LandingError, LandingFile, _filesystem


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
