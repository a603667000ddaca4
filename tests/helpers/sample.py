"""The sample-data tests (tests/test_sample_*.py): an independent reader and validator of the landing files
pipelines.demo writes (the design's input rules), so that every count of a SampleReport is re-derived from
the bytes on disk; ``END``, the last day the tests write."""

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

END = date(2024, 3, 31)


@dataclass
class Line:
    file: Path
    number: int
    text: str | None  # None for elements of a .json document
    value: object  # parsed JSON, or the sentinel INVALID


INVALID = object()


def read_file(path: Path) -> tuple[list[Line], int]:
    """Every record of a landing file, and the number of blank lines in it."""
    raw = path.read_bytes()
    name = path.name
    if name.endswith(".json"):
        doc = json.loads(raw.decode("utf-8"))
        if isinstance(doc, dict):
            assert set(doc) == {"results", "next"} and doc["next"] is None
            doc = doc["results"]
        assert isinstance(doc, list)
        return [Line(path, i + 1, None, v) for i, v in enumerate(doc)], 0
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    if name.endswith(".ndjson"):
        assert raw.startswith(b"\xef\xbb\xbf"), "the .ndjson day carries a UTF-8 BOM"
        text = raw[3:].decode("utf-8")
        assert text.endswith("\r\n")
        assert "\n" not in text.replace("\r\n", ""), "CRLF file has only CRLF line endings"
        parts = text[:-2].split("\r\n")
    else:
        text = raw.decode("utf-8")
        assert "\r" not in text
        if not text:
            return [], 0
        assert text.endswith("\n")
        parts = text[:-1].split("\n")
    lines, blank = [], 0
    for i, part in enumerate(parts):
        if part == "":
            blank += 1
            continue
        try:
            value = json.loads(part)
        except json.JSONDecodeError:
            value = INVALID
        lines.append(Line(path, i + 1, part, value))
    return lines, blank


def parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts


def problem(value: object) -> str | None:
    """Why the ingest must reject this record (the design's rules), or None."""
    if value is INVALID:
        return "invalid_json"
    if not isinstance(value, dict):
        return "not_an_object"
    if not isinstance(value.get("id"), str) or not value["id"]:
        return "empty_id" if value.get("id") == "" else "missing_id"
    for key in ("scope", "activity"):
        v = value.get(key)
        if v is None:
            return f"missing_{key}"
        if not isinstance(v, str) or not v:
            return f"empty_{key}"
        if len(v) > 79:
            return f"{key}_too_long"
    if "created_at" not in value:
        return "missing_created_at"
    ts = parse_ts(value["created_at"])
    if ts is None:
        return "invalid_created_at"
    if ts.tzinfo is None:
        return "created_at_without_timezone"
    if ts > datetime.now(timezone.utc) + timedelta(days=1):
        return "created_at_in_future"
    item_id = value.get("item_id")
    if item_id is not None and not isinstance(item_id, (str, int)):
        return "bad_item_id"
    if item_id is not None and len(str(item_id)) > 72:
        return "item_id_too_long"
    detail = value.get("detail")
    if detail is not None and not isinstance(detail, dict):
        return "bad_detail"
    if value.get("team_id") is None and value.get("organization_id") is None:
        return "no_level"
    return None


@dataclass
class Audit:
    lines: list[Line]
    blank: int
    valid: list[Line]
    distinct: dict[str, dict]
    reasons: Counter


def audit(files: list[Path]) -> Audit:
    lines, blank = [], 0
    for path in files:
        ls, b = read_file(path)
        lines += ls
        blank += b
    valid, reasons, distinct = [], Counter(), {}
    for line in lines:
        why = problem(line.value)
        if why:
            reasons[why] += 1
        else:
            valid.append(line)
            ev = line.value
            if ev["id"] in distinct:
                assert distinct[ev["id"]] == ev, "a duplicate is an exact copy"
            distinct.setdefault(ev["id"], ev)
    return Audit(lines, blank, valid, distinct, reasons)
