"""activity_changes and activity_log from hand-written events: exact values, names, summaries, masking."""

import json
from datetime import date

import polars as pl
import pytest

from tests.helpers.events import make_event, write_lines
from tests.helpers.lakes import build_lake
from transforms.changes import MaskRules
from transforms.checks import expected_change_rows, raw_events_once_in_log, unmasked_secrets
from transforms.ingest import ingest
from transforms.lake import ACTIVITY_CHANGES, ACTIVITY_LOG, ACTIVITY_RAW, Lake
from transforms.notebook import activity_changes, activity_log
from transforms.reference import ReferenceError, lake_reference_uris, load_reference, load_references
from transforms.refresh import day_batches, refresh_changes, refresh_events
from transforms.validate import ValidationSettings

DAY = date(2024, 1, 15)
AT = "2024-01-15T10:30:00.000000Z"

HETEROGENEOUS = [
    {"type": "FeatureFlag", "action": "changed", "field": "active", "before": False, "after": True},
    {"type": "FeatureFlag", "action": "changed", "field": "rollout_percentage", "before": 0, "after": 50},
    {"field": "key", "before": "1", "after": 1},
    {"field": "ratio", "before": 1.5, "after": None},
    {"field": "filters", "before": {"groups": [{"properties": [], "rollout_percentage": 10}]}, "after": {"before": "x"}},
    {"field": "tags", "before": [], "after": ["a", "ü"]},
    {"field": "name", "before": "line\nbreak", "after": "x" * 100},
]


def build(lake: Lake, landing, events, references=None, rules=MaskRules(), default_team=None):
    build_lake(lake, landing, events, settings=ValidationSettings(default_team_id=default_team), rules=rules,
               references=references)
    return activity_log(lake.root).collect(), activity_changes(lake.root).collect()


@pytest.fixture
def references():
    return {
        "users": pl.DataFrame({"uuid": ["user-uuid-42"], "first_name": ["Zoë"], "last_name": ["Ångström"],
                               "role": ["admin"], "email": ["zoe@example.com"], "id": [42]}),
        "projects": pl.DataFrame({"team_id": [1], "name": ["Web app"], "organization_id": ["org-1"]}),
        "organizations": pl.DataFrame({"organization_id": ["org-1"], "name": ["Acme Corp"]}),
    }


def test_changes_keep_json_types_exactly(landing, lake):
    event = make_event(detail={"name": "flag", "changes": HETEROGENEOUS})
    _, changes = build(lake, landing, [event])

    changes = changes.sort("change_index")
    assert changes["field"].to_list() == [c["field"] for c in HETEROGENEOUS]
    assert [json.loads(v) for v in changes["before"]] == [c["before"] for c in HETEROGENEOUS]
    assert [json.loads(v) for v in changes["after"]] == [c["after"] for c in HETEROGENEOUS]
    assert changes.filter(pl.col("field") == "key").select("before", "after").row(0) == ('"1"', "1")
    assert changes.filter(pl.col("field") == "ratio")["after"].item() == "null"
    assert changes["before_text"].to_list()[:4] == ["false", "0", "1", "1.5"]
    assert changes.filter(pl.col("field") == "filters")["before_text"].item() is None  # objects: no text form
    assert changes.filter(pl.col("field") == "ratio")["after_text"].item() is None
    row = changes.row(0, named=True)
    assert (row["id"], row["scope"], row["actor_uuid"], row["change_type"], row["action"]) == (
        event["id"], "FeatureFlag", "user-uuid-42", "FeatureFlag", "changed")


def test_summary_and_names_from_reference_data(landing, lake, references):
    docs_example = make_event(detail={"name": "new-checkout-flow", "changes": HETEROGENEOUS[:2]},
                              user={"id": 42, "uuid": "user-uuid-42", "email": "jane@example.com",
                                    "first_name": "Jane", "last_name": "Doe"})
    log, _ = build(lake, landing, [docs_example], references)

    row = log.row(0, named=True)
    assert row["summary"] == ('Zoë Ångström changed feature flag "new-checkout-flow": '
                              "active false → true, rollout_percentage 0 → 50")
    assert (row["actor_name"], row["actor_role"], row["project_name"], row["organization_name"]) == (
        "Zoë Ångström", "admin", "Web app", "Acme Corp")
    assert row["changed_fields"] == ["active", "rollout_percentage"]
    assert (row["level"], row["actor_type"], row["resource_name"]) == ("project", "user", "new-checkout-flow")


