"""The configuration-file tests (tests/test_config_*.py): each test without ACTIVITYLOG_CONFIG, in a working
directory without activitylog.yaml; files written for a test; the one-line message a file is refused with."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import CONFIG_ENV, ConfigError, load_config


def no_config_env(monkeypatch, tmp_path: Path) -> None:
    """No ACTIVITYLOG_CONFIG, and a working directory (``tmp_path / "cwd"``) without activitylog.yaml."""
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
