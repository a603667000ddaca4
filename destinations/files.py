"""A JSONL file destination: one line per delivered event (the demo's, and handy for debugging)."""

from __future__ import annotations

import os
from pathlib import Path

from transforms import jsontext


class FileClient:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def close(self) -> None:
        pass

    def send(self, records: list[dict]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(jsontext.encode(r) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        return 1