def test_missing_reference_rows_leave_names_null_and_keep_the_event(landing, lake, references):
    stranger = make_event(user={"uuid": "nobody", "email": "who@example.com"}, team_id=99, organization_id="org-x",
                          detail={"short_id": "abc", "changes": []})
    log, changes = build(lake, landing, [stranger], references)

    assert log.height == 1 and changes.height == 0
    row = log.row(0, named=True)
    assert (row["project_name"], row["organization_name"], row["actor_role"]) == (None, None, None)
    assert row["actor_name"] == "who@example.com"
    assert row["resource_name"] == "abc"
    assert row["changed_fields"] == []
    assert row["summary"] == 'who@example.com changed feature flag "abc"'


def test_nulls_in_every_optional_field(landing, lake):
    bare = {"id": "bare", "activity": "updated", "scope": "Insight", "created_at": AT, "team_id": 3,
            "item_id": None, "detail": None, "user": None, "is_system": None, "was_impersonated": None,
            "organization_id": None, "client": None, "ip_address": None}
    log, changes = build(lake, landing, [bare])

    row = log.row(0, named=True)
    assert changes.height == 0
    assert (row["is_system"], row["was_impersonated"], row["actor_type"]) == (True, False, "system")
    assert row["resource_name"] is None and row["actor_name"] is None
    assert row["summary"] == 'System changed insight ""'


def test_unknown_scope_and_activity_use_the_fallback_sentence(landing, lake):
    event = make_event(scope="QuantumWidget", activity="teleported", detail={"name": "w1", "changes": HETEROGENEOUS[:1]},
                       was_impersonated=True)
    log, _ = build(lake, landing, [event])

    assert log["summary"].item() == 'Jane Doe (impersonated) teleported quantum widget "w1": active false → true'
    assert log["actor_type"].item() == "impersonated"


def test_long_values_are_shortened_and_the_summary_is_one_plain_line(landing, lake):
    event = make_event(detail={"name": "n" * 80, "changes": HETEROGENEOUS[::-1]})
    log, _ = build(lake, landing, [event])

    summary = log["summary"].item()
    assert "\n" not in summary
    assert f'"{"n" * 39}…"' in summary
    assert 'name "line\\nbreak" → "' + "x" * 38 + "…" in summary  # JSON text: the newline stays escaped
    assert 'tags [] → ["a", "ü"]' in summary
    assert 'key "1" → 1' in summary
    assert summary.endswith("and 2 more")  # five changes listed, the rest counted


def test_organization_level_membership_summary(landing, lake, references):
    invite = make_event(scope="OrganizationMembership", activity="invited", team_id=None, item_id="m-1",
                        detail={"name": "new.hire@example.com", "changes": []})
    log, _ = build(lake, landing, [invite], references)

    assert log["summary"].item() == "Zoë Ångström invited new.hire@example.com to Acme Corp"
    assert log["level"].item() == "organization"


def test_masking_hides_secrets_in_log_and_changes_but_not_raw(landing, lake):
    secret_changes = [
        {"field": "password", "before": "hunter2", "after": "correct horse"},
        {"field": "encrypted_inputs", "before": {"api": "k-1"}, "after": {"api": "k-2"}},
        {"field": "config", "before": {"token": "t"}, "after": None},
        {"field": "name", "before": "a", "after": "b"},
    ]
    integration = make_event(scope="Integration", detail={"name": "slack", "changes": secret_changes})
    flag = make_event(detail={"name": "f", "changes": [{"field": "config", "before": 1, "after": 2}]})
    log, changes = build(lake, landing, [integration, flag])

    masked = changes.filter(pl.col("masked"))
    assert sorted(masked["field"].to_list()) == ["config", "encrypted_inputs", "password"]
    assert set(masked["before"].to_list() + masked["after"].to_list()) == {'"masked"'}
    assert changes.filter(pl.col("field") == "config", pl.col("scope") == "FeatureFlag")["after"].item() == "2"
    integration_row = log.filter(pl.col("scope") == "Integration").row(0, named=True)
    assert "hunter2" not in integration_row["detail"] and "k-1" not in integration_row["detail"]
    assert "hunter2" not in integration_row["summary"]
    assert "password masked → masked" in integration_row["summary"]
    raw = lake.scan(ACTIVITY_RAW).collect()
    assert "hunter2" in raw.filter(pl.col("id") == integration["id"])["payload"].item()  # verbatim
    assert unmasked_secrets(lake, [DAY], MaskRules()) == {"activity_changes": 0, "activity_log": 0}


