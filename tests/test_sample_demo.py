"""Tests for pipelines.demo's demo landing: determinism, exact accounting, files and formats, late events, a
realistic mix, before/after values of every JSON type, reference data covering the events, small shapes.

Every count in a SampleReport is re-derived here from the bytes on disk with an independent parser
and validator (tests.helpers.sample), so the ingest can trust the report in its own tests.
"""

import csv
import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipelines.demo import SampleReport, write_demo_landing, write_reference_data
from tests.helpers.sample import END, Audit, audit, parse_ts, problem

DEMO_EVENTS = 8_000
DEMO_DAYS = 14
SEED = 20240115
ORG_SCOPES = {"OrganizationMembership", "Organization", "Role", "PersonalAPIKey"}


def file_day(path: Path) -> date | None:
    name = path.name
    if name.startswith("events-"):
        return date.fromisoformat(name[len("events-") : len("events-") + 10])
    return None


def changes_of(ev: dict) -> list[dict]:
    detail = ev.get("detail") or {}
    return detail.get("changes") or []


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[SampleReport, Audit]:
    landing = tmp_path_factory.mktemp("demo")
    seen: list[int] = []
    report = write_demo_landing(landing, events=DEMO_EVENTS, days=DEMO_DAYS, end_day=END, seed=SEED,
                                progress=seen.append)
    assert seen and seen[-1] == DEMO_EVENTS
    return report, audit(report.files)


# ---------------------------------------------------------------------------------------------
# Demo landing
# ---------------------------------------------------------------------------------------------


def test_demo_is_deterministic(tmp_path, demo):
    report, _ = demo
    again = write_demo_landing(tmp_path / "a", events=DEMO_EVENTS, days=DEMO_DAYS, end_day=END, seed=SEED)
    assert [p.name for p in again.files] == [p.name for p in report.files]
    for a, b in zip(report.files, again.files):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert {k: v for k, v in vars(again).items() if k != "files"} == {
        k: v for k, v in vars(report).items() if k != "files"
    }
    other = write_demo_landing(tmp_path / "b", events=500, days=DEMO_DAYS, end_day=END, seed=SEED + 1)
    assert other.files[0].read_bytes() != report.files[0].read_bytes()


def test_demo_report_matches_files(demo):
    report, a = demo
    assert report.start_day == END - timedelta(days=DEMO_DAYS - 1) and report.end_day == END
    assert report.events == DEMO_EVENTS == len(a.distinct)
    assert report.duplicate_lines == len(a.valid) - len(a.distinct) == 30
    assert report.malformed_lines == sum(a.reasons.values()) == 10
    assert report.malformed_reasons == dict(a.reasons)
    assert report.blank_lines == a.blank > 0
    # The ingest's accounting: accepted + duplicates + quarantined = non-blank lines read.
    assert report.events + report.duplicate_lines + report.malformed_lines == len(a.lines)
    expected_kinds = {"invalid_json", "not_an_object", "missing_created_at", "created_at_without_timezone",
                      "created_at_in_future", "scope_too_long", "empty_id", "missing_scope"}
    assert expected_kinds <= set(report.malformed_reasons)


def test_demo_files_and_formats(demo):
    report, a = demo
    names = [p.name for p in report.files]
    days = [file_day(p) for p in report.files]
    assert days == [report.start_day + timedelta(days=i) for i in range(DEMO_DAYS)], "one file per day"
    assert all(p.exists() for p in report.files)
    suffixes = Counter("".join(p.suffixes[-2:]) if p.name.endswith(".gz") else p.suffix for p in report.files)
    assert suffixes[".jsonl.gz"] >= 1 and suffixes[".ndjson"] == 1 and suffixes[".json"] == 2
    docs = [json.loads(p.read_text("utf-8")) for p in report.files if p.suffix == ".json"]
    assert sorted(type(d).__name__ for d in docs) == ["dict", "list"]
    assert names[-1].endswith(".jsonl"), "the newest day is plain NDJSON"
    # No bad lines or duplicate copies inside the .json documents.
    for line in a.lines:
        if line.text is None:
            assert problem(line.value) is None
    occurrences = Counter(line.value["id"] for line in a.valid)
    in_json = Counter(line.value["id"] for line in a.valid if line.text is None)
    assert in_json and max(in_json.values()) == 1, "an event of a .json file may have copies only elsewhere"
    copies_same_file = sum(
        1 for i, n in occurrences.items() if n > 1 and len({x.file for x in a.valid if x.value["id"] == i}) == 1
    )
    assert 0 < copies_same_file < report.duplicate_lines, "duplicates both within and across files"
    # The BOM file starts with a valid event (the BOM must be stripped, not quarantined).
    ndjson = next(p for p in report.files if p.suffix == ".ndjson")
    first = next(x for x in a.lines if x.file == ndjson)
    assert first.number == 1 and problem(first.value) is None


