"""The filter's fields one by one: dates and timestamps (:func:`parse_moment` and the UTC bounds), lists
of text values and of project ids, IP address patterns (:func:`check_ip_filter`) and the scope names
PostHog writes (:data:`KNOWN_SCOPES`). Each check raises a :class:`FilterError` at the field's path.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from typing import Any

from transforms.problems import Step
from transforms.values import kind_of

from .errors import fail

#: Scopes PostHog writes to its activity log, plus ``ActivityLog`` (this pipeline's own system events).
KNOWN_SCOPES = frozenset({
    "Action", "ActivityLog", "AlertConfiguration", "Annotation", "BatchExport", "BatchImport", "Cohort",
    "Comment", "CustomerProfileConfig", "Dashboard", "DashboardTemplate", "DataManagement",
    "DataWarehouseSavedQuery", "EarlyAccessFeature", "Endpoint", "ErrorTrackingIssue", "EventDefinition",
    "Experiment", "ExperimentHoldout", "ExperimentSavedMetric", "ExternalDataSchema", "ExternalDataSource",
    "FeatureFlag", "Group", "HogFlow", "HogFunction", "Insight", "Integration", "LLMTrace", "Log",
    "LogsAlertConfiguration", "Notebook", "Organization", "OrganizationDomain", "OrganizationInvite",
    "OrganizationMembership", "Person", "PersonalAPIKey", "Plugin", "PluginConfig", "ProductTour", "Project",
    "ProjectSecretAPIKey", "PropertyDefinition", "Replay", "Role", "SessionRecordingPlaylist", "Subscription",
    "Survey", "Tag", "TaggedItem", "Team", "Threshold", "Ticket", "User", "UserGroup",
    "WebAnalyticsFilterPreset",
})


def closest_scope(name: str) -> str | None:
    """The known scope closest to ``name`` (case-insensitive, :mod:`difflib`), or None if none is close."""
    import difflib

    by_lower = {scope.lower(): scope for scope in KNOWN_SCOPES}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    found = difflib.get_close_matches(name.lower(), sorted(by_lower), n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None


# ----------------------------------------------------------------------------------------------
# Moments
# ----------------------------------------------------------------------------------------------


def parse_moment(value: Any, field_name: str) -> date | datetime:
    """``2024-01-15`` (a whole day) or an ISO-8601 timestamp (UTC unless it says otherwise)."""
    if isinstance(value, (date, datetime)):
        return value
    if not isinstance(value, str):
        raise fail((field_name,), f"must be a date (2024-01-15) or ISO-8601 timestamp, not {kind_of(value)}")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise fail((field_name,), f"{value!r} is not a date (2024-01-15) or ISO-8601 timestamp") from None


def as_utc(value: datetime) -> datetime:
    """A timestamp in UTC (one without a zone is taken as UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def as_start(value: date | datetime | None) -> datetime | None:
    """A lower bound in UTC: a date starts at its 00:00."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


def as_end(value: date | datetime | None) -> datetime | None:
    """An upper bound in UTC: a date ends at its last microsecond."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return datetime.combine(value, time.max, tzinfo=timezone.utc)  # an end date includes its whole day


# ----------------------------------------------------------------------------------------------
# Lists and patterns
# ----------------------------------------------------------------------------------------------


def text_values(value: Any, name: str) -> tuple[str, ...]:
    """A list field of text (``users``, ``scopes`` …): one value stands for a list of one; integers become text."""
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise fail((name,), f"must be a list of text values, not {kind_of(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise fail((name, position), f"must be text, not {kind_of(item)}")
        text = str(item).strip()
        if not text:
            raise fail((name, position), "must not be empty")
        out.append(text)
    return tuple(out)


def team_id_values(value: Any) -> tuple[int, ...]:
    """``team_ids``: project ids, as integers or their text; one value stands for a list of one."""
    if value is None:
        return ()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise fail(("team_ids",), f"must be a list of project ids, not {kind_of(value)}")
    out = []
    for position, item in enumerate(value):
        if isinstance(item, bool):
            raise fail(("team_ids", position), "must be a project id (an integer), not a boolean")
        try:
            out.append(int(item))
        except (TypeError, ValueError):
            raise fail(("team_ids", position), f"must be a project id (an integer), not {item!r}") from None
    return tuple(out)


_IP_FILTER = re.compile(r"^[0-9a-fA-F:.*]+$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def check_ip_filter(value: str, at: tuple[Step, ...] = ("ip_addresses",)) -> None:
    """PostHog's rule for an ``ip_addresses`` entry: only hex digits, ``:``, ``.`` and ``*``; then a
    pattern with ``*``, an IPv4 address (octets up to 255) or an IPv6 address (it has a ``:``). ``at``:
    where the entry is (``("ip_addresses", 0)``)."""
    text = (value or "").strip()
    valid = bool(text) and bool(_IP_FILTER.match(text))
    if valid and "*" not in text:
        if _IPV4.match(text):
            valid = all(int(octet) <= 255 for octet in text.split("."))
        else:
            valid = ":" in text
    if not valid:
        raise fail(at, "Invalid IP address format. Use a valid IPv4/IPv6 address or a wildcard "
                   f"like `203.0.113.*` (not {value[:60]!r}).")
