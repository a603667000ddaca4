"""The configuration file's secrets: ``{env: NAME}`` references resolved from the environment, never a
literal (and never echoed), bad shapes named, secret references in a model."""

import pytest
from pydantic import BaseModel, ConfigDict

from tests.helpers.config import no_config_env
from pipelines.config import ConfigError, SecretRef, resolve_secret, validate_model


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch, tmp_path):
    """Each test starts with no ACTIVITYLOG_CONFIG and a working directory without activitylog.yaml."""
    no_config_env(monkeypatch, tmp_path)


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
