"""The configuration file's durations: units, none/forever, refusals naming the setting, calendar arithmetic
(month ends, leap years, saturation), their text and fixed length, durations in a model."""

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ConfigDict

from tests.helpers.config import no_config_env
from pipelines.config import ConfigError, Duration, DurationError, DurationValue, parse_duration, validate_model


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch, tmp_path):
    """Each test starts with no ACTIVITYLOG_CONFIG and a working directory without activitylog.yaml."""
    no_config_env(monkeypatch, tmp_path)


# ----------------------------------------------------------------------------------------------
# Durations
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12h", Duration(hours=12)),
        ("7d", Duration(days=7)),
        ("2w", Duration(days=14)),
        ("2mo", Duration(months=2)),
        ("5y", Duration(months=60)),
        ("0d", Duration()),
        (" 1D ", Duration(days=1)),
        ("3MO", Duration(months=3)),
    ],
)
def test_parse_duration_units(text, expected):
    assert parse_duration(text, "retention.default") == expected


@pytest.mark.parametrize("text", ["none", "forever", "None", "FOREVER", " forever "])
def test_parse_duration_none_and_forever(text):
    assert parse_duration(text, "retention.default") is None


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1.5d", "7s", "1d12h", "mo"])
def test_parse_duration_rejects_bad_text(text):
    with pytest.raises(ConfigError) as info:
        parse_duration(text, "activitylog.yaml: retention.default")
    message = str(info.value)
    assert message.startswith("activitylog.yaml: retention.default: ")
    assert repr(text) in message and "12h, 7d, 2w, 2mo or 5y" in message


@pytest.mark.parametrize("value, kind", [(7, "a number"), (None, "null"), (["7d"], "a list")])
def test_parse_duration_rejects_non_strings(value, kind):
    with pytest.raises(ConfigError, match=rf"^x\.y: must be a duration like .*, not {kind}$"):
        parse_duration(value, "x.y")


def test_parse_duration_m_is_ambiguous():
    with pytest.raises(ConfigError, match=r"retention\.default: '2m' is ambiguous: write 2mo for months"):
        parse_duration("2m", "retention.default")


@pytest.mark.parametrize(
    "moment, text, expected",
    [
        (datetime(2024, 3, 31), "1mo", datetime(2024, 2, 29)),  # leap year
        (datetime(2023, 3, 31), "1mo", datetime(2023, 2, 28)),
        (datetime(2024, 5, 31), "1mo", datetime(2024, 4, 30)),
        (datetime(2024, 1, 31), "2mo", datetime(2023, 11, 30)),  # across a year end
        (datetime(2024, 3, 15), "14mo", datetime(2023, 1, 15)),
        (datetime(2024, 2, 29), "1y", datetime(2023, 2, 28)),
        (datetime(2029, 6, 1), "5y", datetime(2024, 6, 1)),
        (datetime(2024, 3, 1), "1d", datetime(2024, 2, 29)),
        (datetime(2024, 3, 1, 6), "12h", datetime(2024, 2, 29, 18)),
        (datetime(2024, 1, 10), "2w", datetime(2023, 12, 27)),
    ],
)
def test_duration_before(moment, text, expected):
    assert parse_duration(text, "x").before(moment) == expected


def test_duration_before_keeps_timezone_and_combines_parts():
    moment = datetime(2024, 3, 31, 10, 30, tzinfo=timezone.utc)
    assert Duration(months=1, days=1, hours=11).before(moment) == datetime(2024, 2, 27, 23, 30, tzinfo=timezone.utc)


def test_duration_after_and_saturation():
    assert Duration(months=1).after(datetime(2024, 1, 31)) == datetime(2024, 2, 29)
    moment = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert parse_duration("5000y", "x").before(moment) == datetime.min.replace(tzinfo=timezone.utc)
    assert parse_duration("99999999999d", "x").before(moment) == datetime.min.replace(tzinfo=timezone.utc)
    assert Duration(months=12 * 9000).after(moment) == datetime.max.replace(tzinfo=timezone.utc)


def test_duration_text_and_fixed_length():
    assert [str(parse_duration(t, "x")) for t in ("12h", "7d", "2w", "2mo", "5y", "14mo", "0d")] == [
        "12h", "7d", "14d", "2mo", "5y", "1y2mo", "0d",
    ]
    assert parse_duration("2w", "x").to_timedelta() == timedelta(days=14)
    assert parse_duration("12h", "x").to_timedelta() == timedelta(hours=12)
    assert not parse_duration("7d", "x").is_calendar and parse_duration("1y", "x").is_calendar
    with pytest.raises(DurationError, match=r"^notifications\.max_event_age: 2mo has no fixed length"):
        parse_duration("2mo", "x").to_timedelta("notifications.max_event_age")


class _Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: DurationValue = Duration(months=60)
    organizations: dict[str, DurationValue] = {}


def test_duration_value_in_a_model():
    parsed = validate_model(
        _Retention, {"default": "forever", "organizations": {"org-1": "2mo"}}, where="activitylog.yaml: retention"
    )
    assert parsed.default is None and parsed.organizations == {"org-1": Duration(months=2)}
    assert parsed.model_dump() == {"default": "forever", "organizations": {"org-1": "2mo"}}
    with pytest.raises(ConfigError) as info:
        validate_model(_Retention, {"organizations": {"org-1": "2 months"}}, where="activitylog.yaml: retention")
    assert str(info.value) == (
        "activitylog.yaml: retention.organizations.org-1: "
        "'2 months' is not a duration like 12h, 7d, 2w, 2mo or 5y (or none/forever)"
    )
