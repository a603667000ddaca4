"""The filter language against a real lake: every field (detail filters with PostHog's type variants, search,
users, flags, organization rows, time bounds and the read window, a day range that reads no other day),
cursors and pages in both orders, and the same semantics in notifications, exports and the configuration."""

import json
from datetime import datetime, timezone

import pytest

from tests.helpers.events import make_event
from tests.helpers.lakes import build_lake
from pipelines.config import ConfigError, load_config
from transforms.durations import Duration
from transforms.export import export_days, export_rows
from transforms.filters import ActivityFilter, FilterError, decode_cursor, encode_cursor
from transforms.lake import ACTIVITY_LOG
from transforms.notify import evaluate
from transforms.query import query, query_page


def at(day: int, hour: int = 10, second: int = 0) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:00:{second:02d}.000000Z"


def flag_event(after, *, field="rollout_percentage", before=0, **overrides):
    detail = {"name": "new-checkout-flow", "changes": [
        {"type": "FeatureFlag", "action": "changed", "field": field, "before": before, "after": after}]}
    return make_event(detail=detail, **overrides)


PLAIN = {"name": "plain", "changes": []}


@pytest.fixture
def events():
    return {
        "int": flag_event(1, created_at=at(10)),
        "float": flag_event(1.0, created_at=at(10, 11)),
        "string": flag_event("1", created_at=at(10, 12)),
        "bool": flag_event(True, created_at=at(10, 13)),
        "exp": flag_event(1e2, created_at=at(11)),  # written as 100.0
        "unicode": make_event(detail={"name": "café ünïcode", "changes": []}, created_at=at(11, 11)),
        "object": flag_event({"groups": [{"rollout_percentage": 50}]}, field="filters", created_at=at(12)),
        "trigger": make_event(scope="BatchExport", detail={"name": "nightly", "trigger": {"job_type": "Export_S3"}},
                              created_at=at(12, 11), user=None, is_system=True),
        "org": make_event(scope="OrganizationMembership", detail=PLAIN, team_id=None, organization_id="org-1", item_id="m-1",
                          created_at=at(13), user={"uuid": "u-2", "email": "Bob@Example.com", "first_name": "Bob"}),
        "other_org": make_event(scope="OrganizationMembership", detail=PLAIN, team_id=None, organization_id="org-9",
                                item_id="m-9", created_at=at(13, 11)),
        "team2": make_event(detail=PLAIN, team_id=2, organization_id="org-2", created_at=at(14), client="api-v2",
                            ip_address="198.51.100.20", was_impersonated=True),
        "long": make_event(detail={"name": "many", "changes": [
            {"field": f"f{i}", "before": i + 1000, "after": i + 1001} for i in range(5000)] + [
            {"field": "needle", "before": None, "after": "checkout"}]}, created_at=at(15)),
    }


@pytest.fixture
def built(lake, landing, events):
    lines = []
    for name, event in events.items():
        event["item_id"] = event.get("item_id") or name
        if event["item_id"] == "12345":
            event["item_id"] = name
        lines.append(event)
    # a raw line keeps number formats: write the 1e2 event by hand
    text = [json.dumps(e) for e in lines]
    text[list(events).index("exp")] = text[list(events).index("exp")].replace('"after": 100.0', '"after": 1e2')
    build_lake(lake, landing, text)
    ids = {name: event["id"] for name, event in events.items()}
    return lake, ids


def matching(lake, ids, **fields):
    frame = query(lake, ActivityFilter(**fields))
    got = set(frame.collect()["id"].to_list())
    return {name for name, event_id in ids.items() if event_id in got}


# -- every field against a real lake -----------------------------------------------------------


def test_detail_exact_compares_type_variants_as_posthog(built):
    lake, ids = built
    one = {"detail_filters": {"changes[].after": {"operation": "exact", "value": 1}}}
    assert matching(lake, ids, **one) == {"int", "float", "string"}  # 1, 1.0 and "1"; not true
    string = {"detail_filters": {"changes[].after": {"operation": "exact", "value": "1"}}}
    assert matching(lake, ids, **string) == {"int", "float", "string", "bool"}  # "1" is also 1 and true
    boolean = {"detail_filters": {"changes[].after": {"operation": "exact", "value": True}}}
    assert matching(lake, ids, **boolean) == {"bool", "string"}  # true, "true", "True", "1"; not the number 1
    hundred = {"detail_filters": {"changes[].after": {"operation": "exact", "value": 100}}}
    assert matching(lake, ids, **hundred) == {"exp"}
    whole = {"detail_filters": {"changes[].after": {"operation": "exact", "value": {"groups": [{"rollout_percentage": 50}]}}}}
    assert matching(lake, ids, **whole) == {"object"}


