"""An id seen before with the same content is a duplicate; with other content it is quarantined (the
first occurrence stays), in one batch, across batches of a run and across runs, on any day."""

import json
from datetime import date

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.faults import appends_fail
from tests.helpers.lakes import build_lake
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_QUARANTINE, ACTIVITY_RAW, INGEST_LEDGER, Lake

CONFLICT = "id {} already stored with different content"


def stored(lake: Lake) -> dict[str, list[str]]:
    """id → the payloads stored under it (one each, unless something went wrong)."""
    rows = lake.scan(ACTIVITY_RAW).select("id", "payload").collect()
    out: dict[str, list[str]] = {}
    for event_id, payload in rows.iter_rows():
        out.setdefault(event_id, []).append(payload)
    return out


def quarantine(lake: Lake) -> list[tuple[str, int, str, str]]:
    frame = lake.scan(ACTIVITY_QUARANTINE)
    if frame is None:
        return []
    rows = frame.select("source", "line", "quarantine_reason", "raw_text").collect().sort("source", "line")
    return [(source.rsplit("/", 1)[-1], line, reason, text) for source, line, reason, text in rows.iter_rows()]


def ledger(lake: Lake) -> dict[str, tuple[int, int, int, int]]:
    rows = lake.scan(INGEST_LEDGER).select("source", "lines", "accepted", "duplicates", "quarantined").collect()
    return {source.rsplit("/", 1)[-1]: tuple(counts) for source, *counts in rows.iter_rows()}


def counts(report) -> tuple[int, int, int, int]:
    assert report.balanced
    return report.lines, report.accepted, report.duplicates, report.quarantined


def reformatted(event: dict) -> str:
    """The same JSON value in other bytes: keys reversed, other spacing, 0 → 0.0, 50 → 5.0e1 (in
    before/after: team_id must be an integer literal)."""
    text = json.dumps(dict(reversed(list(event.items()))), indent=None, separators=(" ,", " : "))
    return text.replace('"before" : 0', '"before" : 0.0').replace('"after" : 50', '"after" : 5.0e1')


def event(**overrides) -> dict:
    detail = {"name": "flag", "changes": [{"field": "rollout_percentage", "before": 0, "after": 50}]}
    return make_event(**{"id": "evt-1", "detail": detail, **overrides})


def test_an_exact_copy_is_a_duplicate(landing, lake, settings):
    write_lines(landing / "1.jsonl", [event()])
    ingest(lake, str(landing), settings)
    write_lines(landing / "2.jsonl", [make_event(id="evt-2"), event()])  # not a copy of the file: parsed

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (2, 1, 1, 0)
    assert quarantine(lake) == [] and len(stored(lake)["evt-1"]) == 1


def test_the_same_value_in_other_bytes_is_a_duplicate(landing, lake, settings):
    original = event()
    line = reformatted(original)
    assert line != json.dumps(original) and json.loads(line) == original  # really other bytes, same value
    write_lines(landing / "1.jsonl", [original])
    ingest(lake, str(landing), settings)
    write_lines(landing / "2.jsonl", [line, "  " + json.dumps(original, indent=None) + "  "])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (2, 0, 2, 0)
    assert quarantine(lake) == [] and stored(lake)["evt-1"] == [json.dumps(original)]


def test_other_content_on_the_same_day_is_quarantined_across_runs(landing, lake, settings):
    write_lines(landing / "1.jsonl", [event()])
    ingest(lake, str(landing), settings)
    changed = json.dumps(event(activity="deleted"))
    write_lines(landing / "2.jsonl", [make_event(id="evt-2"), changed])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (2, 1, 0, 1)
    assert report.quarantine_reasons == {"id already stored with different content": 1}
    assert quarantine(lake) == [("2.jsonl", 2, CONFLICT.format("evt-1"), changed)]
    assert stored(lake)["evt-1"] == [json.dumps(event())]  # the first one stays
    assert ledger(lake)["2.jsonl"] == (2, 1, 0, 1)


def test_another_created_at_is_other_content_even_on_another_day(landing, lake, settings):
    write_lines(landing / "1.jsonl", [event(created_at="2024-01-15T10:30:00Z")])
    ingest(lake, str(landing), settings)
    moved = json.dumps(event(created_at="2024-01-20T10:30:00Z"))
    write_lines(landing / "2.jsonl", [moved])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (1, 0, 0, 1) and report.days_changed == set()
    assert quarantine(lake) == [("2.jsonl", 1, CONFLICT.format("evt-1"), moved)]
    assert lake.days(ACTIVITY_RAW) == [date(2024, 1, 15)] and len(stored(lake)["evt-1"]) == 1
    assert ledger(lake)["2.jsonl"] == (1, 0, 0, 1)


