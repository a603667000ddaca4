"""The landing area: a local directory or an ``s3://`` prefix of change-event files.

Supported files: ``.jsonl`` / ``.ndjson`` (optionally ``.gz``), and ``.json`` holding either an array
of events or a PostHog API page (``{"results": [...], "next": ...}``).

Reading is bounded: gzip files are inflated as a stream under a cap on the inflated size and on the
inflate ratio; a local landing area is walked without following symbolic links out of it (or in
circles); a file is read up to the size it had when listed, and an end that may still be being
written (a last line without its newline, a truncated gzip stream) is left for a later run until the
file has been quiet for ``LandingLimits.quiet_period``.

The limits and their settings live in :mod:`transforms.landing.limits`, the listing in
:mod:`transforms.landing.listing`, the bounded reading in :mod:`transforms.landing.reading`.
"""

from __future__ import annotations

from transforms.landing.limits import (  # noqa: F401  (the names callers import from transforms.landing)
    DEFAULT_MAX_INFLATE_RATIO,
    DEFAULT_MAX_INFLATED_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_QUIET_PERIOD,
    GIB,
    INFLATE_IN_MEMORY,
    KIB,
    MIB,
    RATIO_CHECK_FROM,
    READ_CHUNK,
    LandingLimits,
    LandingSettingsError,
    describe_bytes,
    parse_seconds,
    parse_size,
)
from transforms.landing.listing import (  # noqa: F401
    JSON_SUFFIXES,
    NDJSON_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TEMPORARY_SUFFIXES,
    LandingError,
    LandingFile,
    LandingScan,
    _filesystem,
    _s3_filesystem,
    is_remote,
    list_landing,
    scan_landing,
)
from transforms.landing.reading import FileContent, hash_file, read_bytes, read_file  # noqa: F401