def test_detail_contains_in_and_nested_paths(built):
    lake, ids = built
    assert matching(lake, ids, detail_filters={"name": {"operation": "contains", "value": "CAFÉ"}}) == {"unicode"}
    assert matching(lake, ids, detail_filters={"name": {"operation": "exact", "value": "café ünïcode"}}) == {"unicode"}
    assert matching(lake, ids, detail_filters={"trigger.job_type": {"operation": "contains", "value": "export"}}) == {"trigger"}
    assert matching(lake, ids, detail_filters={"changes[].after": {"operation": "in", "value": ["1", True]}}) == {
        "int", "float", "string", "bool"}
    assert matching(lake, ids, detail_filters={"changes[].after[]": {"operation": "exact", "value": 1}}) == set()
    assert matching(lake, ids, detail_filters={
        "changes[].after.groups[].rollout_percentage": {"operation": "in", "value": [50]}}) == {"object"}


def test_any_element_has_no_length_limit(built):
    lake, ids = built
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "exact", "value": "needle"}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].after": {"operation": "exact", "value": 6000}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "in", "value": ["f4999", "zzz"]}}) == {"long"}
    assert matching(lake, ids, detail_filters={"changes[].field": {"operation": "contains", "value": "NEEDL"}}) == {"long"}


def test_search_is_case_insensitive_over_detail_and_summary(built):
    lake, ids = built
    assert matching(lake, ids, search="CHECKOUT") == {"int", "float", "string", "bool", "exp", "object", "long"}
    assert matching(lake, ids, search="café") == {"unicode"}
    assert matching(lake, ids, search="System exported") == set()  # not a substring of any summary here
    assert matching(lake, ids, search="batch export") == {"trigger"}  # in the summary only


def test_users_by_uuid_or_email_and_flags(built):
    lake, ids = built
    assert matching(lake, ids, users=["u-2"]) == {"org"}
    assert matching(lake, ids, users=["bob@EXAMPLE.com"]) == {"org"}
    assert matching(lake, ids, is_system=True) == {"trigger"}
    assert matching(lake, ids, was_impersonated=True) == {"team2"}
    assert matching(lake, ids, clients=["api*"]) == {"team2"}
    assert matching(lake, ids, ip_addresses=["198.51.*"]) == {"team2"}
    assert matching(lake, ids, ip_addresses=["198.51.100.20"], clients=["web"]) == set()


def test_organization_rows_join_a_project_only_when_asked(built):
    lake, ids = built
    everything = set(ids)
    assert matching(lake, ids) == everything
    team1 = everything - {"org", "other_org", "team2"}
    assert matching(lake, ids, team_ids=[1]) == team1
    assert matching(lake, ids, team_ids=[1], include_organization=True) == team1 | {"org"}
    assert matching(lake, ids, team_ids=[2], include_organization=True) == {"team2"}


def test_time_bounds_and_read_window(built):
    lake, ids = built
    assert matching(lake, ids, start="2024-01-14") == {"team2", "long"}
    assert matching(lake, ids, end="2024-01-10") == {"int", "float", "string", "bool"}
    assert matching(lake, ids, start="2024-01-10T11:00:00Z", end="2024-01-10T12:00:00+00:00") == {"float", "string"}
    now = datetime(2024, 1, 16, 0, 0, tzinfo=timezone.utc)
    window = query(lake, ActivityFilter(), read_window=Duration(days=2), now=now).collect()
    assert {ids[n] for n in ("team2", "long")} == set(window["id"])
    narrowed = query(lake, ActivityFilter(start="2024-01-01"), read_window=Duration(days=2), now=now).collect()
    assert set(narrowed["id"]) == set(window["id"])
    assert query(lake, ActivityFilter(), read_window=Duration(months=2), now=now).collect().height == len(ids)


