"""The configuration file, its sections: unknown sections and keys named with what is allowed, masking
entries, reference paths (relative to the file, s3:// URIs), every section of the product loaded, several
problems on one line, frozen models."""

from pathlib import Path

import pytest

from tests.helpers.config import load_error, no_config_env, write
from pipelines.config import SECTIONS, ActivityLogConfig, Duration, MaskingConfig, ReferenceConfig, load_config


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch, tmp_path):
    """Each test starts with no ACTIVITYLOG_CONFIG and a working directory without activitylog.yaml."""
    no_config_env(monkeypatch, tmp_path)


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def test_unknown_top_level_section_lists_allowed_ones(tmp_path):
    path = write(tmp_path / "activitylog.yaml", "masking: {}\nnotification: {}\n")
    message = load_error(path)
    assert message == (
        f"{path}: notification: unknown section "
        "(allowed: notifications, streams, exports, retention, masking, reference, publish, visibility, ask, audit)"
    )
    assert set(SECTIONS) == set(ActivityLogConfig.model_fields)


def test_typo_inside_masking_names_the_key(tmp_path):
    path = write(tmp_path / "activitylog.yaml", "masking:\n  feilds: [password]\n")
    assert load_error(path) == f"{path}: masking.feilds: unknown key (allowed: fields)"


def test_typo_inside_reference_lists_allowed_keys(tmp_path):
    path = write(tmp_path / "c.yaml", "reference:\n  user: ./u.csv\n")
    assert load_error(path) == f"{path}: reference.user: unknown key (allowed: users, projects, organizations)"


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("3", "masking.fields[2]: must be a non-empty string, not a number"),
        ('""', "masking.fields[2]: must be a non-empty string"),
        ("'   '", "masking.fields[2]: must be a non-empty string"),
        ("{a: b}", "masking.fields[2]: must be a non-empty string, not a mapping"),
        ("null", "masking.fields[2]: must be a non-empty string, not null"),
        (".config", "masking.fields[2]: must be FIELD or Scope.FIELD, not '.config'"),
        ("Integration.", "masking.fields[2]: must be FIELD or Scope.FIELD, not 'Integration.'"),
        ("a.b.c", "masking.fields[2]: must be FIELD or Scope.FIELD, not 'a.b.c'"),
    ],
)
def test_bad_masking_entry_names_the_index(tmp_path, entry, expected):
    path = write(tmp_path / "activitylog.yaml", f"masking:\n  fields: [password, token, {entry}]\n")
    assert load_error(path) == f"{path}: {expected}"


def test_masking_fields_must_be_a_list(tmp_path):
    path = write(tmp_path / "c.yaml", "masking:\n  fields: password\n")
    assert load_error(path) == f"{path}: masking.fields: must be a list, not a string"


def test_masking_section_must_be_a_mapping(tmp_path):
    path = write(tmp_path / "c.yaml", "masking: [password]\n")
    assert load_error(path) == f"{path}: masking: must be a mapping, not a list"


def test_masking_fields_replace_defaults_and_rules_are_as_written(tmp_path):
    path = write(tmp_path / "c.yaml", "masking:\n  fields: [Password, ' Integration.config ', Team.api_token]\n")
    masking = load_config(path).masking
    assert masking.fields == ["Password", "Integration.config", "Team.api_token"]
    assert masking.rules() == [(None, "Password"), ("Integration", "config"), ("Team", "api_token")]


def test_masking_empty_list_masks_nothing_and_null_section_is_default(tmp_path):
    assert load_config(write(tmp_path / "a.yaml", "masking: {fields: []}\n")).masking.rules() == []
    nulls = load_config(write(tmp_path / "b.yaml", "masking:\nreference:\n"))
    assert nulls.model_dump() == ActivityLogConfig().model_dump()


def test_reference_relative_path_resolved_against_config_dir(tmp_path):
    config_dir = tmp_path / "etc"
    write(config_dir / "ref" / "users.csv", "id,email\n")
    (config_dir / "orgs").mkdir()
    path = write(
        config_dir / "activitylog.yaml",
        "reference:\n  users: ./ref/users.csv\n  organizations: orgs\n  projects: s3://bucket/ref/projects.parquet\n",
    )
    assert Path.cwd() != config_dir  # resolution does not depend on the working directory
    reference = load_config(path).reference
    assert reference.uris() == {
        "users": str((config_dir / "ref" / "users.csv").resolve()),
        "projects": "s3://bucket/ref/projects.parquet",
        "organizations": str((config_dir / "orgs").resolve()),
    }


