"""``audit: {reads: false, exports: true, keys: true, flush_seconds: 1}``: which uses of the log are
recorded in the log itself (:mod:`transforms.audit`).

``reads``: every API read and page view (route, key id, filter, row count); ``exports``: exports
accepted and files downloaded; ``keys``: keys created and revoked, viewer tokens issued.
``flush_seconds``: how long read records may wait in the server before they are spooled (0.05 to 60).
Retention runs and erasures are always recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator

from transforms.audit import AuditSettings

from .base import Section, fail, kind_of

__all__ = ["AuditConfig"]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f"must be true or false, not {kind_of(value)}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 60:
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else kind_of(value)
        raise fail(f"must be a number of seconds from 0.05 to 60, not {shown}")
    return float(value)


Flag = Annotated[bool, PlainValidator(_flag)]


class AuditConfig(Section):
    """``audit:``; every key optional (reads off, exports and keys on, flush every second)."""

    reads: Flag = False
    exports: Flag = True
    keys: Flag = True
    flush_seconds: Annotated[float, PlainValidator(_seconds)] = 1.0

    def settings(self) -> AuditSettings:
        return AuditSettings(reads=self.reads, exports=self.exports, keys=self.keys,
                             flush_seconds=self.flush_seconds)
