"""The integrity chain, attacked where an attacker would: the Delta data files and the log, directly."""

import json
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.events import make_event, write_lines
from pipelines.cli import main
from transforms.durations import Duration
from transforms.ingest import ingest
from transforms.integrity import ACTIVITY_DIGESTS, ED25519_ENV, HMAC_ENV, digests, update_digests, verify
from transforms.integrity import latest as latest_rows
from transforms.lake import ACTIVITY_RAW
from transforms.retention import RetentionPolicy, apply_retention
from transforms.validate import ValidationSettings

DAYS = [date(2024, 1, 10), date(2024, 1, 11), date(2024, 1, 12)]


def add(lake, landing, events, name):
    write_lines(landing / name, events)
    report = ingest(lake, str(landing), ValidationSettings(start_date=date(2020, 1, 1)))
    return update_digests(lake, report.days_changed)


@pytest.fixture
def chained(lake, landing):
    add(lake, landing, [make_event(id=f"{d.day}-{i}", created_at=f"{d.isoformat()}T1{i}:00:00Z")
                        for d in DAYS for i in range(3)], "a.jsonl")
    return lake


def day_file(tmp_path: Path, table: str, day: date) -> Path:
    (path,) = (tmp_path / "lake" / table / f"day={day.isoformat()}").glob("*.parquet")
    return path


def rewrite(path: Path, change, fix_log: bool = True) -> None:
    """Rewrite a data file in place; a careful attacker also fixes its size in the Delta log."""
    table = pq.read_table(path)
    pq.write_table(change(table), path)
    if not fix_log:
        return
    table_dir = next(p for p in path.parents if (p / "_delta_log").is_dir())
    relative = str(path.relative_to(table_dir))
    for entry in (table_dir / "_delta_log").glob("*.json"):
        actions = [json.loads(line) for line in entry.read_text().splitlines() if line.strip()]
        for action in actions:
            if "add" in action and action["add"]["path"] == relative:
                action["add"]["size"] = path.stat().st_size
                action["add"]["stats"] = None
        entry.write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def kinds(lake) -> list[tuple[date, str]]:
    return sorted(((p.day, p.kind) for p in verify(lake).problems), key=lambda k: (k[0] or date.min, k[1]))


def test_an_untouched_chain_verifies(chained):
    rows = digests(chained).sort("day")
    assert rows["version"].to_list() == [1, 1, 1] and rows["events"].to_list() == [3, 3, 3]
    assert rows["previous_digest"].to_list()[1:] == rows["digest"].to_list()[:2]  # day to day
    assert rows["previous_digest"][0] == "0" * 64
    report = verify(chained)
    assert report.ok and (report.days, report.events, report.digest_rows) == (3, 9, 3)


@pytest.mark.local_lake
def test_a_changed_byte_in_a_payload(chained, tmp_path):
    def change(table):
        payloads = table.column("payload").to_pylist()
        payloads[1] = payloads[1].replace("new-checkout-flow", "new-checkout-flaw")
        return table.set_column(table.schema.get_field_index("payload"), "payload", pa.array(payloads))

    rewrite(day_file(tmp_path, ACTIVITY_RAW, DAYS[1]), change)
    # The day's digest and the verifiable log (the event's leaf) both name it.
    assert kinds(chained) == [(DAYS[1], "event altered"), (DAYS[1], "row changed")]


@pytest.mark.local_lake
def test_a_rewritten_file_that_no_longer_matches_the_log(chained, tmp_path):
    rewrite(day_file(tmp_path, ACTIVITY_RAW, DAYS[2]), lambda t: t.slice(0, 2), fix_log=False)
    assert kinds(chained) == [(DAYS[2], "data file unreadable")]


@pytest.mark.local_lake
def test_a_removed_row(chained, tmp_path):
    rewrite(day_file(tmp_path, ACTIVITY_RAW, DAYS[2]), lambda t: t.slice(0, 2))
    assert kinds(chained) == [(DAYS[2], "event deleted"), (DAYS[2], "row removed")]


@pytest.mark.local_lake
def test_an_inserted_row(chained, tmp_path):
    def insert(table):
        extra = table.slice(0, 1)
        extra = extra.set_column(extra.schema.get_field_index("id"), "id", pa.array(["forged"], type=extra.schema.field("id").type))
        return pa.concat_tables([table, extra])

    rewrite(day_file(tmp_path, ACTIVITY_RAW, DAYS[0]), insert)
    assert kinds(chained) == [(DAYS[0], "event without a leaf"), (DAYS[0], "row inserted")]