def test_reference_only_set_entries_and_absolute_paths(tmp_path):
    users = write(tmp_path / "data" / "users.csv", "id\n")
    path = write(tmp_path / "c.yaml", f"reference:\n  users: {users}\n  projects: null\n")
    assert load_config(path).reference.uris() == {"users": str(users.resolve())}


def test_missing_reference_file_names_the_entry(tmp_path):
    path = write(tmp_path / "activitylog.yaml", "reference:\n  users: ./x.csv\n")
    message = load_error(path)
    assert message.startswith(f"{path}: reference.users: file ./x.csv does not exist")
    assert str(tmp_path / "x.csv") in message


@pytest.mark.parametrize(
    "value, expected",
    [
        ("gs://bucket/users.csv", "reference.projects: must be a local path or an s3:// URI, not a gs:// URI"),
        ("s3://", "reference.projects: 's3://' names no bucket"),
        ("42", "reference.projects: must be a local path or an s3:// URI, not a number"),
        ('""', "reference.projects: must be a local path or an s3:// URI"),
    ],
)
def test_bad_reference_values(tmp_path, value, expected):
    path = write(tmp_path / "c.yaml", f"reference:\n  projects: {value}\n")
    assert load_error(path) == f"{path}: {expected}"


def test_reference_without_file_resolves_against_working_directory():
    write(Path.cwd() / "u.csv", "id\n")
    assert ReferenceConfig(users="u.csv").uris() == {"users": str((Path.cwd() / "u.csv").resolve())}


FULL_PRODUCT = """\
notifications:
  max_event_age: 7d
  destinations:
    ops: {type: slack, webhook_url: {env: SLACK_URL}}
  subscriptions:
    - {name: flags, filter: {scope: FeatureFlag}, destinations: [ops]}
streams:
  siem:
    filter: {scope: [Person, User]}
    schema: ocsf
    sink: {type: splunk_hec, url: {env: HEC_URL}, token: {env: HEC_TOKEN}}
exports:
  - {name: weekly, schedule: "0 6 * * 1", format: csv, window: 7d, filter: {}, destination: "s3://b/exports"}
retention:
  default: 5y
  organizations: {org-1: 2mo}
  projects: {12: 7d}
  vacuum_grace: 7d
masking:
  fields: [password, Integration.config]
"""


def test_future_sections_load_raw(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("HEC_URL", "http://127.0.0.1:9/services/collector/event")
    monkeypatch.setenv("HEC_TOKEN", "t0k3n")
    config = load_config(write(tmp_path / "activitylog.yaml", FULL_PRODUCT))
    assert config.notifications.destinations["ops"].webhook_url.env == "SLACK_URL"
    assert config.notifications.subscriptions[0].filter.scopes == ("FeatureFlag",)
    assert config.streams["siem"].sink.type == "splunk_hec" and config.streams["siem"].schema_name == "ocsf"
    assert config.exports[0].schedule == "0 6 * * 1" and config.exports[0].destination == "s3://b/exports/"
    assert config.retention.projects == {12: Duration(days=7)} and config.retention.organizations["org-1"] == Duration(months=2)
    assert config.masking.rules() == [(None, "password"), ("Integration", "config")]
    assert config.where("retention.default") == f"{tmp_path / 'activitylog.yaml'}: retention.default"


def test_section_must_be_a_mapping(tmp_path):
    path = write(tmp_path / "c.yaml", "retention: 5y\n")
    assert load_error(path) == f"{path}: retention: must be a mapping, not a string"


def test_several_problems_reported_on_one_line(tmp_path):
    path = write(tmp_path / "c.yaml", "masking: {fields: [1]}\nreference: {users: ./gone.csv}\nextra: 1\n")
    message = load_error(path)
    assert "masking.fields[0]" in message and "reference.users" in message and "extra: unknown section" in message
    assert message.count(str(path)) == 3


def test_models_are_frozen():
    config = ActivityLogConfig()
    with pytest.raises(Exception):
        config.masking = MaskingConfig(fields=[])
