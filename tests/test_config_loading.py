"""The configuration file, loading: finding the file (argument, ACTIVITYLOG_CONFIG, the working directory),
defaults, YAML-level errors naming the file and line, one-line errors, no Dagster import."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.config import load_error, no_config_env, write
from pipelines.config import CONFIG_ENV, DEFAULT_MASKED_FIELDS, ActivityLogConfig, ConfigError, load_config


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch, tmp_path):
    """Each test starts with no ACTIVITYLOG_CONFIG and a working directory without activitylog.yaml."""
    no_config_env(monkeypatch, tmp_path)


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
# Misc
# ----------------------------------------------------------------------------------------------


def test_config_error_is_one_line_value_error():
    error = ConfigError("a\n   b\nc")
    assert isinstance(error, ValueError) and str(error) == "a b c"


def test_config_module_does_not_import_dagster():
    code = "import sys, pipelines.config; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