def test_demo_late_events(demo):
    report, a = demo
    own_day = {i: parse_ts(ev["created_at"]).date() for i, ev in a.distinct.items()}
    files_of: dict[str, list[date]] = {}
    for line in a.valid:
        files_of.setdefault(line.value["id"], []).append(file_day(line.file))
    not_in_own = sum(1 for i, fs in files_of.items() if own_day[i] not in fs)
    outside_own = sum(1 for i, fs in files_of.items() if any(f != own_day[i] for f in fs))
    assert not_in_own <= report.late_events <= outside_own
    assert 0.01 < report.late_events / report.events < 0.03
    for i, fs in files_of.items():
        if len(fs) == 1 and fs[0] != own_day[i]:
            lag = (fs[0] - own_day[i]).days
            assert 1 <= lag <= 3 or fs[0] == report.end_day
    for ev in a.distinct.values():
        assert report.start_day <= own_day[ev["id"]] <= report.end_day


def test_demo_mix_is_realistic(demo):
    report, a = demo
    evs = list(a.distinct.values())
    n = len(evs)
    system = [e for e in evs if e["is_system"]]
    assert 0.045 < len(system) / n < 0.075
    for e in system:
        assert e["user"] is None and e["was_impersonated"] is False
        assert e["detail"]["trigger"]["job_type"] and e["detail"]["trigger"]["job_id"]
    humans = [e for e in evs if not e["is_system"]]
    assert all(e["user"] is not None for e in humans)
    assert all(e["detail"] is None or e["detail"]["trigger"] is None for e in humans)
    impersonated = [e for e in evs if e["was_impersonated"]]
    assert 0.005 < len(impersonated) / n < 0.02 and all(e["user"] for e in impersonated)
    org_level = [e for e in evs if "team_id" not in e]
    assert 0.03 < len(org_level) / n < 0.07
    assert {e["scope"] for e in org_level} <= ORG_SCOPES and len({e["scope"] for e in org_level}) == 4
    assert all(e["organization_id"] for e in org_level)
    project = [e for e in evs if "team_id" in e]
    assert all(isinstance(e["team_id"], int) and e["organization_id"] for e in project)
    assert {e["team_id"] for e in project} == set(range(1, 13))
    scopes = Counter(e["scope"] for e in evs)
    for s in ("FeatureFlag", "Insight", "Dashboard", "Experiment", "Cohort", "Notebook", "Survey", "Action",
              "HogFunction", "Team", "PersonalAPIKey", "OrganizationMembership", "Organization", "Role"):
        assert scopes[s] > 0, s
    assert scopes.most_common(1)[0][0] == "FeatureFlag"
    assert {e["activity"] for e in evs if e["scope"] == "FeatureFlag"} == {"created", "updated", "deleted"}
    assert {e["activity"] for e in evs if e["scope"] == "PersonalAPIKey"} >= {"created", "revoked"}
    assert {e["activity"] for e in evs if e["scope"] == "OrganizationMembership"} == {
        "invited", "joined", "removed", "updated"}
    fields = Counter(c["field"] for e in evs for c in changes_of(e))
    for f in ("active", "rollout_percentage", "filters", "name", "encrypted_inputs", "inputs", "level",
              "session_recording_opt_in"):
        assert fields[f] > 0, f
    # item ids: mostly numeric strings, some JSON numbers, some non-numeric short ids
    kinds = Counter("int" if isinstance(e["item_id"], int) else "digits" if e["item_id"].isdigit() else "other"
                    for e in evs)
    assert kinds["digits"] / n > 0.6 and 0.005 < kinds["int"] / n < 0.04 and kinds["other"] > 0
    # unknown top-level fields, null details, empty changes
    known = {"id", "activity", "scope", "item_id", "detail", "user", "created_at", "is_system", "was_impersonated",
             "team_id", "organization_id", "client", "ip_address"}
    assert any("source_region" in e for e in evs)
    assert all(set(e) - known <= {"source_region", "producer"} for e in evs)
    assert any(e["detail"] is None for e in evs)
    assert any(e["detail"] is not None and e["detail"]["changes"] == [] for e in evs)
    assert {e["client"] for e in evs} >= {"web", "api"}
    # created_at: microseconds and a Z suffix; mostly business hours
    assert all(len(e["created_at"]) == 27 and e["created_at"].endswith("Z") for e in evs)
    hours = Counter(int(e["created_at"][11:13]) for e in humans)
    assert sum(hours[h] for h in range(8, 18)) / len(humans) > 0.6


