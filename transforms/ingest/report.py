"""What an ingest reports: per file and per run (accepted + duplicates + quarantined = non-blank lines)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

Progress = Callable[[str], None]


def _total(name: str) -> property:
    """The sum of one count over the files of the report."""
    return property(lambda self: sum(getattr(f, name) for f in self.files_ingested))


@dataclass
class FileResult:
    source: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    days: set[date] = field(default_factory=set)
    #: Of ``accepted``: events an interrupted earlier read of this file stored before it died (its ledger
    #: row never written). They are this file's lines, so they count as accepted, not as duplicates.
    recovered: int = 0


@dataclass
class IngestReport:
    run_id: str
    landing: str
    files_seen: int = 0
    files_ingested: list[FileResult] = field(default_factory=list)
    files_skipped: int = 0  # already in the ledger, unchanged
    files_changed: list[str] = field(default_factory=list)  # changed after ingest: reported, not re-read
    files_waiting: list[str] = field(default_factory=list)  # an end still being written: left for a later run
    warnings: list[str] = field(default_factory=list)  # symbolic links refused, files that could not be read
    quarantine_reasons: Counter = field(default_factory=Counter)
    days_changed: set[date] = field(default_factory=set)
    events_per_day: Counter = field(default_factory=Counter)  # new events written, by day
    log: dict = field(default_factory=dict)  # the verifiable log's step (transforms.tlog.LogStep.summary)


    lines = _total("lines")
    accepted = _total("accepted")
    duplicates = _total("duplicates")
    quarantined = _total("quarantined")
    recovered = _total("recovered")

    @property
    def balanced(self) -> bool:
        return self.accepted + self.duplicates + self.quarantined == self.lines

    def summary(self) -> dict[str, object]:
        """Everything a caller reports, as plain JSON-able values."""
        return {
            **self.as_metadata(),
            "landing": self.landing,
            "run_id": self.run_id,
            "files_changed": list(self.files_changed),
            "files_waiting": list(self.files_waiting),
            "warnings": list(self.warnings),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "days_changed": [d.isoformat() for d in sorted(self.days_changed)],
            "log": dict(self.log),
        }

    def as_metadata(self) -> dict[str, object]:
        return {
            "files_ingested": len(self.files_ingested),
            "files_skipped": self.files_skipped,
            "files_changed_after_ingest": len(self.files_changed),
            "files_waiting": len(self.files_waiting),
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "recovered": self.recovered,
            "days_changed": len(self.days_changed),
        }