@pytest.mark.local_lake
def test_a_day_removed_through_the_delta_log(chained, tmp_path):
    log = tmp_path / "lake" / ACTIVITY_RAW / "_delta_log"
    version = max(int(p.stem) for p in log.glob("*.json")) + 1
    path = day_file(tmp_path, ACTIVITY_RAW, DAYS[1]).relative_to(tmp_path / "lake" / ACTIVITY_RAW)
    commit = [{"remove": {"path": str(path), "deletionTimestamp": int(time.time() * 1000), "dataChange": True}},
              {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "DELETE"}}]
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in commit) + "\n")
    assert kinds(chained) == [(DAYS[1], "day removed"), (DAYS[1], "event deleted")]


@pytest.mark.local_lake
def test_an_altered_digest_and_a_forged_chain(chained, tmp_path):
    (path,) = (tmp_path / "lake" / ACTIVITY_DIGESTS).glob("*.parquet")

    def alter(table):
        hashes = table.column("day_hash").to_pylist()
        hashes[0] = "f" * 64
        return table.set_column(table.schema.get_field_index("day_hash"), "day_hash", pa.array(hashes))

    original = pq.read_table(path)
    rewrite(path, alter)
    found = kinds(chained)
    assert found[0][1] == "digest altered" and (found[0][0] in DAYS)
    # A forger who recomputes that digest too breaks the next day's link instead.
    from transforms.integrity import chain_digest

    def forge(table):
        rows = table.to_pylist()
        first = min(range(len(rows)), key=lambda i: rows[i]["day"])
        rows[first]["day_hash"] = "f" * 64
        rows[first]["digest"] = chain_digest(rows[first]["day"], rows[first]["version"], rows[first]["events"],
                                             rows[first]["day_hash"], rows[first]["previous_digest"])
        return pa.Table.from_pylist(rows, schema=table.schema)

    pq.write_table(original, path)
    rewrite(path, forge)
    found = kinds(chained)
    assert (DAYS[1], "chain broken") in found and (DAYS[0], "row changed") in found


def test_late_events_add_a_version_and_the_chain_still_verifies(chained, landing):
    new = add(chained, landing, [make_event(id="late", created_at="2024-01-10T23:00:00Z")], "late.jsonl")
    assert [(r["day"], r["version"], r["reason"]) for r in new] == [(DAYS[0], 2, "late events")]
    assert verify(chained).ok
    assert add(chained, landing, [make_event(id="late", created_at="2024-01-10T23:00:00Z")], "again.jsonl") == []


def test_retention_expires_digests_and_the_chain_survives(chained):
    now = datetime(2024, 1, 12, 18, tzinfo=timezone.utc)
    apply_retention(chained, RetentionPolicy(default=Duration(hours=30)), now=now)  # day 10 whole, day 11 partly
    latest = latest_rows(digests(chained))
    assert latest.select("day", "expired", "reason").rows() == [
        (DAYS[0], True, "retention (day deleted)"), (DAYS[1], False, "retention"), (DAYS[2], False, "ingest")]
    assert verify(chained).ok


def test_hmac_signatures(chained, landing, monkeypatch, tmp_path):
    monkeypatch.setenv(HMAC_ENV, "s3cret")
    add(chained, landing, [make_event(id="signed", created_at="2024-01-13T10:00:00Z")], "b.jsonl")
    signed = digests(chained).filter(digests(chained)["day"] == date(2024, 1, 13)).row(0, named=True)
    assert signed["signature_kind"] == "hmac-sha256" and len(signed["signature"]) == 64
    assert verify(chained).ok
    monkeypatch.setenv(HMAC_ENV, "another key")
    assert kinds(chained) == [(date(2024, 1, 13), "digest altered")]


def test_ed25519_signatures(chained, landing, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()).decode()
    monkeypatch.setenv(ED25519_ENV, pem)
    add(chained, landing, [make_event(id="ed", created_at="2024-01-13T10:00:00Z")], "b.jsonl")
    assert digests(chained).sort("computed_at")["signature_kind"].to_list()[-1] == "ed25519"
    assert verify(chained).ok


@pytest.mark.local_lake
def test_cli_verify(chained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIVITYLOG_LAKE", chained.root)
    assert main(["verify"]) == 0
    assert "OK: 3 days, 9 events and 3 digest rows verify" in capsys.readouterr().out
    rewrite(day_file(tmp_path, ACTIVITY_RAW, DAYS[2]), lambda t: t.slice(0, 1))
    assert main(["verify"]) == 1
    captured = capsys.readouterr()
    assert "TAMPERED 2024-01-12: row removed" in captured.out
    assert "first bad day 2024-01-12: row removed" in captured.err
    assert main(["verify", "--day", "2024-01-10"]) == 0  # that day's data is intact
