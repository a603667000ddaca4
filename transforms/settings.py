"""Settings from the environment, with the embedded defaults the demo runs on.

Parsing only: no Dagster import, so the read-only CLI commands use these without paying for it, and
the layers above (resources and partitions in ``assets/``, the CLI and API in ``pipelines/``) share one
reading of the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from transforms.durations import Duration, DurationError, duration_or_problem, parse_duration
from transforms.landing import LandingLimits, LandingSettingsError
from transforms.validate import ValidationSettings

DEFAULT_LAKE = "./data/lake"
DEFAULT_LANDING = "./data/landing"
DEFAULT_START_DATE = "2020-01-01"
DEFAULT_MAX_FUTURE_SKEW = "1d"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def parse_skew(text: str, variable: str) -> timedelta:
    """``12h``, ``1d`` or ``2w`` (the duration language without months, years or ``none``) → timedelta."""
    duration, problem = duration_or_problem(text)
    if problem or duration is None or duration.months:
        raise SettingsError(f"{variable}={text!r} is not a duration like 12h, 1d or 2w")
    return timedelta(days=duration.days, hours=duration.hours)


@dataclass(frozen=True)
class Settings:
    lake: str
    landing: str
    validation: ValidationSettings
    read_window: Duration | None = None  # ACTIVITYLOG_READ_WINDOW: look-back applied to every read
    # ACTIVITYLOG_MAX_INFLATED_BYTES, _MAX_INFLATE_RATIO, _MAX_LINE_BYTES, _LANDING_QUIET_PERIOD. The
    # ingest reads them from the environment itself (LandingLimits.from_env); parsed here too so
    # that a bad value is reported before any run starts.
    landing_limits: LandingLimits = field(default_factory=LandingLimits)

    @classmethod
    def from_env(cls, *, lake: str | None = None, landing: str | None = None) -> "Settings":
        env = os.environ
        team_text = env.get("ACTIVITYLOG_DEFAULT_TEAM_ID", "").strip()
        try:
            default_team = int(team_text) if team_text else None
        except ValueError:
            raise SettingsError(f"ACTIVITYLOG_DEFAULT_TEAM_ID={team_text!r} is not an integer") from None
        start_text = env.get("ACTIVITYLOG_START_DATE", DEFAULT_START_DATE).strip()
        try:
            start = date.fromisoformat(start_text)
        except ValueError:
            raise SettingsError(f"ACTIVITYLOG_START_DATE={start_text!r} is not a date like 2020-01-01") from None
        skew = parse_skew(env.get("ACTIVITYLOG_MAX_FUTURE_SKEW", DEFAULT_MAX_FUTURE_SKEW), "ACTIVITYLOG_MAX_FUTURE_SKEW")
        try:
            read_window = parse_duration(env.get("ACTIVITYLOG_READ_WINDOW", "none"), "ACTIVITYLOG_READ_WINDOW")
        except DurationError as exc:
            raise SettingsError(str(exc)) from None
        try:
            landing_limits = LandingLimits.from_env(env)
        except LandingSettingsError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            read_window=read_window,
            landing_limits=landing_limits,
            lake=_resolve(lake or env.get("ACTIVITYLOG_LAKE") or DEFAULT_LAKE),
            landing=_resolve(landing or env.get("ACTIVITYLOG_LANDING") or DEFAULT_LANDING),
            validation=ValidationSettings(start_date=start, default_team_id=default_team, max_future_skew=skew),
        )


def _resolve(uri: str) -> str:
    """Local paths become absolute so Dagster runs (other working dirs) find the same place."""
    if "://" in uri:
        return uri.rstrip("/")
    return str(Path(uri).expanduser().resolve())