def test_demo_before_after_cover_every_json_type(demo):
    _, a = demo
    values = [v for e in a.distinct.values() for c in changes_of(e) for v in (c["before"], c["after"])]
    types = Counter(type(v).__name__ for v in values)
    for t in ("int", "float", "str", "bool", "NoneType", "dict", "list"):
        assert types[t] > 0, t
    assert any(isinstance(v, str) and v.isdigit() for v in values), "numbers as strings"
    assert 1 in [v for v in values if type(v) is int] and "1" in values, '"1" as well as 1'


def test_reference_data_covers_events(tmp_path, demo):
    _, a = demo
    paths = write_reference_data(tmp_path / "ref", seed=SEED)
    assert set(paths) == {"users", "projects", "organizations"}
    again = write_reference_data(tmp_path / "ref2", seed=SEED)
    assert all(paths[k].read_bytes() == again[k].read_bytes() for k in paths)

    def rows(p):
        with p.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    users, projects, orgs = rows(paths["users"]), rows(paths["projects"]), rows(paths["organizations"])
    assert list(users[0]) == ["id", "uuid", "email", "first_name", "last_name", "organization_id", "role"]
    assert list(projects[0]) == ["team_id", "organization_id", "name"]
    assert list(orgs[0]) == ["organization_id", "name"]
    assert len(orgs) == 3 and len(projects) == 12 and 50 <= len(users) <= 70
    assert sorted(int(p["team_id"]) for p in projects) == list(range(1, 13))
    assert Counter(p["organization_id"] for p in projects) == {o["organization_id"]: 4 for o in orgs}
    assert {u["role"] for u in users} == {"owner", "admin", "member"}
    assert len({u["uuid"] for u in users}) == len({u["email"] for u in users}) == len({u["id"] for u in users})

    org_ids = {o["organization_id"] for o in orgs}
    team_org = {int(p["team_id"]): p["organization_id"] for p in projects}
    by_uuid = {u["uuid"]: u for u in users}
    for ev in a.distinct.values():
        assert ev["organization_id"] in org_ids
        if "team_id" in ev:
            assert team_org[ev["team_id"]] == ev["organization_id"]
        if ev["user"]:
            row = by_uuid[ev["user"]["uuid"]]
            assert int(row["id"]) == ev["user"]["id"] and row["email"] == ev["user"]["email"]
            assert (row["first_name"], row["last_name"]) == (ev["user"]["first_name"], ev["user"]["last_name"])
            assert row["organization_id"] == ev["organization_id"], "actors belong to the event's organization"


def test_demo_small_shapes(tmp_path):
    # One day: everything lands in one plain file and still adds up.
    r = write_demo_landing(tmp_path / "one", events=200, days=1, end_day=END, seed=3)
    a = audit(r.files)
    assert [p.name for p in r.files] == [f"events-{END.isoformat()}.jsonl"]
    assert r.late_events == 0 and len(a.distinct) == r.events == 200
    assert r.events + r.duplicate_lines + r.malformed_lines == len(a.lines)
    # No events at all: only the bad lines and blanks.
    r = write_demo_landing(tmp_path / "none", events=0, days=3, end_day=END, seed=3)
    a = audit(r.files)
    assert r.events == 0 and r.duplicate_lines == 0 and len(a.lines) == r.malformed_lines == 10


def test_default_end_day_is_yesterday(tmp_path):
    r = write_demo_landing(tmp_path, events=50, days=2)
    assert r.end_day == datetime.now(timezone.utc).date() - timedelta(days=1)
