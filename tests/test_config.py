"""The configuration file: loading, validation messages, durations and secrets."""

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from pipelines.config import (
    CONFIG_ENV,
    DEFAULT_MASKED_FIELDS,
    SECTIONS,
    ActivityLogConfig,
    ConfigError,
    Duration,
    DurationError,
    DurationValue,
    MaskingConfig,
    ReferenceConfig,
    SecretRef,
    load_config,
    parse_duration,
    resolve_secret,
    validate_model,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch, tmp_path):
    """Each test starts with no ACTIVITYLOG_CONFIG and a working directory without activitylog.yaml."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_error(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------------------
# Finding the file
# ----------------------------------------------------------------------------------------------


def test_defaults_when_no_file():
    config = load_config()
    assert config == ActivityLogConfig()
    assert config.source is None
    assert config.masking.fields == list(DEFAULT_MASKED_FIELDS)
    assert config.masking.rules() == [
        (None, "password"), (None, "encrypted_inputs"), (None, "secret"), (None, "token"), (None, "api_key"),
        ("Integration", "config"),
    ]
    assert config.reference.uris() == {}
    assert config.notifications.subscriptions == [] and config.streams == {}
    assert config.exports == [] and not config.retention.configured


def test_implicit_default_file_in_working_directory_is_read():
    write(Path.cwd() / "activitylog.yaml", "masking: {fields: [pin]}\n")
    config = load_config()
    assert config.masking.fields == ["pin"]
    assert config.source == (Path.cwd() / "activitylog.yaml").resolve()


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file_means_defaults(tmp_path, text):
    config = load_config(write(tmp_path / "c.yaml", text))
    assert config.model_dump() == ActivityLogConfig().model_dump()
    assert config.source == (tmp_path / "c.yaml").resolve()


def test_explicit_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    message = load_error(missing)
    assert str(missing) in message and "does not exist" in message


def test_env_var_missing_file_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    assert load_error(None) == f"ACTIVITYLOG_CONFIG={missing} does not exist"


def test_env_var_is_used_and_argument_wins(tmp_path, monkeypatch):
    from_env = write(tmp_path / "env.yaml", "masking: {fields: [from_env]}\n")
    from_arg = write(tmp_path / "arg.yaml", "masking: {fields: [from_arg]}\n")
    monkeypatch.setenv(CONFIG_ENV, str(from_env))
    assert load_config().masking.fields == ["from_env"]
    assert load_config(from_arg).masking.fields == ["from_arg"]
    assert load_config(str(from_arg)).masking.fields == ["from_arg"]


def test_empty_env_var_is_unset():
    import os

    os.environ[CONFIG_ENV] = ""
    try:
        assert load_config() == ActivityLogConfig()
    finally:
        del os.environ[CONFIG_ENV]


def test_directory_is_not_a_config_file(tmp_path):
    assert "is a directory" in load_error(tmp_path)


# ----------------------------------------------------------------------------------------------
# YAML-level errors
# ----------------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "masking:\n  fields: [password\nreference: {}\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 3")
    assert "line 2" in message  # where the unclosed list began


def test_yaml_date_that_is_no_date_names_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "retention:\n  default: 30d\n  since: 2024-13-45\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 3, column 10: '2024-13-45' is not a date")
    assert "month must be in 1..12" in message


def test_yaml_bad_indentation_names_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "masking:\n  fields:\n    - password\n   - token\n")
    message = load_error(path)
    assert str(path) in message and "line 4" in message


def test_duplicate_key_is_an_error_with_line(tmp_path):
    path = write(tmp_path / "dup.yaml", "masking: {fields: [a]}\nreference: {}\nmasking: {fields: [b]}\n")
    message = load_error(path)
    assert str(path) in message and "duplicate key 'masking'" in message and "line 3" in message


def test_yaml_merge_keys_still_work(tmp_path):
    path = write(
        tmp_path / "merge.yaml",
        "streams:\n  base: &base {schema: native, sink: {type: s3, uri: out}}\n  ops:\n    <<: *base\n    schema: ocsf\n",
    )
    streams = load_config(path).streams
    assert streams["ops"].schema_name == "ocsf" and streams["ops"].sink.uri == streams["base"].sink.uri


@pytest.mark.parametrize("text, kind", [("- masking\n", "a list"), ("just text\n", "a string")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    message = load_error(write(tmp_path / "c.yaml", text))
    assert "must be a mapping of sections" in message and kind in message
    assert "notifications, streams, exports, retention, masking, reference" in message


def test_non_utf8_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"masking:\n  fields: [caf\xe9]\n")
    assert load_error(path) == f"{path}: not valid UTF-8 at line 2"


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


# ----------------------------------------------------------------------------------------------
# Secrets
# ----------------------------------------------------------------------------------------------

WHERE = "activitylog.yaml: notifications.destinations.ops.webhook_url"


def test_resolve_secret_from_env(monkeypatch):
    monkeypatch.setenv("AL_TEST_SECRET", "s3cr3t")
    assert resolve_secret({"env": "AL_TEST_SECRET"}, WHERE) == "s3cr3t"
    assert resolve_secret(SecretRef(env="AL_TEST_SECRET"), WHERE) == "s3cr3t"


@pytest.mark.parametrize("value", [None, ""])
def test_resolve_secret_missing_env_names_variable_and_where(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("AL_TEST_SECRET", raising=False)
    else:
        monkeypatch.setenv("AL_TEST_SECRET", value)
    with pytest.raises(ConfigError) as info:
        resolve_secret({"env": "AL_TEST_SECRET"}, WHERE)
    assert str(info.value) == f"{WHERE}: environment variable AL_TEST_SECRET is not set"


def test_resolve_secret_refuses_literal_without_echoing_it():
    with pytest.raises(ConfigError) as info:
        resolve_secret("https://hooks.slack.com/services/T000/B000/XXXX", WHERE)
    assert str(info.value) == f"{WHERE}: must be {{env: NAME}}, not a literal"
    assert "hooks.slack.com" not in str(info.value)


@pytest.mark.parametrize(
    "value, expected",
    [
        (42, "must be {env: NAME}, not a number"),
        ({"ENV": "X"}, "must be {env: NAME}; unknown key 'ENV'"),
        ({}, "must be {env: NAME}; env is missing"),
        ({"env": "not a name"}, "env must be an environment variable name, not 'not a name'"),
        ({"env": 3}, "env must be an environment variable name, not a number"),
    ],
)
def test_resolve_secret_bad_shapes(value, expected):
    with pytest.raises(ConfigError) as info:
        resolve_secret(value, WHERE)
    assert str(info.value) == f"{WHERE}: {expected}"


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: SecretRef


def test_secret_ref_in_a_model(monkeypatch):
    monkeypatch.setenv("AL_TEST_URL", "https://example.invalid/hook")
    where = "activitylog.yaml: notifications.destinations.ops"
    parsed = validate_model(_Destination, {"url": {"env": "AL_TEST_URL"}}, where=where)
    assert parsed.url.value() == "https://example.invalid/hook"

    with pytest.raises(ConfigError) as info:
        validate_model(_Destination, {"url": "https://example.invalid/hook"}, where=where)
    assert str(info.value) == f"{where}.url: must be {{env: NAME}}, not a literal"

    monkeypatch.delenv("AL_TEST_URL")
    with pytest.raises(ConfigError) as info:
        validate_model(_Destination, {"url": {"env": "AL_TEST_URL"}}, where=where)
    assert str(info.value) == f"{where}.url.env: environment variable AL_TEST_URL is not set"

    # Unset after load: value() names the variable too.
    with pytest.raises(ConfigError, match=r"^ops\.url: environment variable AL_TEST_URL is not set$"):
        parsed.url.value("ops.url")

    monkeypatch.delenv("AL_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError) as info:
        validate_model(_Destination, {"url": {"env": "AL_TEST_UNSET", "default": "y"}}, where=where)
    assert str(info.value) == (  # every problem, on one line
        f"{where}.url.env: environment variable AL_TEST_UNSET is not set; "
        f"{where}.url.default: unknown key (allowed: env)"
    )


# ----------------------------------------------------------------------------------------------
# Misc
# ----------------------------------------------------------------------------------------------


def test_config_error_is_one_line_value_error():
    error = ConfigError("a\n   b\nc")
    assert isinstance(error, ValueError) and str(error) == "a b c"


def test_config_module_does_not_import_dagster():
    code = "import sys, pipelines.config; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
