"""Nested JSON reaches every table exactly: escapes, control characters, NUL, surrogates, huge numbers.

Each case goes through the real ingest and the real refresh (events, changes, log, history) and is
read back from the tables; the texts are compared byte for byte with what the line held.
"""

import json

import polars as pl
import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from transforms.jsontext import MAX_DEPTH
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_EVENTS, ACTIVITY_LOG, ACTIVITY_QUARANTINE, ACTIVITY_RAW
from transforms.refresh import refresh_all


def _line(detail_text: str, **fields) -> str:
    """An event line whose ``detail`` is exactly ``detail_text`` (written by hand, not re-encoded)."""
    event = make_event(**fields)
    del event["detail"]
    return json.dumps(event)[:-1] + ', "detail": ' + detail_text + "}"


def _change(before: str, after: str, field: str = '"f"') -> str:
    return '{"name": "n", "changes": [{"type": "FeatureFlag", "action": "changed", "field": ' + field + \
        ', "before": ' + before + ', "after": ' + after + "}]}"


def _pipeline(lake, landing, settings, lines):
    return build_lake(lake, landing, lines, settings=settings)


POISON = {
    "backslashes": r'"regex \\d+ C:\\temp\\new"',
    "tab escape": r'"a\tb"',
    "NUL": r'"a\u0000b"',
    "unpaired high surrogate": r'"\ud800"',
    "unpaired low surrogate": r'"x\udfffy"',
    "surrogate pair": r'"\ud83d\ude00"',
    "line separators": '"\u2028\u2029"',
    "escaped line separators": r'"\u2028\u2029"',
    "quotes": r'"say \"hi\""',
    "huge number": "1e999",
    "tiny number": "1E-400",
    "long integer": "123456789012345678901234567890",
    "trailing zero": "1.50",
    "negative zero": "-0",
    "nested": '{"b": [1, {"c": "\\\\"}], "a": null}',
    "duplicate keys": '{"k": 1, "k": 2}',
    "empty string": '""',
    "deep": "[" * (MAX_DEPTH - 10) + "]" * (MAX_DEPTH - 10),
}


@pytest.mark.parametrize("value", list(POISON.values()), ids=list(POISON))
def test_a_value_reaches_every_table_byte_for_byte(lake, landing, settings, value):
    detail = _change(value, value)
    good = make_event()
    report = _pipeline(lake, landing, settings, [good, _line(detail, id="poison")])

    assert (report.accepted, report.quarantined) == (2, 0)
    for table in (ACTIVITY_EVENTS, ACTIVITY_LOG):
        stored = lake.scan(table).filter(pl.col("id") == "poison").collect()
        assert stored["detail"].item() == detail, table
    change = lake.scan(ACTIVITY_CHANGES).filter(pl.col("id") == "poison").collect()
    assert (change["before"].item(), change["after"].item()) == (value, value)
    assert json.loads(change["after"].item()) == json.loads(value) or value == "[]"  # same JSON value
    log = lake.scan(ACTIVITY_LOG).collect()
    assert sorted(log["id"].to_list()) == sorted([good["id"], "poison"])


def test_plain_text_columns_read_unpaired_surrogates_as_replacement_characters(lake, landing, settings):
    detail = r'{"name": "cut \ud83d", "changes": [{"field": "f", "before": "\udc00", "after": "ok"}]}'
    _pipeline(lake, landing, settings, [_line(detail, id="s", user={"uuid": "u", "email": "e\ud800@x.y"})])

    event = lake.scan(ACTIVITY_EVENTS).collect().row(0, named=True)
    assert event["detail"] == detail
    assert event["detail_name"] == "cut \ufffd"
    assert event["actor_email"] == "e\ufffd@x.y"
    change = lake.scan(ACTIVITY_CHANGES).collect().row(0, named=True)
    assert (change["before"], change["before_text"]) == (r'"\udc00"', "\ufffd")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_non_standard_token_quarantines_its_own_line_only(lake, landing, settings, token):
    lines = [json.dumps(make_event(id=f"good-{i}")) for i in range(1000)]
    lines.insert(500, _line(_change(token, "1"), id="bad"))

    report = _pipeline(lake, landing, settings, lines)

    assert (report.lines, report.accepted, report.quarantined) == (1001, 1000, 1)
    row = lake.scan(ACTIVITY_QUARANTINE).collect().row(0, named=True)
    assert row["line"] == 501 and row["raw_text"] == lines[500]
    assert row["quarantine_reason"].startswith("invalid JSON at column ")
    assert f"{token.lstrip('-')} is not a JSON value" in row["quarantine_reason"]
    assert lake.scan(ACTIVITY_LOG).select(pl.len()).collect().item() == 1000