def test_within_one_batch_the_first_in_file_and_line_order_wins(landing, lake, settings):
    first, other_day = event(), event(created_at="2024-01-20T10:30:00Z")
    write_lines(landing / "1.jsonl", [first, event(activity="deleted"), reformatted(first), make_event(id="evt-2")])
    write_lines(landing / "2.jsonl", [first, other_day, make_event(id="evt-2", scope="Insight")])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (7, 2, 2, 3)
    assert report.quarantine_reasons == {"id already stored with different content": 3}
    assert [(source, line, reason) for source, line, reason, _ in quarantine(lake)] == [
        ("1.jsonl", 2, CONFLICT.format("evt-1")), ("2.jsonl", 2, CONFLICT.format("evt-1")),
        ("2.jsonl", 3, CONFLICT.format("evt-2"))]
    assert quarantine(lake)[1][3] == json.dumps(other_day)  # verbatim
    assert stored(lake)["evt-1"] == [json.dumps(first)] and lake.days(ACTIVITY_RAW) == [date(2024, 1, 15)]
    assert ledger(lake) == {"1.jsonl": (4, 2, 1, 1), "2.jsonl": (3, 0, 1, 2)}


def test_across_the_batches_of_one_run(landing, lake, settings):
    write_lines(landing / "1.jsonl", [event()])
    write_lines(landing / "2.jsonl", [event(), event(item_id="999")])

    report = ingest(lake, str(landing), settings, batch_bytes=1)  # a flush (and commit) per file

    assert counts(report) == (3, 1, 1, 1)
    assert [(s, line) for s, line, _, _ in quarantine(lake)] == [("2.jsonl", 2)]


@pytest.mark.parametrize("before, after, same", [
    ("1", "1.0", True), ("1.50", "1.5", True), ("100", "1e2", True), ("0.1", "0.10000000000000001", False),
    ("true", "1", False), ("false", "0", False), ("null", "0", False), ('"1"', "1", False),
    ('{"a": 1, "b": [1, 2]}', '{"b": [1, 2], "a": 1}', True), ("[1, 2]", "[2, 1]", False),
])
def test_json_values_compare_by_value_not_by_python_truthiness(landing, lake, settings, before, after, same):
    template = json.dumps(event()).replace('"after": 50', '"after": VALUE')
    write_lines(landing / "1.jsonl", [template.replace("VALUE", before)])
    ingest(lake, str(landing), settings)
    write_lines(landing / "2.jsonl", [template.replace("VALUE", after)])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == ((1, 0, 1, 0) if same else (1, 0, 0, 1))


def test_a_retry_after_a_crash_records_a_conflict_once(landing, lake, settings, monkeypatch):
    write_lines(landing / "1.jsonl", [event()])
    ingest(lake, str(landing), settings)
    write_lines(landing / "2.jsonl", [event(activity="deleted")])
    with appends_fail(monkeypatch, INGEST_LEDGER), pytest.raises(RuntimeError, match="simulated crash"):
        ingest(lake, str(landing), settings)

    retry = ingest(lake, str(landing), settings)

    assert counts(retry) == (1, 0, 0, 1)
    assert len(quarantine(lake)) == 1


def test_a_copy_of_an_erased_users_event_is_a_duplicate_not_their_data_again(landing, lake, settings):
    """The stored event was rewritten by an erasure: quarantining the original line would keep the
    erased email in activity_quarantine.raw_text."""
    from transforms.erasure import erase_user

    original = event(user={"uuid": "uuid-zoe", "email": "zoe@example.org", "first_name": "Zoe"})
    build_lake(lake, landing, [original], name="1.jsonl", settings=settings)
    erase_user(lake, "zoe@example.org")
    write_lines(landing / "2.jsonl", [make_event(id="evt-2"), original])  # not a copy of the file: parsed

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (2, 1, 1, 0)
    assert quarantine(lake) == [] and "zoe@example.org" not in stored(lake)["evt-1"][0]


def test_the_full_accounting_of_a_mixed_run(landing, lake, settings):
    write_lines(landing / "1.jsonl", [event(), make_event(id="evt-2")])
    ingest(lake, str(landing), settings)
    write_lines(landing / "2.jsonl", [event(), "not json", "", event(scope="Insight"), make_event(id="evt-3"),
                                      make_event(id="evt-3"), make_event(id="evt-3", activity="created")])

    report = ingest(lake, str(landing), settings)

    assert counts(report) == (6, 1, 2, 3)  # blank line not counted; evt-3's second copy differs in nothing
    assert report.quarantine_reasons == {"invalid JSON": 1, "id already stored with different content": 2}
    assert ledger(lake)["2.jsonl"] == (6, 1, 2, 3)
    assert pl.Series([len(v) for v in stored(lake).values()]).max() == 1
