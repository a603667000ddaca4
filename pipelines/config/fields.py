"""Field types and validators shared by several sections: durations, local paths and directories,
cron schedules, activity filters and entry names.

Each validator raises :func:`.base.fail` with the message the user sees; sections call these instead
of each other's validators.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import PlainSerializer, PlainValidator, ValidationInfo

from transforms import durations
from transforms.durations import Duration, DurationError, duration_or_problem

from .base import ConfigError, fail, kind_of, require_text

__all__ = [
    "NAME_PATTERN",
    "DurationValue",
    "activity_filter",
    "cron_expression",
    "directory_uri",
    "fixed_length",
    "local_path",
    "parse_duration",
]

#: Names of streams and exports: letters, digits, ``-``, ``_`` or ``.``, not starting with a sign.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ----------------------------------------------------------------------------------------------
# Durations
# ----------------------------------------------------------------------------------------------


def parse_duration(text: Any, where: str) -> Duration | None:
    """``12h``/``7d``/``2w``/``2mo``/``5y`` → :class:`Duration`; ``none``/``forever`` → ``None``
    (:func:`transforms.durations.parse_duration`, its error a :class:`ConfigError`).

    ``where`` names the setting in the error, e.g. ``"activitylog.yaml: retention.default"``.
    """
    try:
        return durations.parse_duration(text, where)
    except DurationError as exc:
        raise ConfigError(str(exc)) from None


def _validate_duration(value: Any) -> Duration | None:
    if isinstance(value, Duration):
        return value
    duration, problem = duration_or_problem(value)
    if problem:
        raise fail(problem)
    return duration


#: A duration field for pydantic models: ``vacuum_grace: DurationValue = Duration(days=7)``.
#: Validates the text like :func:`parse_duration`; ``None`` means none/forever; serializes back to text.
DurationValue = Annotated[
    Union[Duration, None],
    PlainValidator(_validate_duration),
    PlainSerializer(lambda d: "forever" if d is None else str(d), return_type=str),
]


def fixed_length(value: Duration | None) -> Duration | None:
    """An ``after`` validator for durations that must not be calendar months or years (``1mo`` fails)."""
    if value is not None and value.is_calendar:
        raise fail(f"{value} has no fixed length: use hours, days or weeks")
    return value


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------


def local_path(value: Any, info: ValidationInfo, *, must_exist: bool) -> str:
    """A local path, made absolute; relative paths resolve against the config file's directory
    (``base_dir`` in the validation context; the working directory without one).

    ``must_exist``: the path must be an existing file.
    """
    require_text(value, "must be a path")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        base = (info.context or {}).get("base_dir")
        path = (Path(base) if base is not None else Path.cwd()) / path
    path = path.resolve()
    if must_exist and not path.is_file():
        raise fail(f"file {value.strip()} does not exist" + (f" (resolved to {path})" if str(path) != value else ""))
    return str(path)


def directory_uri(value: Any, info: ValidationInfo) -> str:
    """A directory that receives files: ``s3://bucket/prefix/`` or a local directory (as :func:`local_path`,
    need not exist). Always ends with ``/``."""
    if isinstance(value, str) and value.strip().startswith("s3://"):
        if not value.strip()[5:].strip("/"):
            raise fail(f"{value!r} names no bucket")
        return value.strip().rstrip("/") + "/"
    return local_path(value, info, must_exist=False) + "/"


# ----------------------------------------------------------------------------------------------
# Schedules and filters
# ----------------------------------------------------------------------------------------------


def cron_expression(value: Any) -> str:
    """A cron expression (five fields, UTC), stripped. Loads Dagster's cron check only when called."""
    if not isinstance(value, str):
        raise fail(f"must be a cron expression like \"0 2 * * 1\", not {kind_of(value)}")
    from dagster._utils.schedules import is_valid_cron_string  # only when a schedule is configured

    if not is_valid_cron_string(value.strip()):
        raise fail(f"{value!r} is not a cron expression like \"0 2 * * 1\" (minute hour day month weekday, UTC)")
    return value.strip()


def activity_filter(value: Any) -> Any:
    """An :class:`~transforms.filters.ActivityFilter` from its mapping (``None``: match everything)."""
    from transforms.filters import ActivityFilter, FilterError

    if isinstance(value, ActivityFilter):
        return value
    try:
        return ActivityFilter.from_dict(value, where="")
    except FilterError as exc:  # the problem's place in the filter, then what: "scopes[0]: must be text"
        raise fail(str(exc.problem)) from None
