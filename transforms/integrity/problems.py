"""What :func:`transforms.integrity.verify` reports: its problems, each naming a day, a kind and a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass
class Problem:
    day: date | None
    kind: str
    detail: str
    #: The table a damaged file or log belongs to (None for a disagreement between the data and the chain).
    table: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.table, self.day.isoformat() if self.day else None) if x) or "-"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    days: int = 0
    events: int = 0
    digest_rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    leaves: int = 0  #: leaves of the verifiable log checked
    log_notes: list[str] = field(default_factory=list)  #: what the verifiable log's checks could not check

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.day or date.min)) if self.problems else None