def test_nesting_deeper_than_the_limit_is_quarantined_with_its_reason(lake, landing, settings):
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    report = _pipeline(lake, landing, settings, [make_event(), _line(_change(deep, "1"), id="deep")])

    assert (report.accepted, report.quarantined) == (1, 1)
    reason = lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].item()
    assert reason == f"invalid JSON: nested deeper than {MAX_DEPTH} levels"


def test_brackets_inside_strings_do_not_count_as_nesting(lake, landing, settings):
    text = json.dumps("[" * (MAX_DEPTH * 2))
    report = _pipeline(lake, landing, settings, [_line(_change(text, text))])
    assert (report.accepted, report.quarantined) == (1, 0)


def test_duplicate_keys_the_last_occurrence_wins_everywhere(lake, landing, settings):
    line = json.dumps(make_event(id="first", scope="Insight"))[:-1] + ', "id": "last", "scope": "FeatureFlag"}'
    _pipeline(lake, landing, settings, [line])

    raw = lake.scan(ACTIVITY_RAW).collect()
    assert (raw["id"].item(), raw["scope"].item(), raw["payload"].item()) == ("last", "FeatureFlag", line)
    assert lake.scan(ACTIVITY_LOG).collect()["id"].item() == "last"


def test_an_unpaired_surrogate_in_a_key_field_is_quarantined(lake, landing, settings):
    line = json.dumps(make_event(id="x"))
    line = line.replace('"id": "x"', r'"id": "x\ud800"')
    report = _pipeline(lake, landing, settings, [line])

    assert report.quarantined == 1
    reason = lake.scan(ACTIVITY_QUARANTINE).collect()["quarantine_reason"].item()
    assert reason == "id holds an unpaired UTF-16 surrogate (not text)"


def test_masking_keeps_the_rest_of_the_detail_exact(lake, landing, settings):
    detail = ('{"name": "C:\\\\x", "n": 1e999, "changes": [{"field": "password", "before": "s3cret", '
              '"after": "hunter2"}, {"field": "f", "before": 1.50, "after": "\\ud800"}]}')
    _pipeline(lake, landing, settings, [_line(detail, id="m")])

    stored = lake.scan(ACTIVITY_LOG).collect()["detail"].item()
    assert "s3cret" not in stored and "hunter2" not in stored
    assert '"n":1e999' in stored and '"name":"C:\\\\x"' in stored  # the other members as received
    assert '{"field": "f", "before": 1.50, "after": "\\ud800"}' in stored
    changes = lake.scan(ACTIVITY_CHANGES).sort("change_index").collect()
    assert changes["before"].to_list() == ['"masked"', "1.50"]


def test_erasure_keeps_the_other_members_exact(lake, landing, settings):
    from transforms.erasure import erase_user

    detail = _change("1e999", r'"\ud800 C:\\x"')
    _pipeline(lake, landing, settings, [_line(detail, id="mine", user={"uuid": "u-1", "email": "jane@example.com"}),
                                        _line(detail, id="other", user={"uuid": "u-2", "email": "bob@example.com"})])

    report = erase_user(lake, "jane@example.com")
    refresh_all(lake, report.days)

    log = {row["id"]: row for row in lake.scan(ACTIVITY_LOG).collect().iter_rows(named=True)}
    assert log["mine"]["detail"] == log["other"]["detail"] == detail
    assert log["mine"]["actor_email"] is None and log["other"]["actor_email"] == "bob@example.com"
    payload = lake.scan(ACTIVITY_RAW).filter(pl.col("id") == "mine").collect()["payload"].item()
    assert "jane" not in payload.lower(), payload
    assert "\"detail\":" + detail in payload  # the member re-emitted, its text exact


def test_json_document_elements_keep_their_exact_text(lake, landing, settings):
    detail = _change("1e999", r'"\ud800 C:\\x"')
    first, second = _line(detail, id="a"), _line(detail, id="b")
    nan = _line(_change("NaN", "1"), id="c")
    (landing / "page.json").write_text('{"next": null, "results": [' + first + ",\n  " + second + ", " + nan +
                                       '], "count": 3}', encoding="utf-8")
    (landing / "array.json").write_text("[" + _line(detail, id="d") + "]", encoding="utf-8")

    report = build_lake(lake, landing, settings=settings)

    assert (report.lines, report.accepted, report.quarantined) == (4, 3, 1)
    raw = dict(lake.scan(ACTIVITY_RAW).select("id", "payload").collect().iter_rows())
    assert raw == {"a": first, "b": second, "d": _line(detail, id="d")}
    assert set(lake.scan(ACTIVITY_LOG).collect()["detail"]) == {detail}
    row = lake.scan(ACTIVITY_QUARANTINE).collect().row(0, named=True)
    assert (row["line"], row["raw_text"]) == (3, nan) and "NaN is not a JSON value" in row["quarantine_reason"]