def test_leak_check_detects_an_unmasked_secret(landing, lake):
    event = make_event(detail={"changes": [{"field": "token", "before": "abc", "after": "def"}]})
    build(lake, landing, [event], rules=MaskRules(entries=()))  # built without masking

    assert unmasked_secrets(lake, [DAY], MaskRules()) == {"activity_changes": 1, "activity_log": 1}


def test_invariant_counts(landing, lake):
    events = [make_event(detail={"changes": HETEROGENEOUS[:n]}) for n in range(4)] + [make_event(detail=None)]
    build(lake, landing, events)

    assert expected_change_rows(lake, [DAY]) == 0 + 1 + 2 + 3
    assert lake.scan(ACTIVITY_CHANGES).collect().height == 6
    assert raw_events_once_in_log(lake, [DAY]) == {
        "raw_events": 5, "log_rows": 5, "missing_from_log": 0, "repeated_in_log": 0, "not_in_raw": 0}


def test_reference_files_csv_parquet_delta_and_errors(tmp_path):
    (tmp_path / "users.csv").write_text("uuid,first_name,last_name,role\nu1,Zoë,Ö,admin\nu1,Zoë,Ö,owner\n")
    pl.DataFrame({"team_id": [1], "name": ["Web"]}).write_parquet(tmp_path / "projects.parquet")
    pl.DataFrame({"organization_id": ["o"], "name": ["Acme"]}).write_delta(tmp_path / "organizations")

    loaded = load_references({"users": str(tmp_path / "users.csv"), "projects": str(tmp_path / "projects.parquet"),
                              "organizations": str(tmp_path / "organizations")})

    assert loaded["users"].rows() == [("u1", None, None, "Zoë", "Ö", "owner")]  # last row per key wins
    assert loaded["projects"]["organization_id"].to_list() == [None]
    assert loaded["organizations"]["name"].to_list() == ["Acme"]
    with pytest.raises(ReferenceError, match="has no 'uuid' column"):
        (tmp_path / "bad.csv").write_text("id,email\n1,a@b\n")
        load_reference("users", str(tmp_path / "bad.csv"))
    with pytest.raises(ReferenceError, match="does not exist"):
        load_reference("users", str(tmp_path / "nope"))


def test_reference_tables_are_found_under_the_lake(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "users.csv").write_text("uuid\nu\n")
    pl.DataFrame({"team_id": [1]}).write_delta(tmp_path / "reference" / "projects")
    assert lake_reference_uris(str(tmp_path)) == {
        "users": str(tmp_path / "reference" / "users.csv"), "projects": str(tmp_path / "reference" / "projects")}


def test_notebook_helper_explains_a_missing_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="no activity_log table"):
        activity_log(str(tmp_path))


def test_days_are_refreshed_in_batches_sized_by_row_counts(landing, lake):
    events = [make_event(created_at=f"2024-01-{d:02d}T10:00:00Z") for d in (1, 2, 2, 3, 3, 3, 5)]
    write_lines(landing / "events.jsonl", events)
    ingest(lake, str(landing), ValidationSettings())
    days = [date(2024, 1, d) for d in (1, 2, 3, 4, 5)]

    assert day_batches(lake, ACTIVITY_RAW, days, max_rows=3) == [days[:2], days[2:4], days[4:]]
    assert day_batches(lake, ACTIVITY_RAW, days, max_rows=1) == [days[:1], days[1:2], days[2:3], days[3:]]

    stats = refresh_events(lake, days)
    assert stats.select("day", "raw_rows", "events").rows() == [(d, n, n) for d, n in zip(days, (1, 2, 3, 0, 1))]
    changes = refresh_changes(lake, days)
    assert changes.select("events", "changes", "events_without_changes").row(1) == (2, 2, 0)


def test_change_row_count_is_the_same_read_a_few_days_at_a_time(landing, lake, monkeypatch):
    """The check reads raw payloads in batches of days (bounded memory); the sum does not depend on it."""
    import transforms.checks as checks

    days = [DAY, date(2024, 1, 16), date(2024, 1, 17)]
    events = [make_event(created_at=f"{d.isoformat()}T10:30:00.000000Z", detail={"changes": HETEROGENEOUS[:n]})
              for d in days for n in range(1, 5)] + [make_event(detail={"changes": "not a list"})]
    build(lake, landing, events)
    whole = expected_change_rows(lake, days)
    monkeypatch.setattr(checks, "CHECK_BATCH_ROWS", 1)
    assert expected_change_rows(lake, days) == whole == 3 * (1 + 2 + 3 + 4)
    assert expected_change_rows(lake, days[1:]) == 2 * 10
