"""How much a landing file may make the ingest read, and when it counts as complete: the limits, their
environment variables and the sizes and durations they are written in (no pyarrow: settings parse
them without reading a landing area)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

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