def test_a_day_range_never_reads_other_days(built, tmp_path):
    import shutil

    lake, ids = built
    # Remove every other day's files: a scan that touched them would fail.
    for directory in (tmp_path / "lake" / "activity_log").glob("day=*"):
        if directory.name != "day=2024-01-12":
            shutil.rmtree(directory)
    assert matching(lake, ids, start="2024-01-12", end="2024-01-12") == {"object", "trigger"}


# -- pagination --------------------------------------------------------------------------------


def test_cursor_round_trip_and_garbage():
    moment = datetime(2024, 1, 10, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert decode_cursor(encode_cursor(moment, "id:with:colons")) == (moment, "id:with:colons")
    with pytest.raises(FilterError, match="after: 'nope' is not a cursor"):
        decode_cursor("nope")


def test_pages_never_skip_or_repeat_rows_sharing_a_timestamp(lake, landing):
    same = "2024-01-20T09:00:00.000000Z"
    events = [make_event(id=f"evt-{i:02d}", created_at=same, item_id=str(i)) for i in range(7)]
    events += [make_event(id=f"old-{i}", created_at="2024-01-19T09:00:00.000000Z") for i in range(3)]
    events += [make_event(id="new-0", created_at="2024-01-21T00:00:00.000000Z")]
    build_lake(lake, landing, events, name="page.jsonl")
    seen, cursor, pages = [], None, 0
    while True:
        page = query_page(lake, ActivityFilter(), limit=3, after=cursor)
        seen += page.rows["id"].to_list()
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4
    expected = ["new-0"] + [f"evt-{i:02d}" for i in reversed(range(7))] + [f"old-{i}" for i in reversed(range(3))]
    assert seen == expected
    # A filter with a page: the cursor continues within the filter.
    first = query_page(lake, ActivityFilter(item_ids=["1", "2", "3"]), limit=2)
    second = query_page(lake, ActivityFilter(item_ids=["1", "2", "3"]), limit=2, after=first.next_cursor)
    assert first.rows["id"].to_list() + second.rows["id"].to_list() == ["evt-03", "evt-02", "evt-01"]
    assert second.next_cursor is None


def test_ordering_oldest_first_pages_with_the_id_as_tiebreak(lake, landing):
    events = [make_event(created_at=at(10), item_id=str(i)) for i in range(7)] + [
        make_event(created_at=at(11), item_id="later")]
    build_lake(lake, landing, events)
    tied = sorted(e["id"] for e in events[:7])
    seen, cursor = [], None
    while True:
        page = query_page(lake, ActivityFilter(), limit=3, after=cursor, ordering="created_at")
        seen += page.rows["id"].to_list()
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == tied + [events[7]["id"]]
    newest = query_page(lake, ActivityFilter(), limit=3)
    assert newest.rows["id"].to_list() == [events[7]["id"]] + tied[::-1][:2]
    with pytest.raises(FilterError, match="^after: .* other order"):
        query_page(lake, ActivityFilter(), limit=3, after=newest.next_cursor, ordering="created_at")
    with pytest.raises(FilterError, match='^ordering: "scope" is not a valid choice'):
        query(lake, ActivityFilter(), ordering="scope")


def test_notifications_exports_and_configuration_share_the_semantics(built, tmp_path):
    lake, ids = built
    activity_filter = ActivityFilter.from_dict(
        {"detail_filters": {"changes[].after": {"operation": "exact", "value": "1"}}})
    expected = {"int", "float", "string", "bool"}
    log = lake.scan(ACTIVITY_LOG).collect()
    matched = set(evaluate(log, [("ones", activity_filter)])["event_id"])
    assert {name for name, event_id in ids.items() if event_id in matched} == expected
    exported = set(export_rows(lake, activity_filter, export_days(lake, activity_filter))["id"])
    assert {name for name, event_id in ids.items() if event_id in exported} == expected
    path = tmp_path / "activitylog.yaml"
    path.write_text('exports:\n  - {name: x, schedule: "0 2 * * *", format: csv, destination: "%s",\n'
                    '     filter: {detail_filters: {"name.regex": {operation: exact, value: x}}}}\n'
                    % (tmp_path / "out").as_posix())
    with pytest.raises(ConfigError, match=r"exports\[0\]\.filter: detail_filters: Detail filter field path "
                                          r"'name\.regex' uses reserved segment 'regex'"):
        load_config(path)
